"""Storage: SQLAlchemy 2 (async) over SQLite (embedded default, WAL) or PostgreSQL, with Alembic."""

from ._engine import async_url, create_engine, insert_on_conflict, is_sqlite, sqlite_file
from ._idempotency import first_answer
from ._migrate import current_revision, head_revision, upgrade
from ._rewrap import rewrap_sealed, sealed_columns
from ._tables import metadata
from ._time import aware_utc

__all__ = [
    "async_url",
    "aware_utc",
    "create_engine",
    "current_revision",
    "first_answer",
    "head_revision",
    "insert_on_conflict",
    "is_sqlite",
    "metadata",
    "rewrap_sealed",
    "sealed_columns",
    "sqlite_file",
    "upgrade",
]
