"""The console's list of what is due (DESIGN 3.6): the time rules over the episodes held here, late
items first, each linked to its child view. The same list as `GET /api/v1/overdue`."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from schemas import london_today

from ..keys import ENGINE, EPISODES
from ..timeliness import TimeRule, due_by
from ._web import audit, render

__all__ = ["due_page"]

AHEAD_DAYS = (0, 7, 28)  # what the page offers: late only, or also the next week or four
LISTED = 500
DESCRIBED = {
    TimeRule.FIRST_TAC_MEETING: "First TAC meeting (20 working days after the assessment)",
    TimeRule.FIRST_REVIEW: "First review (3 months after the first TAC meeting)",
    TimeRule.REVIEW: "Review (every 3 months)",
    TimeRule.REASSESSMENT: "Re-assessment to consider (4 reviews since the latest assessment)",
    TimeRule.ARCHIVE: "Archive (a year after closure)",
    TimeRule.PURGE: "Purge (6 years after archiving)",
}


async def due_page(request: web.Request) -> web.Response:
    ahead = request.query.get("ahead_days", "0")
    days = int(ahead) if ahead in {str(a) for a in AHEAD_DAYS} else 0
    today = london_today()
    async with request.config_dict[ENGINE].connect() as connection:
        found = await due_by(
            connection,
            request.config_dict[EPISODES],
            today + dt.timedelta(days=days),
            frozenset(TimeRule),
        )
    listed = found.items
    items = [
        {
            "episode_id": item.episode_id,
            "what": DESCRIBED[item.due.rule],
            "due_on": item.due.due_on.strftime("%d %b %Y"),
            "late": item.due.days_overdue(today),
        }
        for item in listed[:LISTED]
    ]
    # The ids shown, as the queue's are: a subject access request finds every view of a child.
    shown = tuple(dict.fromkeys(item.episode_id for item in listed[:LISTED]))
    await audit(request, "console.view", None, page="due", results=len(items), episodes=shown)
    return render(
        request,
        "due.html",
        {
            "title": "Due",
            "items": items,
            "more": len(listed) - len(items),
            "ahead": days,
            "choices": AHEAD_DAYS,
            "unreadable": found.unreadable,
        },
    )
