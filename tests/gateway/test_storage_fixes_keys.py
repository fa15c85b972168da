"""Storage review fixes for keys at rest, on SQLite and PostgreSQL: a node refuses to start with an
index key other than the one its blind indexes were made with (and `cafx keys rotate` never changes
it), and a rotation commits a batch at a time, so a running SQLite node's writers get in meanwhile."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient
from sqlalchemy import delete, func, insert, select

from gateway.app import create_app
from gateway.cli import cli
from gateway.protection import (
    KEY_BYTES,
    KeyMaterialError,
    KeyRing,
    associated_data,
    seal,
    write_keyfile,
)
from gateway.settings import Settings
from gateway.storage import create_engine, sqlite_file, upgrade
from gateway.storage._rewrap import BATCH_ROWS
from gateway.storage._tables import blind_index_key, episodes

from ..conftest import Database
from .node import node_settings, register_system

VALID = (Path(__file__).parents[1] / "fixtures" / "national" / "valid-episode.json").read_bytes()
NHS_NUMBER = json.loads(VALID)["child"]["identifiers"]["nhs_number"]


def _another_index_key(ring: KeyRing) -> KeyRing:
    """The same KEKs (every episode still opens) with another blind-index key."""
    keys = {key_id: ring.kek(key_id) or b"" for key_id in ring.key_ids}
    return KeyRing(ring.current, keys, secrets.token_bytes(KEY_BYTES))


async def _starts(settings: Settings) -> None:
    runner = web.AppRunner(create_app(settings))
    try:
        await runner.setup()
    finally:
        await runner.cleanup()


async def _refused(settings: Settings, ring: KeyRing) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        await _starts(settings)
    assert caught.value.rule == "index_key.mismatch"
    text = str(caught.value)
    for secret in (ring.index_key, *(ring.kek(k) or b"" for k in ring.key_ids)):
        for spelling in (secret.hex(), secret.decode("latin-1")):
            assert spelling not in text
    assert ring.index_fingerprint() not in text


async def _found(aiohttp_client: AiohttpClient, settings: Settings) -> int:
    """How many episodes a search by the fixture child's NHS number finds (stored first if none)."""
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read", "episodes:write"])
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    found = await http.get("/api/v1/episodes", params={"nhs_number": NHS_NUMBER}, headers=auth)
    assert found.status == 200
    count = len((await found.json())["matches"])
    await http.close()
    return count


async def _store_one(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:write"], name="loader")
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    stored = await http.post("/api/v1/forms?format=national-json", data=VALID, headers=auth)
    assert stored.status == 201, await stored.text()
    await http.close()


async def test_a_node_refuses_to_start_with_another_index_key(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """The same KEKs with another index key: the node started, read episodes by id, and found
    nothing in any search or existence check (other boroughs were told `not_found`)."""
    settings = node_settings(database, tmp_path)
    assert settings.keyfile is not None
    right = KeyRing.from_file(settings.keyfile)
    await _store_one(aiohttp_client, settings)
    wrong_file = tmp_path / "wrong-keys.json"
    wrong = _another_index_key(right)
    write_keyfile(wrong_file, wrong)
    await _refused(settings.model_copy(update={"keyfile": wrong_file}), wrong)
    await _refused(
        settings.model_copy(update={"keyfile": None, "keys_json": SecretStr(wrong.to_json())}),
        wrong,
    )
    assert await _found(aiohttp_client, settings) == 1  # the right key starts, and finds it


async def test_keys_given_as_json_start_the_node_and_never_show(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`CAFX_KEYS_JSON` holds every key of the node: a repr or a dump of the settings showed them
    (crypto-core review); it is a secret now, still read from the environment."""
    settings = node_settings(database, tmp_path)
    assert settings.keyfile is not None
    ring = KeyRing.from_file(settings.keyfile)
    await _store_one(aiohttp_client, settings)
    monkeypatch.setenv("CAFX_KEYS_JSON", ring.to_json())
    from_env = Settings(
        member_id=settings.member_id,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
        signing_key_file=settings.signing_key_file,
        public_url=settings.public_url,
    )
    assert from_env.keyfile is None and from_env.keys_json is not None
    material = json.loads(ring.to_json())
    secrets_shown = [material["index_key"], *material["keys"].values()]
    for shown in (repr(from_env), str(from_env.model_dump()), from_env.model_dump_json()):
        assert not any(secret in shown for secret in secrets_shown)
    assert await _found(aiohttp_client, from_env) == 1


async def test_a_database_indexed_before_the_fingerprint_was_kept_is_checked_first(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """No fingerprint recorded (a database from before it was kept): the first start must not
    record a wrong key as the right one."""
    settings = node_settings(database, tmp_path)
    assert settings.keyfile is not None
    await _store_one(aiohttp_client, settings)
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(blind_index_key))
        wrong_file = tmp_path / "wrong-keys.json"
        wrong = _another_index_key(KeyRing.from_file(settings.keyfile))
        write_keyfile(wrong_file, wrong)
        await _refused(settings.model_copy(update={"keyfile": wrong_file}), wrong)
        async with engine.connect() as connection:  # and nothing recorded by the refusal
            assert await connection.scalar(select(func.count()).select_from(blind_index_key)) == 0
        assert await _found(aiohttp_client, settings) == 1
        async with engine.connect() as connection:
            recorded = await connection.scalar(select(blind_index_key.c.fingerprint))
        assert recorded == KeyRing.from_file(settings.keyfile).index_fingerprint()
    finally:
        await engine.dispose()


async def _cafx(*args: str) -> Result:
    """The CLI in a thread of its own (it runs its own event loop), as an operator would."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


def _config(tmp_path: Path, database: Database, keyfile: Path) -> Path:
    config = tmp_path / "node.toml"
    schema = f'database_schema = "{database.schema}"\n' if database.schema else ""
    config.write_text(
        f'member_id = "E09000007"\ndatabase_url = "{database.url}"\n{schema}'
        f'keyfile = "{keyfile}"\n',
        encoding="utf-8",
    )
    return config


async def test_rotating_the_keys_keeps_the_index_key_and_the_node_starts(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    assert settings.keyfile is not None
    await _store_one(aiohttp_client, settings)
    config = _config(tmp_path, database, settings.keyfile)
    before = KeyRing.from_file(settings.keyfile)
    rotated = await _cafx("keys", "rotate", "--config", str(config), "--retire")
    assert rotated.exit_code == 0, rotated.output
    after = KeyRing.from_file(settings.keyfile)
    assert after.current != before.current and after.key_ids == (after.current,)
    assert after.index_fingerprint() == before.index_fingerprint()
    assert await _found(aiohttp_client, settings) == 1


# --- finding 5: a rotation in batches -----------------------------------------------------------

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _rows(count: int, ring: KeyRing) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        episode_id = f"episode-{n:05d}"
        sealed = seal(b"x" * 200, ring, associated_data("episodes", episode_id, "document"))
        rows.append(
            {
                "id": episode_id,
                "home_authority": "E09000007",
                "state": "open",
                "source_format": "national-json",
                "revision": 1,
                "created_at": NOW,
                "updated_at": NOW,
                "key_id": sealed.key_id,
                "document": sealed.to_bytes(),
            }
        )
    return rows


async def _seeded(database: Database, tmp_path: Path, count: int) -> tuple[Path, KeyRing]:
    ring = KeyRing.generate("k1")
    keyfile = tmp_path / "data-keys.json"
    write_keyfile(keyfile, ring)
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(insert(episodes), _rows(count, ring))
    finally:
        await engine.dispose()
    return _config(tmp_path, database, keyfile), ring


async def test_a_rotation_is_committed_in_batches_and_resumes(
    database: Database, tmp_path: Path
) -> None:
    count = 2 * BATCH_ROWS + 7
    config, _ = await _seeded(database, tmp_path, count)
    rotated = await _cafx("keys", "rotate", "--config", str(config))
    assert rotated.exit_code == 0, rotated.output
    assert f"re-wrapped {count} value(s): episodes {count}" in rotated.output
    retired = await _cafx("keys", "retire", "--config", str(config))  # nothing left behind
    assert retired.exit_code == 0, retired.output
    assert "re-wrapped" not in retired.output and "retired k1" in retired.output


async def test_a_node_writes_while_a_sqlite_rotation_runs(tmp_path: Path) -> None:
    """One transaction for the whole rotation: a node's writer waited for all of it and failed
    with `database is locked` after its 5 s busy timeout (about 40,000 rows)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}")
    count = 4 * BATCH_ROWS
    config, _ = await _seeded(database, tmp_path, count)
    path = sqlite_file(database.url)
    assert path is not None
    rotation = asyncio.ensure_future(_cafx("keys", "rotate", "--config", str(config)))
    seen: set[int] = set()
    wrote_at: int | None = None
    node = sqlite3.connect(path, timeout=2.0)  # another connection, as the node's own
    try:
        while not rotation.done():
            (done,) = node.execute("SELECT count(*) FROM episodes WHERE key_id = 'k2'").fetchone()
            seen.add(done)
            if 0 < done < count and wrote_at is None:
                started = time.monotonic()
                node.execute("UPDATE episodes SET revision = 2 WHERE id = 'episode-00000'")
                node.commit()  # got the write lock mid-rotation, well inside the busy timeout
                assert time.monotonic() - started < 1.0
                wrote_at = done
            await asyncio.sleep(0.01)
        (revision,) = node.execute(
            "SELECT revision FROM episodes WHERE id = 'episode-00000'"
        ).fetchone()
    finally:
        node.close()
    result = await rotation
    assert result.exit_code == 0, result.output
    # Committed a batch at a time: other connections saw the rotation part done, and wrote.
    assert any(0 < n < count for n in seen), sorted(seen)
    assert wrote_at is not None and revision == 2
