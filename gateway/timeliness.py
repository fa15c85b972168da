"""The time rules of the regional standards (DESIGN 3.6; standards 000, guidance 001): what is due
on an episode, and when. They make lists for people to act on, never blocks: nothing here refuses a change.

    rule               due on                                         met by
    first_tac_meeting  20 working days after the first completed      a TAC meeting: a review recorded
                       assessment (England and Wales bank holidays;   with `tac_meeting_held`
                       an episode from a CAF register, which gives
                       only the date, from that date)
    first_review       3 months after the first TAC meeting           a later review
    review             3 months after the latest review               the next review
                       (either: the `next_review_on` that meeting or review set, if earlier)
    reassessment       when the 4th review of the plan was held: the  a newer completed assessment
                       reviews after the first TAC meeting on or
                       after the latest completed assessment
    sign_off_meeting   on the closure (standard 000 D1: "a sign-off  a TAC meeting: the latest review
                       TAC/TAF meeting should always be held to      held by the closure recorded with
                       agree the closure"); not for a closure on      `tac_meeting_held` (a review held
                       consent withdrawn or a move to another          by the closure can be recorded
                       authority                                      late)
    archive            1 year after the closure                       the episode archived
    purge              7 years after the closure, and not before 6    the episode purged
                       years after it was archived here (a
                       transferred-out copy: 7 years after the
                       transfer was committed)

The first review counts from the first TAC meeting, as standard 000 says ("first reviewed within
three months of the first TAC/TAF meeting and thereafter every three months"), and a TAC meeting is
the review recorded as held at one.

Guidance 001 asks for a re-assessment after "4 reviews of an action plan" with insufficient
progress. The TAC meeting that agrees the plan is not a review of it (standard 000 C1 reviews the
plan "within three months of the first TAC/TAF meeting"), so the reviews counted are those held
after the first TAC meeting on or after the latest completed assessment (with no such meeting, every
review since that assessment). Progress is written as free text, which no rule can judge, so the
fourth review puts the question on the list and a person answers it (a new assessment takes it off).

The rules for open work (the first four) apply to open episodes only; a closed episode has nothing
due but its archiving, and an archived one its purge. A transferred-out episode is a read-only copy
(no event archives it; the new holder's closure governs the child's record): the only item on it is
its purge, 1 + 6 years after the transfer was committed, the date the `transfers` table records
(`due_by` reads it; without one, nothing is listed).

A date the calendar cannot hold (past 9999-12-31, from a far-future review or closure such as a
legacy "no date" sentinel) falls due on no day: that item is left out, never an error.

`gateway.retention` takes the archiving and purging steps when they fall due.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import holidays
from dateutil.relativedelta import relativedelta
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas import LONDON, ClosureOutcome, Episode, EpisodeState

from .episodes import EpisodeStore
from .protection import ProtectionError
from .storage import aware_utc
from .storage._tables import episodes, transfers

__all__ = [
    "Due",
    "DueList",
    "Listed",
    "TimeRule",
    "completed_on",
    "due_by",
    "due_items",
    "due_on_record",
    "transfers_committed",
    "working_days_after",
]

FIRST_TAC_WORKING_DAYS = 20
REVIEW_EVERY = relativedelta(months=3)
REVIEWS_BEFORE_REASSESSMENT = 4
ACCESSIBLE_AFTER_CLOSURE = relativedelta(years=1)
ARCHIVED_FOR = relativedelta(years=6)


class TimeRule(StrEnum):
    FIRST_TAC_MEETING = "first_tac_meeting"
    FIRST_REVIEW = "first_review"
    REVIEW = "review"
    REASSESSMENT = "reassessment"
    SIGN_OFF_MEETING = "sign_off_meeting"
    ARCHIVE = "archive"
    PURGE = "purge"


@dataclass(frozen=True, slots=True)
class Due:
    rule: TimeRule
    due_on: dt.date

    def days_overdue(self, today: dt.date) -> int:
        """Days past `due_on` (0 on the day, negative while it is still to come)."""
        return (today - self.due_on).days


@cache
def _bank_holidays() -> holidays.HolidayBase:
    """England and Wales share bank holidays. Built whole, once, and never expanded afterwards:
    lists are worked out in worker threads, and the library's calendar grows by itself (unsafely
    across threads) when asked about a year it has not filled in. Dates beyond these years count
    weekends only."""
    return holidays.country_holidays("GB", subdiv="ENG", years=_CALENDAR_YEARS, expand=False)


_CALENDAR_YEARS = range(1990, 2151)


def working_days_after(day: dt.date, working_days: int) -> dt.date:
    """The `working_days`-th working day after `day` (weekends and bank holidays skipped)."""
    return _bank_holidays().get_nth_working_day(day, working_days)


def due_items(
    episode: Episode,
    *,
    transferred_on: dt.date | None = None,
    archived_on: dt.date | None = None,
) -> list[Due]:
    """What is still to be done on `episode`, each with the day it is due, earliest first. Items
    already met are left out; whether one is overdue depends on the day asked (`Due.days_overdue`).
    `transferred_on`: the day a transferred-out episode's transfer was committed (its purge clock);
    `archived_on`: the day an archived episode was archived here.
    """
    closed_on = episode.closure.closed_on if episode.closure is not None else None
    if episode.state == EpisodeState.OPEN:
        found = _open_work(episode)
    elif episode.state == EpisodeState.CLOSED:
        found = [
            *_sign_off(episode),
            *_after(closed_on, TimeRule.ARCHIVE, ACCESSIBLE_AFTER_CLOSURE),
        ]
    elif episode.state == EpisodeState.TRANSFERRED:
        found = _after(transferred_on, TimeRule.PURGE, ACCESSIBLE_AFTER_CLOSURE + ARCHIVED_FOR)
    elif episode.state == EpisodeState.ARCHIVED:
        found = _purge_of_archived(closed_on, archived_on)
    else:  # potential (a step-down not yet taken up): no assessment clock runs
        found = []
    return sorted(found, key=lambda due: (due.due_on, due.rule.value))


async def due_on_record(connection: AsyncConnection, episode: Episode) -> list[Due]:
    """`due_items` of a stored episode, with its clocks as `connection` reads them now."""
    episode_id = str(episode.episode_id)
    archived_at = await connection.scalar(
        select(episodes.c.archived_at).where(episodes.c.id == episode_id)
    )
    moved = await transfers_committed(connection, [episode_id])
    return due_items(
        episode, transferred_on=moved.get(episode_id), archived_on=_london_day(archived_at)
    )


def _london_day(at: dt.datetime | None) -> dt.date | None:
    return aware_utc(at).astimezone(LONDON).date() if at is not None else None


def _on(day: Callable[[], dt.date]) -> dt.date | None:
    """`day()`, or None when it falls past the calendar's end (9999-12-31): due on no day."""
    try:
        return day()
    except (ValueError, OverflowError):  # "year 10000 is out of range", "date value out of range"
        return None


# A CAF register row gives the assessment's completion date, but not the assessment (no assessor,
# no reason): the date is kept in the register's extensions, and the clocks run from it.
_REGISTER_COMPLETED = ("caf-register-csv", "assessment_completed")


def completed_on(episode: Episode) -> list[dt.date]:
    """The completion dates of its assessments, oldest first; for an episode from a CAF register
    (no assessment recorded), the completion date the register gave."""
    completed = [a.completed_on for a in episode.assessments if a.completed_on is not None]
    if completed:
        return sorted(completed)
    kept = episode.extensions.get(_REGISTER_COMPLETED[0], {}).get(_REGISTER_COMPLETED[1])
    try:
        return [dt.date.fromisoformat(kept)] if isinstance(kept, str) else []
    except ValueError:
        return []


def _open_work(episode: Episode) -> list[Due]:
    completed = completed_on(episode)
    if not completed:
        return []
    first, latest = completed[0], completed[-1]
    reviews = sorted(episode.reviews, key=lambda review: review.held_on)
    found: list[tuple[TimeRule, dt.date | None]] = []
    meetings = [r for r in reviews if r.tac_meeting_held and r.held_on >= first]
    if not meetings:
        found.append(
            (
                TimeRule.FIRST_TAC_MEETING,
                _on(lambda: working_days_after(first, FIRST_TAC_WORKING_DAYS)),
            )
        )
    else:
        later = [r for r in reviews if r.held_on > meetings[0].held_on]
        last = later[-1] if later else meetings[0]  # the clock runs from the latest of them
        next_on = _on(lambda: last.held_on + REVIEW_EVERY)
        if last.next_review_on is not None:
            next_on = min(next_on or dt.date.max, last.next_review_on)
        found.append((TimeRule.REVIEW if later else TimeRule.FIRST_REVIEW, next_on))
    # Reviews of the plan: those after the meeting that agreed it, the first TAC meeting since the
    # latest assessment (without one, every review since that assessment).
    agreed = next((r for r in reviews if r.tac_meeting_held and r.held_on >= latest), None)
    of_plan = [
        r for r in reviews if (r.held_on > agreed.held_on if agreed else r.held_on >= latest)
    ]
    if len(of_plan) >= REVIEWS_BEFORE_REASSESSMENT:
        found.append((TimeRule.REASSESSMENT, of_plan[REVIEWS_BEFORE_REASSESSMENT - 1].held_on))
    return [Due(rule, on) for rule, on in found if on is not None]


# Closures agreed without the team: the family withdrew its consent, or the child moved away (the
# transfer's own steps hand the work over).
_NO_SIGN_OFF = frozenset({ClosureOutcome.CONSENT_WITHDRAWN, ClosureOutcome.MOVED_AUTHORITY})


def _sign_off(episode: Episode) -> list[Due]:
    """The sign-off TAC meeting, due on the closure until the latest review held by then is one
    held at a TAC meeting."""
    closure = episode.closure
    if closure is None or closure.outcome in _NO_SIGN_OFF:
        return []
    held = [r for r in episode.reviews if r.held_on <= closure.closed_on]
    last_day = max((r.held_on for r in held), default=None)
    if any(r.tac_meeting_held for r in held if r.held_on == last_day):
        return []
    return [Due(TimeRule.SIGN_OFF_MEETING, closure.closed_on)]


def _after(since: dt.date | None, rule: TimeRule, period: relativedelta) -> list[Due]:
    """`rule` due `period` after `since`; nothing when there is no date to count from (closed
    before closures were recorded), or the day falls past the calendar's end."""
    due_on = _on(lambda: since + period) if since is not None else None
    return [] if due_on is None else [Due(rule, due_on)]


def _purge_of_archived(closed_on: dt.date | None, archived_on: dt.date | None) -> list[Due]:
    """7 years after the closure, and not before 6 years archived here: a closure dated years back
    (by mistake, or a legacy "no date" value) does not purge at once what was just archived. A
    closure whose 7 years end past the calendar's last day is due on no day, whenever archived."""
    after_closure = _after(closed_on, TimeRule.PURGE, ACCESSIBLE_AFTER_CLOSURE + ARCHIVED_FOR)
    if closed_on is not None and not after_closure:
        return []
    days = [d.due_on for d in (*after_closure, *_after(archived_on, TimeRule.PURGE, ARCHIVED_FOR))]
    return [Due(TimeRule.PURGE, max(days))] if days else []


@dataclass(frozen=True, slots=True)
class Listed:
    episode_id: str
    due: Due


# The version of a stored episode: its revision and the time of its last write (an episode purged
# and stored again under its id starts again at revision 1).
Version = tuple[int, dt.datetime]

# Per store: each episode's items at the version they were worked out at. An episode is opened
# (decrypted, validated) again only when its version moved, so a list over every episode costs one
# query and the changed episodes, not a decryption of all of them each time.
_worked_out: weakref.WeakKeyDictionary[EpisodeStore, dict[str, tuple[Version, list[Due]]]] = (
    weakref.WeakKeyDictionary()
)


def _version(row: Any) -> Version:
    return row.revision, aware_utc(row.updated_at)


# Changed episodes are read this many at a time, each batch on a connection held only for its
# query, and opened off the event loop: a first list after a start (every episode changed) neither
# holds SQLite's one connection nor stalls the loop while it decrypts them all.
CHUNK = 200


@dataclass(frozen=True, slots=True)
class DueList:
    items: list[Listed]  # earliest first
    unreadable: list[str]  # episodes that no longer open (`cafx episodes check` says why)


def _work_out(
    store: EpisodeStore, rows: Sequence[Any], transferred: dict[str, dt.date]
) -> list[tuple[str, Version, list[Due] | None]]:
    """Each row's items (None: it no longer opens). Run off the event loop."""
    found: list[tuple[str, Version, list[Due] | None]] = []
    for row in rows:
        try:
            episode = store.open_stored(row.id, row.document)
        except (ProtectionError, ValidationError):
            found.append((row.id, _version(row), None))
            continue
        items = due_items(
            episode,
            transferred_on=transferred.get(row.id),
            archived_on=_london_day(row.archived_at),
        )
        found.append((row.id, _version(row), items))
    return found


async def _read_chunk(
    engine: AsyncEngine, chunk: list[str]
) -> tuple[Sequence[Any], dict[str, dt.date]]:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    episodes.c.id,
                    episodes.c.revision,
                    episodes.c.updated_at,
                    episodes.c.document,
                    episodes.c.archived_at,
                ).where(episodes.c.id.in_(chunk))
            )
        ).all()
        return rows, await transfers_committed(connection, chunk)


async def transfers_committed(
    connection: AsyncConnection, episode_ids: Sequence[str]
) -> dict[str, dt.date]:
    """Episode id -> the day (in London) its latest transfer away was committed, for those of
    `episode_ids` that moved: a transferred-out copy's purge clock."""
    committed = await connection.execute(
        select(transfers.c.episode_id, func.max(transfers.c.updated_at).label("at"))
        .where(
            transfers.c.episode_id.in_(episode_ids),
            transfers.c.direction == "out",
            transfers.c.state == "committed",
        )
        .group_by(transfers.c.episode_id)
    )
    return {row.episode_id: aware_utc(row.at).astimezone(LONDON).date() for row in committed}


async def due_by(
    engine: AsyncEngine, store: EpisodeStore, day: dt.date, rules: frozenset[TimeRule]
) -> DueList:
    """Every item of `rules` due on or before `day` on the episodes held here, earliest first. An
    episode that no longer opens is left out and named, so one cannot hide the rest."""
    # One list at a time per store: two cold lists at once would each open every episode.
    async with _listing.setdefault(store, asyncio.Lock()):
        return await _due_by(engine, store, day, rules)


_listing: weakref.WeakKeyDictionary[EpisodeStore, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _due_by(
    engine: AsyncEngine, store: EpisodeStore, day: dt.date, rules: frozenset[TimeRule]
) -> DueList:
    known = _worked_out.setdefault(store, {})
    async with engine.connect() as connection:
        current = {
            row.id: _version(row)
            for row in await connection.execute(
                select(episodes.c.id, episodes.c.revision, episodes.c.updated_at)
            )
        }
    for gone in known.keys() - current.keys():
        del known[gone]
    changed = [i for i, version in current.items() if known.get(i, (None,))[0] != version]
    unreadable: list[str] = []
    loop = asyncio.get_running_loop()
    for start in range(0, len(changed), CHUNK):
        rows, transferred = await _read_chunk(engine, changed[start : start + CHUNK])
        worked = await loop.run_in_executor(None, _work_out, store, rows, transferred)
        for episode_id, version, items in worked:  # a row gone meanwhile is simply not here
            if items is None:
                known.pop(episode_id, None)
                unreadable.append(episode_id)
            else:
                known[episode_id] = (version, items)
    listed = [
        Listed(episode_id, due)
        for episode_id, (_, items) in known.items()
        if episode_id in current
        for due in items
        if due.rule in rules and due.due_on <= day
    ]
    listed.sort(key=lambda item: (item.due.due_on, item.due.rule.value, item.episode_id))
    return DueList(listed, sorted(unreadable))
