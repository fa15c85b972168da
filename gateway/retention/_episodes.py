"""Episodes' steps: a closed episode is archived a year after its closure and purged six years
later; a transferred-out copy is purged 7 years after its transfer was committed. `gateway.timeliness`
says when each step is due; this takes the steps.

- Archiving marks the episode `archived` and records when (`episodes.archived_at`): it is purged 7
  years after its closure, and not before 6 years archived here, however far back its closure was
  dated. It is kept, read-only, and still read here by id or by search, but it no longer answers
  existence checks nor is it disclosed (`federation.holder`, `federation.disclosing`). A consent
  withdrawal is still recorded on it and pushed.
- Purging deletes the episode and its blind indexes, and clears the lead professional its
  transfer records sealed. The sharing register, the transfer records and the audit chain keep
  their rows: ids, member codes and consent statement ids, nothing about the child. A
  transferred-out copy's statement ids are kept on its transfer record, so a withdrawal from the
  member it moved to is passed back along the chain as it was before the purge.
- Each step is one transaction with its audit entry (`episode.archive`, `episode.purge`), taken
  only if the episode is still due when read again under a row lock, no transfer of it is under
  way, and nobody changed it since (compare-and-swap on its revision). Replicas may run passes at
  once: each step happens once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas import Episode, EpisodeState

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..episodes import EpisodeStore, Stored
from ..errors import Conflict, NotFound
from ..protection import ProtectionError
from ..storage._tables import transfers
from ..timeliness import TimeRule, due_by, due_on_record

__all__ = ["EpisodeSteps", "take_episode_steps"]

_STEPS = frozenset({TimeRule.ARCHIVE, TimeRule.PURGE})
_UNDER_WAY = ("offered", "accepted")


@dataclass(frozen=True, slots=True)
class EpisodeSteps:
    """What one pass did to episodes, by episode id."""

    archived: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    # Listed as due, but changed (or taken by another replica) before the step: the next pass
    # looks again.
    skipped: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # no longer open (`cafx episodes check`)


async def take_episode_steps(
    engine: AsyncEngine, store: EpisodeStore, audit: AuditLog, today: dt.date, actor: str
) -> EpisodeSteps:
    """Archive and purge every episode due on or before `today`."""
    listing = await due_by(engine, store, today, _STEPS)
    done = EpisodeSteps(unreadable=listing.unreadable)
    for item in listing.items:
        try:
            took = await _step(store, audit, item.episode_id, item.due.rule, today, actor)
        except (Conflict, NotFound, ProtectionError, ValidationError):  # changed since listed
            took = False
        if not took:
            done.skipped.append(item.episode_id)
        elif item.due.rule is TimeRule.ARCHIVE:
            done.archived.append(item.episode_id)
        else:
            done.purged.append(item.episode_id)
    return done


async def _step(
    store: EpisodeStore,
    audit: AuditLog,
    episode_id: str,
    rule: TimeRule,
    today: dt.date,
    actor: str,
) -> bool:
    """Take `rule`'s step on the episode if it is still due; False if it no longer is."""
    async with audit.transaction() as connection:
        stored = await store.get(connection, episode_id, for_update=True)
        due = await due_on_record(connection, stored.episode)
        if not any(d.rule is rule and d.due_on <= today for d in due):
            return False
        if await _moving(connection, episode_id):  # a commit would find nothing to replace
            return False
        if rule is TimeRule.ARCHIVE:
            await store.replace(connection, stored, _archived(stored.episode))
            details: dict[str, int | str] = {"rule": rule.value}
        else:
            details = {"rule": rule.value, **await _purge(connection, store, stored)}
        await audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action=f"episode.{rule.value}",
                outcome=Outcome.SUCCESS,
                subject=episode_id,
                details=details,
            ),
        )
    return True


def _archived(episode: Episode) -> Episode:
    # Validated whole, as every change is: a closure stays valid on an archived episode.
    return Episode.model_validate(episode.model_dump(mode="json") | {"state": "archived"})


async def _moving(connection: AsyncConnection, episode_id: str) -> bool:
    """Whether a transfer of the episode is under way (offered or accepted, either way)."""
    found = await connection.scalar(
        select(transfers.c.id)
        .where(transfers.c.episode_id == episode_id, transfers.c.state.in_(_UNDER_WAY))
        .limit(1)
    )
    return found is not None


async def _purge(
    connection: AsyncConnection, store: EpisodeStore, stored: Stored
) -> dict[str, int]:
    """The episode and its blind indexes go, with the lead professional its transfer records
    sealed. The sharing register and the transfer records themselves stay: ids, member codes and
    consent statement ids, no personal data about the child. They are the record of who was shown
    what, and a withdrawal told later still finds, through them, the members to pass it on to: a
    transferred-out copy's statement ids are kept on its transfer record for that."""
    episode = stored.episode
    episode_id = str(episode.episode_id)
    await store.purge(connection, stored)
    cleared = await connection.execute(
        update(transfers)
        .where(transfers.c.episode_id == episode_id, transfers.c.sealed.is_not(None))
        .values(sealed=None, key_id=None)
    )
    if episode.state is EpisodeState.TRANSFERRED:  # what `withdrawals` asks of a copy moved on
        await connection.execute(
            update(transfers)
            .where(
                transfers.c.episode_id == episode_id,
                transfers.c.direction == "out",
                transfers.c.state == "committed",
            )
            .values(kept_consent_ids=json.dumps(sorted({c.consent_id for c in episode.consents})))
        )
    return {"transfer_records_cleared": cleared.rowcount}
