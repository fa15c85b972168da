"""`cafx episodes check`: which stored episodes no longer open, and why; `cafx register reindex`:
the register per child made for requests answered before it existed.

A node re-validates every episode it reads. A rule added after an episode was stored (a repeated
consent statement id, a control character in one) makes that episode fail where it is read; this
finds every such episode at once, by id and rule, so it can be put right at its source before
anyone trips over it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from ..app import key_ring
from ..episodes import EpisodeStore
from ..federation.practitioner import remember_answered_children
from ..protection import KeyRing, ProtectionError
from ..settings import Settings
from ._node import _settings, config_option, database

__all__ = ["episodes", "register"]


def _ring(settings: Settings) -> KeyRing:
    try:
        return key_ring(settings)
    except ProtectionError as exc:
        raise click.ClickException(f"keys: {exc.rule}") from None
    except RuntimeError as exc:  # neither set
        raise click.ClickException(str(exc)) from None


@click.group()
def episodes() -> None:
    """The episodes a node holds."""


@episodes.command("check")
@config_option
def episodes_check(config: Path | None) -> None:
    """List stored episodes that no longer open (ids and rules only); exit 1 if there are any."""
    settings = _settings(config)
    store = EpisodeStore(_ring(settings))

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


@click.group()
def register() -> None:
    """The sharing register."""


@register.command("reindex")
@config_option
def register_reindex(config: Path | None) -> None:
    """Make the register per child (subject access) for requests answered before it existed:
    what each answered request told of its child. Safe to run again, with the node running."""
    settings = _settings(config)
    ring = _ring(settings)

    async def run() -> int:
        async with database(settings, migrate=False) as engine:
            return await remember_answered_children(engine, ring)

    named = asyncio.run(run())
    click.echo(f"{named} answered request(s) named an episode; the register per child has them")
