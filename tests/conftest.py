"""Shared fixtures: the two storage backends every storage test runs against."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import async_url, create_engine, upgrade

POSTGRES_URL = os.environ.get("CAFX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("CAFX_REQUIRE_POSTGRES") == "1"


@dataclass(frozen=True)
class Database:
    url: str
    schema: str | None = None

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"


@asynccontextmanager
async def postgres_schemas(count: int) -> AsyncIterator[list[str]]:
    """`count` fresh schemas in the test PostgreSQL, dropped afterwards. Skips with the reason when the
    server is not reachable, or fails when CAFX_REQUIRE_POSTGRES=1 says it must be."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL runs need the driver

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL not reachable at CAFX_TEST_POSTGRES_URL ({type(exc).__name__})"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason}, and CAFX_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    prefix = f"cafx_test_{secrets.token_hex(6)}"
    schemas = [f"{prefix}_{n}" for n in range(count)]
    try:
        for schema in schemas:
            await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield schemas
    finally:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database: a SQLite file, or a fresh schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield Database(f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}")
        return
    async with postgres_schemas(1) as (schema,):
        yield Database(async_url(POSTGRES_URL), schema)


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """An engine on `database`, migrated to the newest revision; disposed after."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
