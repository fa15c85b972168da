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
    TimeRule.REASSESSMENT: "Re-assessment to consider (4 reviews of the plan)",
    TimeRule.SIGN_OFF_MEETING: "Sign-off TAC meeting to agree the closure",
    TimeRule.ARCHIVE: "Archive (a year after closure)",
    TimeRule.PURGE: "Purge (6 years after archiving, or 7 after a transfer away)",
}


async def due_page(request: web.Request) -> web.Response:
    ahead = request.query.get("ahead_days", "0")
    days = int(ahead) if ahead in {str(a) for a in AHEAD_DAYS} else 0
    today = london_today()
    found = await due_by(
        request.config_dict[ENGINE],
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
    # The count only, as `overdue.list` does: the page shows episode ids, rules and dates, nothing
    # of a child, and up to 500 ids would not fit an audit entry's details (64 items, 2 KiB).
    await audit(request, "console.view", None, page="due", results=len(items))
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
