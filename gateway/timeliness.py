"""The time rules of the regional standards (DESIGN 3.6; standards 000, guidance 001): what is due
on an episode, and when. They make lists for people to act on, never blocks: nothing here refuses a change.

    rule               due on                                         met by
    first_tac_meeting  20 working days after the first completed      a TAC meeting: a review recorded
                       assessment (England and Wales bank holidays)   with `tac_meeting_held`
    first_review       3 months after the first TAC meeting           a later review
    review             3 months after the latest review               the next review
                       (either: the `next_review_on` that meeting or review set, if earlier)
    reassessment       when the 4th review since the latest completed a newer completed assessment
                       assessment was held
    archive            1 year after the closure                       the episode archived
    purge              6 years after archiving; the archiving date is the episode purged
                       not recorded, so 7 years after the closure

The first review counts from the first TAC meeting, as standard 000 says ("first reviewed within
three months of the first TAC/TAF meeting and thereafter every three months"), and a TAC meeting is
the review recorded as held at one.

Guidance 001 asks for a re-assessment after four reviews with insufficient progress. Progress is
written as free text, which no rule can judge, so the fourth review since the latest assessment
puts the question on the list and a person answers it (a new assessment takes it off).

The rules for open work (the first four) apply to open episodes only; a closed or transferred
episode has nothing due but its archiving, and an archived one its purge.
"""

from __future__ import annotations

import datetime as dt
import weakref
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import holidays
from dateutil.relativedelta import relativedelta
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Episode, EpisodeState

from .episodes import EpisodeStore
from .errors import NotFound
from .protection import ProtectionError
from .storage._tables import episodes

__all__ = ["Due", "DueList", "Listed", "TimeRule", "due_items", "due_by", "working_days_after"]

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
    return holidays.country_holidays("GB", subdiv="ENG")  # England and Wales share bank holidays


def working_days_after(day: dt.date, working_days: int) -> dt.date:
    """The `working_days`-th working day after `day` (weekends and bank holidays skipped)."""
    return _bank_holidays().get_nth_working_day(day, working_days)


def due_items(episode: Episode) -> list[Due]:
    """What is still to be done on `episode`, each with the day it is due, earliest first. Items
    already met are left out; whether one is overdue depends on the day asked (`Due.days_overdue`)."""
    if episode.state == EpisodeState.OPEN:
        found = _open_work(episode)
    elif episode.state in (EpisodeState.CLOSED, EpisodeState.TRANSFERRED):
        found = _retention(episode, archived=False)
    elif episode.state == EpisodeState.ARCHIVED:
        found = _retention(episode, archived=True)
    else:  # potential (a step-down not yet taken up): no assessment clock runs
        found = []
    return sorted(found, key=lambda due: (due.due_on, due.rule.value))


def _open_work(episode: Episode) -> list[Due]:
    completed = sorted(a.completed_on for a in episode.assessments if a.completed_on is not None)
    if not completed:
        return []
    first, latest = completed[0], completed[-1]
    reviews = sorted(episode.reviews, key=lambda review: review.held_on)
    found: list[Due] = []
    meetings = [r for r in reviews if r.tac_meeting_held and r.held_on >= first]
    if not meetings:
        found.append(
            Due(TimeRule.FIRST_TAC_MEETING, working_days_after(first, FIRST_TAC_WORKING_DAYS))
        )
    else:
        later = [r for r in reviews if r.held_on > meetings[0].held_on]
        last = later[-1] if later else meetings[0]  # the clock runs from the latest of them
        next_on = last.held_on + REVIEW_EVERY
        if last.next_review_on is not None:
            next_on = min(next_on, last.next_review_on)
        found.append(Due(TimeRule.REVIEW if later else TimeRule.FIRST_REVIEW, next_on))
    since_assessed = [r for r in reviews if r.held_on >= latest]
    if len(since_assessed) >= REVIEWS_BEFORE_REASSESSMENT:
        found.append(
            Due(TimeRule.REASSESSMENT, since_assessed[REVIEWS_BEFORE_REASSESSMENT - 1].held_on)
        )
    return found


def _retention(episode: Episode, *, archived: bool) -> list[Due]:
    if episode.closure is None:  # closed before closures were recorded: no date to count from
        return []
    archive_on = episode.closure.closed_on + ACCESSIBLE_AFTER_CLOSURE
    if archived:
        return [Due(TimeRule.PURGE, archive_on + ARCHIVED_FOR)]
    return [Due(TimeRule.ARCHIVE, archive_on)]


@dataclass(frozen=True, slots=True)
class Listed:
    episode_id: str
    due: Due


# Per store: each episode's items at the revision they were worked out at. An episode is opened
# (decrypted, validated) again only when its revision moved, so a list over every episode costs one
# query and the changed episodes, not a decryption of all of them each time.
_worked_out: weakref.WeakKeyDictionary[EpisodeStore, dict[str, tuple[int, list[Due]]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class DueList:
    items: list[Listed]  # earliest first
    unreadable: list[str]  # episodes that no longer open (`cafx episodes check` says why)


async def due_by(
    connection: AsyncConnection, store: EpisodeStore, day: dt.date, rules: frozenset[TimeRule]
) -> DueList:
    """Every item of `rules` due on or before `day` on the episodes held here, earliest first. An
    episode that no longer opens is left out and named, so one cannot hide the rest."""
    known = _worked_out.setdefault(store, {})
    current = {
        row.id: row.revision
        for row in await connection.execute(select(episodes.c.id, episodes.c.revision))
    }
    for gone in known.keys() - current.keys():
        del known[gone]
    unreadable: list[str] = []
    for episode_id, revision in current.items():
        if episode_id in known and known[episode_id][0] == revision:
            continue
        try:
            stored = await store.get(connection, episode_id)
        except NotFound:  # deleted meanwhile
            continue
        except (ProtectionError, ValidationError):
            known.pop(episode_id, None)
            unreadable.append(episode_id)
            continue
        known[episode_id] = (stored.revision, due_items(stored.episode))
    listed = [
        Listed(episode_id, due)
        for episode_id, (_, items) in known.items()
        if episode_id in current
        for due in items
        if due.rule in rules and due.due_on <= day
    ]
    listed.sort(key=lambda item: (item.due.due_on, item.due.rule.value, item.episode_id))
    return DueList(listed, sorted(unreadable))
