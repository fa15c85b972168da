"""`cafx episodes check`: which stored episodes no longer open, and why.

A node re-validates every episode it reads. A rule added after an episode was stored (a repeated
consent statement id, a control character in one) makes that episode fail where it is read; this
finds every such episode at once, by id and rule, so it can be put right at its source before
anyone trips over it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from ..episodes import EpisodeStore
from ..protection import KeyRing, ProtectionError
from ._node import _settings, config_option, database

__all__ = ["episodes"]


@click.group()
def episodes() -> None:
    """The episodes a node holds."""


@episodes.command("check")
@config_option
def episodes_check(config: Path | None) -> None:
    """List stored episodes that no longer open (ids and rules only); exit 1 if there are any."""
    settings = _settings(config)
    try:
        if settings.keys_json is not None:
            ring = KeyRing.from_json(settings.keys_json.get_secret_value())
        elif settings.keyfile is not None:
            ring = KeyRing.from_file(settings.keyfile)
        else:
            raise click.ClickException("keyfile (or keys_json) is not set")
    except ProtectionError as exc:
        raise click.ClickException(f"keys: {exc.rule}") from None
    store = EpisodeStore(ring)

    async def run() -> int:
        found = 0
        async with database(settings, migrate=False) as engine, engine.connect() as connection:
            async for episode_id, problems in store.unreadable(connection):
                found += 1
                rules = ", ".join(f"{p.pointer} {p.rule}" for p in problems)
                click.echo(f"{episode_id}: {rules}")
        return found

    found = asyncio.run(run())
    click.echo(f"{found} episode(s) do not open", err=True)
    if found:
        raise SystemExit(1)
