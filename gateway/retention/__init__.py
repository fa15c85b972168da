"""Retention (DESIGN 3.6, standard 000 D3): a closed episode stays accessible for a year, is then
archived for six more, then purged (`_episodes`); the other records holding something about a child
(received copies, requests and their idempotency keys, overrides, held disclosures, notifications,
dead letters, transfer offers that moved nothing) go 7 years after they came (`_records`). Each
step is audited, once, also with replicas passing at once.

Only the node takes the steps, never a command beside it: on SQLite the node keeps the head of the
audit chain in memory, which another process appending would fork.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import london_today

from ..audit_log import AuditLog
from ..background import Loops
from ..episodes import EpisodeStore
from ..keys import AUDIT, ENGINE, EPISODES, SETTINGS
from ._episodes import EpisodeSteps, take_episode_steps
from ._records import KEPT_YEARS, remove_old_records

__all__ = [
    "KEPT_YEARS",
    "RETENTION_ACTOR",
    "RetentionPass",
    "apply_retention",
    "retention_context",
]

log = logging.getLogger("cafx.retention")

RETENTION_ACTOR = "node:retention"  # the audit actor of the node's own passes


@dataclass(frozen=True, slots=True)
class RetentionPass(EpisodeSteps):
    """What one pass did: episodes by id (`EpisodeSteps`), other records counted by audit action."""

    records: dict[str, int] = field(default_factory=dict)


async def apply_retention(
    engine: AsyncEngine,
    store: EpisodeStore,
    audit: AuditLog,
    today: dt.date,
    *,
    actor: str = RETENTION_ACTOR,
) -> RetentionPass:
    """Take every step due on or before `today`: episodes first, then the other records."""
    steps = await take_episode_steps(engine, store, audit, today, actor)
    records = await remove_old_records(audit, today, actor)
    return RetentionPass(
        archived=steps.archived,
        purged=steps.purged,
        skipped=steps.skipped,
        unreadable=steps.unreadable,
        records=records,
    )


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: a retention pass at start and every `retention_interval_seconds` (0: none)."""
    interval = app[SETTINGS].retention_interval_seconds
    if not interval:
        yield
        return

    async def run() -> None:
        done = await apply_retention(app[ENGINE], app[EPISODES], app[AUDIT], london_today())
        if done.archived or done.purged or done.skipped or done.unreadable or done.records:
            log.info(
                "retention pass",
                extra={
                    "archived": len(done.archived),
                    "purged": len(done.purged),
                    "skipped": len(done.skipped),
                    "unreadable": len(done.unreadable),
                    "records": done.records,
                },
            )

    loops = Loops()
    loops.start(interval, run, "retention")
    yield
    await loops.stop()
