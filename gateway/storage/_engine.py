"""Engines for the embedded default (SQLite, WAL) and for PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["async_url", "create_engine", "insert_on_conflict", "is_sqlite", "sqlite_file"]


def async_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and name their async drivers."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}.get(
        parsed.drivername
    )
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    database = make_url(url).database if is_sqlite(url) else None
    return database if database and database != ":memory:" else None


def insert_on_conflict(
    bind: AsyncConnection | AsyncEngine, table: Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take `on_conflict_do_nothing` / `on_conflict_do_update`: both backends
    spell them alike, but each through its own dialect's construct."""
    if bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # FULL: each commit is on disk before it is acknowledged (one fsync of the WAL per commit).
    # NORMAL in WAL mode syncs only at checkpoints, so a power cut could undo a 201 already given
    # or a federation message already acked as applied, which its sender never sends again.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def create_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine for `url`; `schema` sets PostgreSQL's search_path (tests isolate themselves so)."""
    url = async_url(url)
    if is_sqlite(url):
        pool: dict[str, Any] = {}  # an in-memory database is one connection already (StaticPool)
        if (database := sqlite_file(url)) is not None:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # One connection: SQLite has one writer, and writers on several connections of one
            # process meet SQLITE_BUSY and sleep in its busy handler (the benchmark's holder did
            # 104/s so, 164/s on one). Nothing holds it while waiting for another or for a peer.
            # A request still waiting after 20 s is answered 503 busy, inside a peer's 30 s.
            pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 20}
        engine = create_async_engine(url, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)
