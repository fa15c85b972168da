"""The migrations build exactly the tables the code reads and writes (`gateway/storage/_tables.py`),
on SQLite and PostgreSQL: a column or index added to one and not the other is caught here, not in
production (the basis of a disclosure was VARCHAR(64) in the database and Text in the code)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.storage import create_engine
from gateway.storage._migrate import upgrade
from gateway.storage._tables import metadata

from ..conftest import Database


async def test_the_migrations_build_the_tables_the_code_describes(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []
