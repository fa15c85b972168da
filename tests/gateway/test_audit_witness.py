"""Witnesses of the audit chain kept outside its database (gateway/audit_witness.py), on SQLite and
PostgreSQL: entries and checkpoints deleted together (the chain cut back, or emptied) verified `ok`
before; now the checkpoint kept beside the signing key, or one the node logged, shows it as
`truncated`. Only committed checkpoints are kept; a forged witness is not taken on trust."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from pytest_aiohttp import AiohttpClient
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from gateway.app import create_app
from gateway.audit import AuditDraft, Checkpoint, Outcome
from gateway.audit_log import AuditLog
from gateway.audit_witness import CHECKPOINT_LOGGED, read_witness, witness_file, witnesses_in
from gateway.cli import cli
from gateway.keys import AUDIT, ENGINE
from gateway.observability import JsonFormatter
from gateway.signing import load_signing_key
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import audit_checkpoints, audit_entries

from ..conftest import Database
from .node import MEMBER, node_settings

_EVERY = 5


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> TestClient[Any, Any]:
    settings = node_settings(
        database, tmp_path, audit_checkpoint_every=_EVERY, retention_interval_seconds=0
    )
    return await aiohttp_client(create_app(settings))


async def _recorded(http: TestClient[Any, Any], count: int) -> None:
    for n in range(count):
        draft = AuditDraft(
            actor="test", action="test.entry", outcome=Outcome.SUCCESS, subject=str(n)
        )
        await http.app[AUDIT].record(draft)


async def _cut_back(http: TestClient[Any, Any], after: int) -> None:
    """What someone with write access to the database does: entries and checkpoints together."""
    async with http.app[ENGINE].begin() as connection:
        await connection.execute(delete(audit_entries).where(audit_entries.c.sequence > after))
        await connection.execute(
            delete(audit_checkpoints).where(audit_checkpoints.c.sequence > after)
        )


def _kept(tmp_path: Path) -> Checkpoint | None:
    return read_witness(witness_file(tmp_path / "signing-key.json"), MEMBER)


@pytest.mark.parametrize("after", [10, 0])
async def test_a_chain_cut_back_with_its_checkpoints_is_truncated(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, after: int
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    await _recorded(http, 23)
    kept = _kept(tmp_path)
    assert kept is not None and kept.sequence == 20
    assert (await http.app[AUDIT].verify()).ok

    await _cut_back(http, after)
    result = await http.app[AUDIT].verify()
    assert result.problem is not None and result.problem.kind == "truncated", result
    assert result.problem.sequence == after + 1 and result.last_sequence == after


async def test_a_checkpoint_rolled_back_is_not_kept(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    await _recorded(http, 4)
    assert _kept(tmp_path) is None
    audit: AuditLog = http.app[AUDIT]
    with pytest.raises(RuntimeError):
        async with audit.transaction() as connection:
            for _ in range(3):  # the 5th entry is checkpointed, then all is rolled back
                await audit.append(
                    connection,
                    AuditDraft(actor="test", action="test.entry", outcome=Outcome.SUCCESS),
                )
            raise RuntimeError("the change fails after its entries")
    assert _kept(tmp_path) is None
    await _recorded(http, 1)  # the 5th entry, for real
    kept = _kept(tmp_path)
    assert kept is not None and kept.sequence == 5
    assert (await audit.verify()).ok


async def test_the_logged_checkpoints_witness_the_chain_for_the_operator(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key directory lost its witness file (or could not be written): the log line still
    shows the cut, through `cafx audit verify --witness`."""
    http = await _node(aiohttp_client, database, tmp_path)
    with caplog.at_level(logging.INFO, logger="cafx.audit"):
        await _recorded(http, 12)
    lines = [
        JsonFormatter().format(record)
        for record in caplog.records
        if record.getMessage() == CHECKPOINT_LOGGED
    ]
    assert len(lines) == 2  # sequences 5 and 10: ids, hashes, a signature; nothing else
    logged = witnesses_in(io.StringIO("not json\n" + "\n".join(lines)), MEMBER)
    assert [c.sequence for c in logged] == [5, 10]
    assert witnesses_in(io.StringIO("\n".join(lines)), "E09000019") == []  # another node's

    witness_file(tmp_path / "signing-key.json").unlink()
    await _cut_back(http, 5)
    assert (await http.app[AUDIT].verify()).ok  # nothing outside says otherwise
    result = await http.app[AUDIT].verify(logged)
    assert result.problem is not None and result.problem.kind == "truncated"

    log_file = tmp_path / "node.log"
    log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = _config(database, tmp_path)
    # The CLI runs its own event loop: in a thread of its own here.
    plain = await asyncio.to_thread(
        CliRunner().invoke, cli, ["audit", "verify", "--config", str(config)]
    )
    assert plain.exit_code == 0, plain.output
    witnessed = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["audit", "verify", "--config", str(config), "--witness", str(log_file)],
    )
    assert witnessed.exit_code == 1, witnessed.output
    assert json.loads(witnessed.stdout)["problem"]["kind"] == "truncated"


def _config(database: Database, tmp_path: Path) -> Path:
    settings = node_settings(database, tmp_path, audit_checkpoint_every=_EVERY)
    config = tmp_path / "node.toml"
    lines = [
        f'member_id = "{settings.member_id}"',
        f'database_url = "{database.url}"',
        f'signing_key_file = "{settings.signing_key_file}"',
        f'keyfile = "{settings.keyfile}"',
        f"audit_checkpoint_every = {_EVERY}",
        f'public_url = "{settings.public_url}"',
    ]
    if database.schema is not None:
        lines.append(f'database_schema = "{database.schema}"')
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


async def test_a_forged_witness_is_not_taken_on_trust(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    await _recorded(http, 7)
    path = witness_file(tmp_path / "signing-key.json")
    forged = json.loads(path.read_text(encoding="utf-8")) | {"sequence": 500}
    path.write_text(json.dumps(forged), encoding="utf-8")
    result = await http.app[AUDIT].verify()
    assert result.problem is not None and result.problem.kind == "checkpoint_signature_invalid"


async def test_a_failed_append_on_sqlite_does_not_leave_a_stale_head(tmp_path: Path) -> None:
    """A second writer on the file (which should not exist) made the cached head stale: the
    append that met it fails, and the next one reads the head back instead of failing forever."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.sqlite3'}"
    engine, other = create_engine(url), create_engine(url)
    settings = node_settings(Database(url), tmp_path)
    assert settings.signing_key_file is not None
    key = load_signing_key(settings.signing_key_file)
    try:
        await upgrade(engine)
        ours, theirs = AuditLog(engine, key, MEMBER, 100), AuditLog(other, key, MEMBER, 100)
        entry = AuditDraft(actor="test", action="test.entry", outcome=Outcome.SUCCESS)
        await ours.record(entry)
        await theirs.record(entry)
        with pytest.raises(IntegrityError):
            await ours.record(entry)
        await ours.record(entry)
        assert (await ours.verify()).ok
    finally:
        await engine.dispose()
        await other.dispose()


@pytest.mark.parametrize("seconds", [0.2, 0])
async def test_a_timed_checkpoint_bounds_the_tail_that_could_go_unseen(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, seconds: float
) -> None:
    """Entries after the newest checkpoint can be deleted unseen: hashing needs no key. With 100
    entries between checkpoints that was up to 99 entries, for as long as it took to write them;
    the head is now signed on a timer too, so the last entries deleted (with or without the timed
    checkpoint) show as `truncated`. Without the timer (0) they do not."""
    settings = node_settings(
        database,
        tmp_path,
        audit_checkpoint_every=100,
        audit_checkpoint_seconds=seconds,
        retention_interval_seconds=0,
    )
    http = await aiohttp_client(create_app(settings))
    await _recorded(http, 7)
    if seconds:
        for _ in range(100):
            kept = _kept(tmp_path)
            if kept is not None and kept.sequence == 7:
                break
            await asyncio.sleep(0.05)
        assert kept is not None and kept.sequence == 7
    await _cut_back(http, 5)
    problem = (await http.app[AUDIT].verify()).problem
    if seconds:
        assert problem is not None and problem.kind.value == "truncated"
    else:
        assert problem is None  # the limit the timer bounds
