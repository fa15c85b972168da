"""Key rotation stopped part way (review 2, findings 10 and 11): a rotation that fails after its
first batch keeps that batch, and the next run finishes it; a rotation that meets a SQLite database
locked by a node's long write ends with a message saying it can be run again, not a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import delete, func, insert, select

from gateway.protection import KeyRing, associated_data, seal
from gateway.storage import create_engine, sqlite_file
from gateway.storage._rewrap import BATCH_ROWS
from gateway.storage._tables import episodes

from ..conftest import Database
from .test_storage_fixes_keys import NOW, _cafx, _seeded


async def _under(database: Database) -> dict[str | None, int]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(episodes.c.key_id, func.count()).group_by(episodes.c.key_id)
            )
            return {row[0]: row[1] for row in rows}
    finally:
        await engine.dispose()


async def test_a_rotation_stopped_after_its_first_batch_is_finished_by_the_next_run(
    database: Database, tmp_path: Path
) -> None:
    count = 2 * BATCH_ROWS + 7
    config, _ = await _seeded(database, tmp_path, count)
    # A row in the second batch under a key the file does not hold stops the rotation there.
    stray = "episode-00600-stray"  # sorts among the second batch
    sealed = seal(b"x", KeyRing.generate("kx"), associated_data("episodes", stray, "document"))
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(episodes).values(
                    id=stray,
                    home_authority="E09000007",
                    state="open",
                    source_format="national-json",
                    revision=1,
                    created_at=NOW,
                    updated_at=NOW,
                    key_id=sealed.key_id,
                    document=sealed.to_bytes(),
                )
            )
    finally:
        await engine.dispose()

    stopped = await _cafx("keys", "rotate", "--config", str(config))
    assert stopped.exit_code == 1 and "re-wrapping stopped: kek.unknown" in stopped.output, (
        stopped.output
    )
    # The first batch was committed; the second, under way when it stopped, was not.
    assert await _under(database) == {"k2": BATCH_ROWS, "k1": count - BATCH_ROWS, "kx": 1}

    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(episodes).where(episodes.c.id == stray))
    finally:
        await engine.dispose()
    finished = await _cafx("keys", "retire", "--config", str(config))
    assert finished.exit_code == 0, finished.output
    assert f"re-wrapped {count - BATCH_ROWS} value(s) still under an old key" in finished.output
    assert await _under(database) == {"k2": count}


async def test_a_rotation_meeting_a_locked_database_says_to_run_it_again(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}")
    config, _ = await _seeded(database, tmp_path, 10)
    path = sqlite_file(database.url)
    assert path is not None
    node = sqlite3.connect(path, isolation_level=None)  # a node's write, longer than 5 s
    try:
        node.execute("BEGIN IMMEDIATE")
        stopped = await _cafx("keys", "rotate", "--config", str(config))
    finally:
        node.execute("ROLLBACK")
        node.close()
    assert stopped.exit_code == 1, stopped.output
    assert stopped.exception is None or isinstance(stopped.exception, SystemExit)
    assert "re-wrapping stopped: the database was busy or unavailable" in stopped.output
    assert "run `cafx keys retire` to finish" in stopped.output
    assert "Traceback" not in stopped.output and "UPDATE" not in stopped.output

    again = await _cafx("keys", "retire", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert await _under(database) == {"k2": 10}
