"""Key rotation while the node runs: the re-wrap never overwrites what a node wrote meanwhile, a
running node follows its key file (it opens re-wrapped rows and seals under the new key without a
restart), and a key still named by any row is never retired."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import gateway.cli._node as node_cli
import gateway.storage._rewrap as rewrap_module
from gateway.app import create_app
from gateway.cli import cli
from gateway.keys import KEY_RING
from gateway.protection import (
    DecryptionError,
    KeyRing,
    Sealed,
    associated_data,
    open_,
    rewrap,
    seal,
    write_keyfile,
)
from gateway.settings import Settings
from gateway.signing import generate_signing_key, write_signing_key
from gateway.storage import create_engine, rewrap_sealed
from gateway.storage._tables import episodes

from ..conftest import Database

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _bound(episode_id: str) -> bytes:
    return associated_data("episodes", episode_id, "document")


def _episode(episode_id: str, document: bytes, ring: KeyRing) -> dict[str, Any]:
    sealed = seal(document, ring, _bound(episode_id))
    return {
        "id": episode_id,
        "home_authority": "E09000012",
        "state": "open",
        "source_format": "national",
        "revision": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "key_id": sealed.key_id,
        "document": sealed.to_bytes(),
    }


async def _add(engine: AsyncEngine, episode_id: str, document: bytes, ring: KeyRing) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(episodes).values(_episode(episode_id, document, ring)))


async def _stored(engine: AsyncEngine, episode_id: str) -> tuple[str, bytes, int]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(episodes.c.key_id, episodes.c.document, episodes.c.revision).where(
                    episodes.c.id == episode_id
                )
            )
        ).one()
    return row.key_id, row.document, row.revision


def _in_another_node(database: Database, work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    """Run `work` to the end on an engine of its own, in a thread: another process's commit."""

    async def run() -> None:
        engine = create_engine(database.url, schema=database.schema)
        try:
            await work(engine)
        finally:
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join()


async def test_a_node_update_committed_during_the_rewrap_is_kept(
    database: Database, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-wrap read the row, a node then stored revision 2 (under the old key it still had),
    and the re-wrap wrote back: revision 2 held the revision-1 document."""
    old = KeyRing.generate("k1")
    ring = old.with_new_key()
    await _add(engine, "episode-1", b"revision 1", old)

    async def node_update(other: AsyncEngine) -> None:
        changed = seal(b"revision 2", old, _bound("episode-1"))
        async with other.begin() as connection:
            await connection.execute(
                update(episodes)
                .where(episodes.c.id == "episode-1")
                .values(revision=2, key_id=changed.key_id, document=changed.to_bytes())
            )

    raced: list[bool] = []

    def rewrap_after_a_node_update(blob: Sealed | bytes, with_ring: KeyRing) -> Sealed:
        if not raced:  # between the re-wrap's read and its write, once
            raced.append(True)
            _in_another_node(database, node_update)
        return rewrap(blob, with_ring)

    monkeypatch.setattr(rewrap_module, "rewrap", rewrap_after_a_node_update)
    async with engine.begin() as connection:
        assert (await rewrap_sealed(connection, ring))["episodes"] == 1
    assert raced

    key_id, document, revision = await _stored(engine, "episode-1")
    assert (key_id, revision) == (ring.current, 2)
    assert open_(document, ring.without_keys(["k1"]), _bound("episode-1")) == b"revision 2"


def _keys_config(tmp_path: Path, database: Database, ring: KeyRing) -> Path:
    keyfile = tmp_path / "data-keys.json"
    write_keyfile(keyfile, ring)
    config = tmp_path / "node.toml"
    schema = f'database_schema = "{database.schema}"\n' if database.schema else ""
    config.write_text(
        f'member_id = "E09000012"\ndatabase_url = "{database.url}"\n{schema}'
        f'keyfile = "{keyfile}"\n',
        encoding="utf-8",
    )
    return config


async def _cafx(*args: str) -> Result:
    """The CLI in a thread of its own (it runs its own event loop), as an operator would."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_a_running_node_follows_its_key_file_through_rotate_and_retire(
    database: Database, engine: AsyncEngine, tmp_path: Path
) -> None:
    """The node loaded its key ring at start only: after `cafx keys rotate` it could not open the
    re-wrapped rows (kek.unknown), and what it sealed under the old key until its restart was lost
    with `--retire`."""
    config = _keys_config(tmp_path, database, KeyRing.generate("k1"))
    keyfile = tmp_path / "data-keys.json"
    node = KeyRing.from_file(keyfile, follow=True)  # what `create_app` holds
    await _add(engine, "before", b"sealed before the rotation", node)

    rotated = await _cafx("keys", "rotate", "--config", str(config))
    assert rotated.exit_code == 0, rotated.output
    assert "current key is now k2" in rotated.output and "episodes 1" in rotated.output

    _, document, _ = await _stored(engine, "before")
    assert open_(document, node, _bound("before")) == b"sealed before the rotation"
    await _add(engine, "after", b"sealed after the rotation", node)
    assert (await _stored(engine, "after"))[0] == "k2"

    retired = await _cafx("keys", "retire", "--config", str(config))
    assert retired.exit_code == 0, retired.output
    assert "retired k1" in retired.output
    restarted = KeyRing.from_file(keyfile)
    assert restarted.key_ids == ("k2",) and node.key_ids == ("k2",)
    for episode_id, plaintext in (
        ("before", b"sealed before the rotation"),
        ("after", b"sealed after the rotation"),
    ):
        _, document, _ = await _stored(engine, episode_id)
        assert open_(document, restarted, _bound(episode_id)) == plaintext


async def test_retire_refuses_while_a_row_still_names_an_old_key(
    database: Database, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica without the new key file wrote under k1 after the re-wrap: `--retire` dropped k1
    anyway, and that row never opened again."""
    first = KeyRing.generate("k1")
    config = _keys_config(tmp_path, database, first)
    keyfile = tmp_path / "data-keys.json"
    await _add(engine, "re-wrapped", b"re-wrapped", first)

    async def rewrap_then_a_lagging_replica_writes(
        connection: AsyncConnection, ring: KeyRing
    ) -> dict[str, int]:
        counts = await rewrap_sealed(connection, ring)
        await connection.execute(
            insert(episodes).values(_episode("lagging", b"sealed by a lagging replica", first))
        )
        return counts

    monkeypatch.setattr(node_cli, "rewrap_sealed", rewrap_then_a_lagging_replica_writes)
    refused = await _cafx("keys", "rotate", "--config", str(config), "--retire")
    assert refused.exit_code == 1, refused.output
    assert "not retired" in refused.output and "k1: 1" in refused.output
    assert "retired k1" not in refused.output

    kept = KeyRing.from_file(keyfile)
    assert kept.key_ids == ("k1", "k2") and kept.current == "k2"
    _, document, _ = await _stored(engine, "lagging")
    assert open_(document, kept, _bound("lagging")) == b"sealed by a lagging replica"

    monkeypatch.undo()  # the replica has the new file now: the retirement re-wraps it and goes on
    retired = await _cafx("keys", "retire", "--config", str(config))
    assert retired.exit_code == 0, retired.output
    assert "re-wrapped 1 value(s)" in retired.output and "retired k1" in retired.output
    _, document, _ = await _stored(engine, "lagging")
    assert open_(document, KeyRing.from_file(keyfile), _bound("lagging")) == (
        b"sealed by a lagging replica"
    )


def test_a_followed_ring_keeps_its_keys_when_the_file_changes_its_index_key(
    tmp_path: Path,
) -> None:
    """The blind-index key never rotates: a file naming another one is not taken (every look-up
    would miss), nor is a file that does not load; a later good file is."""
    keyfile = tmp_path / "data-keys.json"
    first = KeyRing.generate("k1")
    write_keyfile(keyfile, first)
    node = KeyRing.from_file(keyfile, follow=True)
    sealed = seal(b"value", node, b"ad")

    write_keyfile(keyfile, KeyRing.generate("k9"), overwrite=True)
    assert node.key_ids == ("k1",) and open_(sealed, node, b"ad") == b"value"
    keyfile.write_text("{not json", encoding="utf-8")
    assert node.current == "k1"

    rotated = first.with_new_key()
    write_keyfile(keyfile, rotated.without_keys(["k1"]), overwrite=True)
    assert node.current == "k2"
    with pytest.raises(DecryptionError):  # k1 is retired in the file: retired here too
        open_(sealed, node, b"ad")


async def test_the_node_holds_a_key_ring_that_follows_its_key_file(tmp_path: Path) -> None:
    """`create_app` loaded the ring once; now `cafx keys rotate` reaches it without a restart."""
    keyfile = tmp_path / "data-keys.json"
    first = KeyRing.generate("k1")
    write_keyfile(keyfile, first)
    write_signing_key(generate_signing_key("E09000012"), tmp_path / "signing-key.json")
    settings = Settings(
        member_id="E09000012",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}",
        keyfile=keyfile,
        signing_key_file=tmp_path / "signing-key.json",
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        write_keyfile(keyfile, first.with_new_key(), overwrite=True)  # `cafx keys rotate`
        assert app[KEY_RING].current == "k2"
    finally:
        await runner.cleanup()


async def test_replicas_take_a_new_key_in_two_steps(
    database: Database, engine: AsyncEngine, tmp_path: Path
) -> None:
    """`--stage` adds the key and changes nothing else: every replica gets the file before any
    row is under it. `--promote` then makes it current and re-wraps."""
    config = _keys_config(tmp_path, database, KeyRing.generate("k1"))
    keyfile = tmp_path / "data-keys.json"
    await _add(engine, "row", b"a sealed value", KeyRing.from_file(keyfile))

    assert (await _cafx("keys", "rotate", "--config", str(config), "--promote")).exit_code == 1
    staged = await _cafx("keys", "rotate", "--config", str(config), "--stage")
    assert staged.exit_code == 0, staged.output
    assert "added key k2, not yet current (still k1)" in staged.output
    lagging = KeyRing.from_file(keyfile)  # a replica given the staged file
    assert (lagging.current, lagging.key_ids) == ("k1", ("k1", "k2"))
    assert (await _stored(engine, "row"))[0] == "k1"  # nothing re-wrapped yet

    promoted = await _cafx("keys", "rotate", "--config", str(config), "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert "current key is now k2" in promoted.output and "episodes 1" in promoted.output
    key_id, document, _ = await _stored(engine, "row")
    assert key_id == "k2" and open_(document, lagging, _bound("row")) == b"a sealed value"
    both = await _cafx("keys", "rotate", "--config", str(config), "--stage", "--promote")
    assert both.exit_code == 2


async def test_rotation_refuses_keys_the_node_reads_from_keys_json(
    database: Database, tmp_path: Path
) -> None:
    """With keys_json set the node reads that and never the file: rotating the file would put
    every row under a key the node does not have."""
    ring = KeyRing.generate("k1")
    config = _keys_config(tmp_path, database, ring)
    # A TOML basic string takes JSON's escapes as they are.
    text = config.read_text(encoding="utf-8") + f"keys_json = {json.dumps(ring.to_json())}\n"
    config.write_text(text, encoding="utf-8")
    refused = await _cafx("keys", "rotate", "--config", str(config))
    assert refused.exit_code == 1
    assert "keys_json" in refused.output
    assert KeyRing.from_file(tmp_path / "data-keys.json").key_ids == ("k1",)
