"""A routine signing-key rotation is not tampering: checkpoints signed by the node's earlier keys
still verify (`cafx audit verify`, the API's and the console's checks), while a checkpoint signed by
a key the node never had, or one taken out of its history, still fails."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web
from click.testing import CliRunner
from joserfc.jwk import OKPKey
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.audit import AuditDraft, AuditEntry, Outcome, make_checkpoint
from gateway.audit_log import AuditLog, remember_signing_key, signing_key_history
from gateway.cli import cli
from gateway.console._chain import check_chain
from gateway.keys import AUDIT
from gateway.protection import KeyRing, write_keyfile
from gateway.settings import Settings
from gateway.signing import generate_signing_key, write_signing_key
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import audit_checkpoints, audit_entries

MEMBER = "E09000007"
EVERY = 10


def _key(kid: str) -> OKPKey:
    return OKPKey.generate_key(
        "Ed25519", parameters={"kid": kid, "use": "sig", "alg": "Ed25519"}, private=True
    )


async def _record(log: AuditLog, count: int) -> None:
    for _ in range(count):
        await log.record(
            AuditDraft(
                actor="member:E09000012",
                action="federation.existence_check",
                outcome=Outcome.SUCCESS,
            )
        )


async def _rotated(engine: AsyncEngine, tmp_path: Path) -> tuple[AuditLog, Path]:
    """25 entries signed by the first key (checkpoints 10 and 20), then the key file replaced by a
    new key, as `cafx federation rotate-key` and the member's deployment do (the old one destroyed),
    and 3 entries more: the latest checkpoint is still the old key's."""
    key_file = tmp_path / "signing-key.json"
    old = _key(f"{MEMBER}-1")
    write_signing_key(old, key_file)
    await _record(
        AuditLog(engine, old, MEMBER, EVERY, earlier_keys=remember_signing_key(key_file, old)), 25
    )
    new = _key(f"{MEMBER}-2")
    write_signing_key(new, key_file)
    log = AuditLog(engine, new, MEMBER, EVERY, earlier_keys=remember_signing_key(key_file, new))
    await _record(log, 3)
    return log, key_file


async def test_checkpoints_signed_before_a_key_rotation_still_verify(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Verified against the current key only: checkpoint_signature_invalid at sequence 10."""
    log, _ = await _rotated(engine, tmp_path)
    result = await log.verify()
    assert result.problem is None, result.as_dict()
    assert (result.checked, result.anchored_sequence) == (28, 20)

    await _record(log, 5)  # the new key's first checkpoint, at 30
    result = await log.verify()
    assert result.problem is None and result.anchored_sequence == 30


async def test_the_console_check_starts_from_a_checkpoint_of_an_earlier_key(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The console's everyday check (from the latest checkpoint) took the old key's signature for a
    problem and fell back to reading the whole chain."""
    log, _ = await _rotated(engine, tmp_path)
    checked = await check_chain(log)
    assert checked.result.problem is None
    assert checked.since == 20 and checked.result.checked == 9


async def test_a_checkpoint_by_a_key_the_node_never_had_still_fails(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    log, _ = await _rotated(engine, tmp_path)
    async with engine.begin() as connection:
        row = (
            await connection.execute(select(audit_entries).where(audit_entries.c.sequence == 10))
        ).one()
        forged = make_checkpoint(
            AuditEntry.from_row(dict(row._mapping)), _key(f"{MEMBER}-1"), MEMBER
        )  # the old key's kid, another key: a forger choosing the kid gains nothing
        await connection.execute(
            delete(audit_checkpoints).where(audit_checkpoints.c.sequence == 10)
        )
        await connection.execute(insert(audit_checkpoints).values(forged.to_row()))
    problem = (await log.verify()).problem
    assert problem is not None
    assert (problem.kind.value, problem.sequence) == ("checkpoint_signature_invalid", 10)


async def test_a_key_taken_out_of_the_history_verifies_nothing_any_more(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The operator drops a key found compromised from the history: its checkpoints fail."""
    log, key_file = await _rotated(engine, tmp_path)
    history = signing_key_history(key_file)
    document = json.loads(history.read_text(encoding="utf-8"))
    document["keys"] = [k for k in document["keys"] if k["kid"] != f"{MEMBER}-1"]
    history.write_text(json.dumps(document), encoding="utf-8")

    current = AuditLog(
        engine, log.key, MEMBER, EVERY, earlier_keys=remember_signing_key(key_file, log.key)
    )
    problem = (await current.verify()).problem
    assert problem is not None
    assert (problem.kind.value, problem.sequence) == ("checkpoint_signature_invalid", 10)
    assert (await check_chain(current)).since is None  # and the console's check reads it all


def test_a_history_that_does_not_load_is_never_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "signing-key.json"
    history = signing_key_history(key_file)
    history.write_text('{"keys": [{"kty": "OKP"', encoding="utf-8")
    assert remember_signing_key(key_file, _key("k")) == []
    assert history.read_text(encoding="utf-8") == '{"keys": [{"kty": "OKP"'


async def test_cafx_audit_verify_passes_after_a_signing_key_rotation(tmp_path: Path) -> None:
    """The reviewer's scenario: the chain verified; after the switch to a new signing key,
    `cafx audit verify` reported checkpoint_signature_invalid at 10 and exited 1."""
    database = tmp_path / "node.sqlite3"
    key_file = tmp_path / "keys" / "signing-key.json"
    config = tmp_path / "node.toml"
    config.write_text(
        f'member_id = "{MEMBER}"\ndatabase_url = "sqlite+aiosqlite:///{database}"\n'
        f'signing_key_file = "{key_file}"\naudit_checkpoint_every = {EVERY}\n',
        encoding="utf-8",
    )

    async def verify() -> tuple[int, dict[str, object]]:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["audit", "verify", "--config", str(config)]
        )
        return result.exit_code, json.loads(result.stdout)

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await upgrade(engine)
        old = generate_signing_key(MEMBER)
        write_signing_key(old, key_file)
        # The node, as `create_app` starts it, signs with the old key.
        await _record(
            AuditLog(engine, old, MEMBER, EVERY, earlier_keys=remember_signing_key(key_file, old)),
            25,
        )
        code, before = await verify()
        assert code == 0 and before["ok"] is True

        new = _key(f"{MEMBER}-rotated")  # the old private key is destroyed: overwritten
        write_signing_key(new, key_file)
        await _record(AuditLog(engine, new, MEMBER, EVERY), 10)
        code, after = await verify()
        assert code == 0, after
        assert after["ok"] is True and after["anchored_sequence"] == 30
    finally:
        await engine.dispose()


async def test_the_node_verifies_with_the_keys_it_signed_with_before(tmp_path: Path) -> None:
    """`create_app` remembers its signing key and verifies with the earlier ones too (the API's
    `/api/v1/audit/verify` and the console use the node's `AuditLog`)."""
    key_file = tmp_path / "signing-key.json"
    keyfile = tmp_path / "data-keys.json"
    write_keyfile(keyfile, KeyRing.generate())
    settings = Settings(
        member_id=MEMBER,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}",
        keyfile=keyfile,
        signing_key_file=key_file,
        audit_checkpoint_every=EVERY,
    )
    kids = []
    for kid in (f"{MEMBER}-1", f"{MEMBER}-2"):  # started, then restarted on a rotated key
        write_signing_key(_key(kid), key_file)
        app = create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await _record(app[AUDIT], 15)
            assert (await app[AUDIT].verify()).problem is None
            kids = [key.kid for key in app[AUDIT].verifying_keys.keys]
        finally:
            await runner.cleanup()
    assert kids == [f"{MEMBER}-2", f"{MEMBER}-1"]


async def test_the_consoles_check_reads_the_witness_of_a_chain_cut_back(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Entries and checkpoints deleted together back to an earlier checkpoint: the tail from the
    newest stored checkpoint is intact, but the witness file kept a newer one. The console's
    everyday check took the tail as all well; it now verifies the whole chain, which says so."""
    witness = tmp_path / "signing-key.checkpoint.json"
    log = AuditLog(engine, _key(f"{MEMBER}-1"), MEMBER, EVERY, witness=witness)
    await _record(log, 35)
    assert (await check_chain(log)).since == 30
    async with engine.begin() as connection:
        await connection.execute(delete(audit_entries).where(audit_entries.c.sequence > 20))
        await connection.execute(delete(audit_checkpoints).where(audit_checkpoints.c.sequence > 20))
    checked = await check_chain(AuditLog(engine, log.key, MEMBER, EVERY, witness=witness))
    assert checked.since is None
    assert checked.result.problem is not None
    assert checked.result.problem.kind.value == "truncated"
