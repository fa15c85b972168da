"""Quality assurance of the CAF work held here (standard 000 E; progress report 004).

Standard 000 asks each Children's Trust to analyse its CAF data routinely, sharing "an agreed minimum
common data set" regionally, and to "audit a proportion of closed CAFs (suggested 1 in 10) for the
quality of process and impact on outcomes"; report 004 measures engagement as CAFs per 10,000
children. `quality_report` gives both for a period: counts only (no child is named or can be picked
out: nothing is broken down below the whole borough), and the closed episodes drawn for audit, by
id. The draw is fixed for a period (the same ids each time it is asked) but not guessable from an
id alone: each closed episode is ranked by a hash of the period and its id, and the first tenth
(at least one) is drawn.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import Episode, EpisodeState

from .episodes import EpisodeStore
from .protection import ProtectionError
from .storage._tables import episodes
from .timeliness import completed_on

__all__ = ["AUDIT_ONE_IN", "QualityReport", "quality_report"]

AUDIT_ONE_IN = 10  # standard 000 E: "a proportion of closed CAFs (suggested 1 in 10)"
_CHUNK = 200


@dataclass(slots=True)
class QualityReport:
    start: dt.date
    end: dt.date
    held: Counter[str] = field(default_factory=Counter)  # episodes held now, by state
    assessed: int = 0  # first assessment completed in the period
    whole_family: int = 0  # of those, recorded as part of a family (family_ref)
    stepped_down: Counter[str] = field(default_factory=Counter)  # of those, by step-down service
    closed: Counter[str] = field(default_factory=Counter)  # closed in the period, by outcome
    reviews: int = 0  # reviews held in the period
    tac_meetings: int = 0  # of those, held at a TAC meeting
    unreadable: int = 0  # episodes that no longer open (`cafx episodes check` names them)
    audit_sample: list[str] = field(default_factory=list)  # closed episode ids drawn for audit

    def as_json(self, children: int | None) -> dict[str, Any]:
        """The report as the API gives it; with the borough's number of children (0 to 17), the
        CAFs assessed in the period per 10,000 of them, as report 004 measures engagement."""
        rate = None if not children else round(self.assessed * 10_000 / children, 1)
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "held_by_state": dict(sorted(self.held.items())),
            "assessed": self.assessed,
            "assessed_per_10000_children": rate,
            "whole_family": self.whole_family,
            "stepped_down_by_service": dict(sorted(self.stepped_down.items())),
            "closed_by_outcome": dict(sorted(self.closed.items())),
            "reviews": self.reviews,
            "tac_meetings": self.tac_meetings,
            "unreadable": self.unreadable,
            "audit_sample": self.audit_sample,
            "audit_one_in": AUDIT_ONE_IN,
        }


def _count(report: QualityReport, episode: Episode, closed: list[str]) -> None:
    """An episode transferred away is counted by the member holding it now, not here as well."""
    if episode.state == EpisodeState.TRANSFERRED:
        return
    start, end = report.start, report.end
    report.held[episode.state.value] += 1
    first = next(iter(completed_on(episode)), None)
    if first is not None and start <= first <= end:
        report.assessed += 1
        report.whole_family += episode.family_ref is not None
        if episode.source.step_down is not None:
            report.stepped_down[episode.source.step_down.value] += 1
    closure = episode.closure
    if closure is not None and start <= closure.closed_on <= end:
        report.closed[closure.outcome.value] += 1
        closed.append(str(episode.episode_id))
    for review in episode.reviews:
        if start <= review.held_on <= end:
            report.reviews += 1
            report.tac_meetings += review.tac_meeting_held


def _counted(
    store: EpisodeStore, rows: Sequence[Any], report: QualityReport, closed: list[str]
) -> None:
    """Open and count a chunk of rows (off the event loop: opening is CPU work)."""
    for row in rows:
        try:
            episode = store.open_stored(row.id, row.document)
        except (ProtectionError, ValidationError):
            report.unreadable += 1
            continue
        _count(report, episode, closed)


def audit_sample(closed: Sequence[str], start: dt.date, end: dt.date) -> list[str]:
    """One in `AUDIT_ONE_IN` of `closed` (at least one when any closed), ranked by a hash of the
    period and each id: the same draw for the same period, whatever order the ids come in."""
    if not closed:
        return []
    period = f"{start.isoformat()}/{end.isoformat()}/"

    def rank(episode_id: str) -> str:
        return hashlib.sha256((period + episode_id).encode()).hexdigest()

    drawn = sorted(closed, key=rank)[: math.ceil(len(closed) / AUDIT_ONE_IN)]
    return sorted(drawn)


async def quality_report(
    engine: AsyncEngine, store: EpisodeStore, start: dt.date, end: dt.date
) -> QualityReport:
    """The period's figures and audit draw, over every episode held here."""
    report = QualityReport(start, end)
    closed: list[str] = []
    async with engine.connect() as connection:
        ids = list(await connection.scalars(select(episodes.c.id).order_by(episodes.c.id)))
    loop = asyncio.get_running_loop()
    for first in range(0, len(ids), _CHUNK):
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(episodes.c.id, episodes.c.document).where(
                        episodes.c.id.in_(ids[first : first + _CHUNK])
                    )
                )
            ).all()
        await loop.run_in_executor(None, _counted, store, rows, report, closed)
    report.audit_sample = audit_sample(closed, start, end)
    return report
