"""`GET /api/v1/reports/quality`: a period's CAF figures and the closed CAFs drawn for audit
(standard 000 E, report 004; `gateway/quality.py`)."""

from __future__ import annotations

import datetime as dt
import hashlib

from aiohttp import web
from dateutil.relativedelta import relativedelta

from schemas import london_today

from ..errors import BadRequest
from ..keys import AUDIT, ENGINE, EPISODES
from ..quality import quality_report
from ._auth import needs
from ._common import draft

__all__ = ["MAX_CHILDREN", "MIN_PERIOD_DAYS", "quality"]

MAX_CHILDREN = 10_000_000  # more children than any borough has: a typo
# A shorter period could single out one child's episode: the one closure of a day, and its outcome.
MIN_PERIOD_DAYS = 28


def _period(request: web.Request) -> tuple[dt.date, dt.date, int | None]:
    """`from` and `to` (dates, inclusive; default the twelve months to today in London) and
    `children` (the borough's number of children aged 0 to 17, for the rate per 10,000)."""
    q = request.query
    try:
        end = dt.date.fromisoformat(q["to"]) if "to" in q else london_today()
        a_year_to = end - relativedelta(years=1) + dt.timedelta(days=1)
        start = dt.date.fromisoformat(q["from"]) if "from" in q else a_year_to
        children = int(q["children"]) if "children" in q else None
    except (ValueError, OverflowError):
        raise BadRequest("from and to are dates (YYYY-MM-DD), children a number") from None
    if (end - start).days + 1 < MIN_PERIOD_DAYS:
        raise BadRequest(
            f"a period is at least {MIN_PERIOD_DAYS} days, from on or before to: a shorter one"
            " could single out a child's episode"
        )
    if children is not None and not 1 <= children <= MAX_CHILDREN:
        raise BadRequest(f"children is 1 to {MAX_CHILDREN:,}")
    return start, end, children


@needs("audit:read")
async def quality(request: web.Request) -> web.Response:
    """Counts only, and the ids of the closed episodes drawn for audit."""
    start, end, children = _period(request)
    report = await quality_report(
        request.config_dict[ENGINE], request.config_dict[EPISODES], start, end
    )
    # Which period, and which draw (its digest: the ids would not fit an entry), so an audit of
    # the audit can tell the sample used from one asked for again with another period.
    drawn = hashlib.sha256(",".join(report.audit_sample).encode()).hexdigest()
    await request.config_dict[AUDIT].record(
        draft(
            request,
            "report.quality",
            None,
            period=f"{start.isoformat()}/{end.isoformat()}",
            drawn=len(report.audit_sample),
            drawn_sha256=drawn,
        )
    )
    return web.json_response(report.as_json(children))
