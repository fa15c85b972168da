"""`cafx serve`, `db upgrade`, `keys init|rotate`, `clients add`, `audit verify`: running a node."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..audit_log import AuditLog, remember_signing_key
from ..audit_witness import witness_file, witnesses_in
from ..oauth import SCOPES, disable_client, register_client
from ..observability import configure_logging
from ..protection import KeyRing, ProtectionError, write_keyfile
from ..runner import serve_forever
from ..settings import Settings, load_settings
from ..signing import generate_signing_key, load_signing_key, write_signing_key
from ..storage import create_engine, rewrap_sealed, upgrade
from ..storage._rewrap import old_keys_in_use

__all__ = ["audit", "clients", "db", "keys", "serve"]

config_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML settings file; CAFX_* environment variables override it.",
)


@asynccontextmanager
async def database(settings: Settings, *, migrate: bool = True) -> AsyncIterator[AsyncEngine]:
    """The node's database for one command: brought to the newest migration first (unless
    `migrate` is false), closed after."""
    engine = create_engine(settings.database_url, schema=settings.database_schema)
    try:
        if migrate:
            await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ValueError as exc:  # pydantic names the setting, never a secret's value
        raise click.ClickException(f"settings: {exc}") from None


@click.command()
@config_option
def serve(config: Path | None) -> None:
    """Run the node until SIGINT or SIGTERM (then it finishes requests in flight and stops)."""
    settings = _settings(config)
    configure_logging(settings.log_level)
    click.echo(f"serving {settings.member_id} on http://{settings.host}:{settings.port}", err=True)
    asyncio.run(serve_forever(settings))


@click.group()
def db() -> None:
    """The node's database."""


@db.command("upgrade")
@config_option
def db_upgrade(config: Path | None) -> None:
    """Apply every pending Alembic migration."""
    settings = _settings(config)

    async def run() -> None:
        async with database(settings):
            pass  # opening it migrates it

    asyncio.run(run())
    click.echo("database is at the newest migration")


@click.group()
def keys() -> None:
    """Signing key and data-protection keys."""


@keys.command("init")
@click.option("--member", required=True, help="GSS code of this node's authority.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/keys"),
    show_default=True,
)
def keys_init(member: str, out: Path) -> None:
    """Create the node's signing key and its data-protection key ring (refuses to overwrite)."""
    signing, ring = out / "signing-key.json", out / "data-keys.json"
    if signing.exists() or ring.exists():
        raise click.ClickException(f"keys already exist in {out}")
    write_signing_key(generate_signing_key(member), signing)
    write_keyfile(ring, KeyRing.generate())
    click.echo(f"signing_key_file = {json.dumps(str(signing))}")
    click.echo(f"keyfile = {json.dumps(str(ring))}")


@keys.command("rotate")
@config_option
@click.option("--retire", is_flag=True, help="Also drop the old keys once every row is re-wrapped.")
@click.option(
    "--stage",
    is_flag=True,
    help="Only add the new key, not yet current (several replicas: copy the file to each first).",
)
@click.option(
    "--promote", is_flag=True, help="Make the key --stage added current, and re-wrap under it."
)
def keys_rotate(config: Path | None, retire: bool, stage: bool, promote: bool) -> None:
    """Add a new key-encryption key, make it current, and re-wrap every sealed value's data key
    (episodes, requests, outbox messages, received copies and what requests told of their children,
    overrides, transfers, held disclosures, notifications).

    A running node follows its key file: it opens re-wrapped values and seals new ones under the new
    key without a restart. With several replicas (each with its own copy of the file), in two
    steps, so that no replica meets a row under a key it has not got: `--stage` adds the key, not
    yet current; copy the file to every replica; then `--promote` makes it current and re-wraps;
    copy the file again, then `cafx keys retire`. A key still named by any row is never retired.
    """
    if stage and (promote or retire):
        raise click.UsageError("--stage goes alone: promote once every replica has the key file")
    settings = _settings(config)
    keyfile = _keyfile(settings)
    ring = KeyRing.from_file(keyfile)
    if stage:
        staged = ring.with_new_key(current=False)
        write_keyfile(keyfile, staged, overwrite=True)
        click.echo(
            f"added key {staged.staged()}, not yet current (still {staged.current}): copy "
            f"{keyfile} to every replica, then `cafx keys rotate --promote`"
        )
        return
    if promote:
        waiting = ring.staged()
        if waiting is None:
            raise click.ClickException("no staged key to promote: `cafx keys rotate --stage` first")
        ring = ring.with_current(waiting)
    else:
        ring = ring.with_new_key()
    write_keyfile(keyfile, ring, overwrite=True)
    counts = _rewrap(settings, ring)
    done = ", ".join(f"{table} {n}" for table, n in counts.items() if n) or "nothing"
    click.echo(
        f"current key is now {ring.current}; re-wrapped {sum(counts.values())} value(s): {done}"
    )
    if retire:
        _retire(settings, keyfile, ring)


@keys.command("retire")
@config_option
def keys_retire(config: Path | None) -> None:
    """Drop every key but the current one: re-wraps what is still under an old key first, and
    refuses while any sealed value still names one (a node that had not yet seen the new key file)."""
    settings = _settings(config)
    keyfile = _keyfile(settings)
    ring = KeyRing.from_file(keyfile)
    counts = _rewrap(settings, ring)
    if any(counts.values()):
        click.echo(f"re-wrapped {sum(counts.values())} value(s) still under an old key")
    _retire(settings, keyfile, ring)


def _keyfile(settings: Settings) -> Path:
    """The key file to rotate: the one the node reads its keys from. A node given `keys_json`
    reads that (once, at start) whatever `keyfile` says: rotating the file would move every row
    to a key the node never gets."""
    if settings.keys_json is not None:
        raise click.ClickException(
            "the node reads its keys from keys_json (CAFX_KEYS_JSON), not from a file: rotate "
            "there, or give it a keyfile alone"
        )
    if settings.keyfile is None:
        raise click.ClickException(
            "rotation needs a keyfile (keys in the environment: rotate there)"
        )
    return settings.keyfile


def _rewrap(settings: Settings, ring: KeyRing) -> dict[str, int]:
    async def run() -> dict[str, int]:
        async with database(settings, migrate=False) as engine:
            # Not `begin()`: outside a transaction the re-wrap commits a batch at a time, so a
            # running SQLite node's writers are not locked out for the whole rotation.
            async with engine.connect() as connection:
                counts = await rewrap_sealed(connection, ring)
                await connection.commit()
                return counts

    try:
        return asyncio.run(run())
    except ProtectionError as exc:  # e.g. a row under a key no longer in the file: rule only
        raise click.ClickException(f"re-wrapping stopped: {exc.rule}") from None
    except OperationalError as exc:  # SQLite's "database is locked": a node's long write
        raise _stopped("re-wrapping", exc) from None


def _stopped(what: str, exc: OperationalError) -> click.ClickException:
    """A database that stayed busy (or went away) mid-run: the batches already committed stay, and
    `cafx keys retire` re-wraps the rest under the key now current (running `rotate` again would
    make yet another key and start over). The driver's class only: its text holds SQL."""
    return click.ClickException(
        f"{what} stopped: the database was busy or unavailable"
        f" ({type(exc.orig).__name__ if exc.orig is not None else 'OperationalError'});"
        " what was re-wrapped is kept: run `cafx keys retire` to finish (it re-wraps the rest)"
    )


def _retire(settings: Settings, keyfile: Path, ring: KeyRing) -> None:
    """Write the ring without its old keys, unless a sealed value still names one: retiring that
    key would make the value unreadable for good."""

    async def run() -> dict[str, int]:
        async with database(settings, migrate=False) as engine:
            async with engine.connect() as connection:
                return await old_keys_in_use(connection, ring.current)

    try:
        in_use = asyncio.run(run())
    except OperationalError as exc:
        raise _stopped("retiring", exc) from None
    if in_use:
        named = ", ".join(f"{key_id or '(none)'}: {n}" for key_id, n in sorted(in_use.items()))
        raise click.ClickException(
            f"not retired: sealed values still name old keys ({named}), written meanwhile by a"
            " node without the new key file; deploy it to every node, then run `cafx keys retire`"
        )
    retired = [k for k in ring.key_ids if k != ring.current]
    write_keyfile(keyfile, ring.without_keys(retired), overwrite=True)
    click.echo(f"retired {', '.join(retired) or 'nothing'}")


@click.group()
def clients() -> None:
    """Borough systems allowed to use /api/v1."""


@clients.command("add")
@config_option
@click.argument("name")
@click.option(
    "--scopes", required=True, help=f"Comma-separated, from: {', '.join(sorted(SCOPES))}."
)
@click.option(
    "--jwks",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The system's public keys (JWK Set) for private_key_jwt.",
)
@click.option(
    "--secret",
    help="Development only: a client secret for client_secret_basic, at least 32 characters;"
    " `-` reads it from the first line of standard input (out of the shell history and the"
    " process list).",
)
def clients_add(
    config: Path | None, name: str, scopes: str, jwks: Path | None, secret: str | None
) -> None:
    """Register a borough system; prints its client_id."""
    settings = _settings(config)
    if secret == "-":  # noqa: S105 - the stdin marker, not a secret
        secret = sys.stdin.readline().rstrip("\r\n")
    key_set = json.loads(jwks.read_text(encoding="utf-8")) if jwks else None

    async def run() -> str:
        async with database(settings) as engine:
            client = await register_client(
                engine,
                name,
                [s.strip() for s in scopes.split(",") if s.strip()],
                jwks=key_set,
                secret=secret,
            )
            return client.client_id

    try:
        click.echo(asyncio.run(run()))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@clients.command("disable")
@config_option
@click.argument("client_id")
def clients_disable(config: Path | None, client_id: str) -> None:
    """Take a borough system's access away: no new token, its tokens refused at once."""
    settings = _settings(config)

    async def run() -> bool:
        async with database(settings) as engine:
            return await disable_client(engine, client_id)

    if not asyncio.run(run()):
        raise click.ClickException("no such client")
    click.echo(f"{client_id} disabled")


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@config_option
@click.option(
    "--witness",
    "witness_logs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='The node\'s log (JSON lines): its "audit checkpoint" lines are checked too, so a'
    " chain cut back before one of them shows as truncated. Repeatable.",
)
def audit_verify(config: Path | None, witness_logs: tuple[Path, ...]) -> None:
    """Check every entry and signed checkpoint; exit 1 when the chain was tampered with.

    Checkpoints may be signed by the current signing key or by one this node signed with before
    (kept in the signing key's history file, `*.history.json` beside it). The newest checkpoint the
    node signed is also kept beside the signing key (`*.checkpoint.json`) and in its log; a
    database that ends before either is `truncated`."""
    settings = _settings(config)
    if settings.signing_key_file is None:
        raise click.ClickException("signing_key_file is not set")
    key = load_signing_key(settings.signing_key_file)
    earlier = remember_signing_key(settings.signing_key_file, key)
    kept = witness_file(settings.signing_key_file)
    logged = []
    for path in witness_logs:
        with path.open(encoding="utf-8", errors="replace") as lines:
            logged += witnesses_in(lines, settings.member_id)

    async def run() -> dict[str, object]:
        async with database(settings, migrate=False) as engine:
            log = AuditLog(
                engine,
                key,
                settings.member_id,
                settings.audit_checkpoint_every,
                earlier_keys=earlier,
                witness=kept,
            )
            return (await log.verify(logged)).as_dict()

    result = asyncio.run(run())
    click.echo(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)
