"""`GET /api/v1/reports/quality` (standard 000 E, report 004), on SQLite and PostgreSQL: a period's
counts, CAFs per 10,000 children, and one in ten of the CAFs closed in it drawn for audit, the same
draw each time; counts and episode ids only."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from dateutil.relativedelta import relativedelta
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.keys import ENGINE
from gateway.quality import audit_sample
from gateway.storage._tables import audit_entries
from schemas import Episode, EpisodeState, StepDown

from ..conftest import Database
from .node import node_settings, register_system
from .test_due_r2_api import _stored
from .test_timeliness import episode


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["audit:read"])
    return http, {"Authorization": f"Bearer {await system.token(http)}"}


def _fresh(made: Episode, **changes: Any) -> Episode:
    return made.model_copy(update={"episode_id": uuid.uuid4(), **changes})


async def test_a_periods_figures_and_its_audit_draw(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path)
    opened = episode(
        ["2026-02-20"], reviews=[("2026-03-10", True, None), ("2026-06-01", False, None)]
    )
    stepped = opened.source.model_copy(update={"step_down": StepDown.CAMHS})
    closed = [
        _fresh(episode(["2026-01-10"], state="closed", closed_on=f"2026-04-{day:02d}"))
        for day in range(1, 24)
    ]
    before = _fresh(episode(["2026-01-10"], state="closed", closed_on="2026-01-20"))
    moved = _fresh(opened, state=EpisodeState.TRANSFERRED)  # counted where it went
    await _stored(
        http,
        _fresh(opened),
        _fresh(opened, family_ref="FAM-1", source=stepped),
        *closed,
        before,
        moved,
    )
    query = "from=2026-02-01&to=2026-12-31&children=5000"
    response = await http.get(f"/api/v1/reports/quality?{query}", headers=auth)
    report = await response.json()
    assert response.status == 200, report
    assert report["held_by_state"] == {"closed": 24, "open": 2}
    assert report["assessed"] == 2  # the closed ones were assessed before the period
    assert report["assessed_per_10000_children"] == 4.0
    assert (report["whole_family"], report["stepped_down_by_service"]) == (1, {"camhs": 1})
    assert report["closed_by_outcome"] == {"resolved_single_service": 23}
    assert (report["reviews"], report["tac_meetings"]) == (4, 2)
    # One in ten (rounded up) of the 23 closed in the period, and the same draw when asked again.
    closed_ids = {str(e.episode_id) for e in closed}
    assert len(report["audit_sample"]) == 3 and set(report["audit_sample"]) <= closed_ids
    again = await (await http.get(f"/api/v1/reports/quality?{query}", headers=auth)).json()
    assert again["audit_sample"] == report["audit_sample"]
    # Counts and ids only: no name, no date of birth of any child.
    child = opened.child
    text = json.dumps(report)
    assert child.family_name not in text and child.given_names not in text
    assert str(child.date_of_birth) not in text
    async with http.app[ENGINE].connect() as connection:
        entries = (
            await connection.execute(
                select(audit_entries.c.action, audit_entries.c.details).where(
                    audit_entries.c.action == "report.quality"
                )
            )
        ).all()
    digest = hashlib.sha256(",".join(report["audit_sample"]).encode()).hexdigest()
    recorded = {"period": "2026-02-01/2026-12-31", "drawn": 3, "drawn_sha256": digest}
    assert [json.loads(e.details) for e in entries] == [recorded, recorded]


async def test_a_period_is_refused_when_it_is_not_one(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path)
    for query in (
        "from=2026-06-01&to=2026-01-01",
        "from=2026-06-01&to=2026-06-27",  # 27 days: short enough to single out an episode
        "to=yesterday",
        "children=0",
        "children=x",
    ):
        response = await http.get(f"/api/v1/reports/quality?{query}", headers=auth)
        assert response.status == 400, query
    default = await http.get("/api/v1/reports/quality", headers=auth)
    report = await default.json()
    assert default.status == 200 and report["assessed_per_10000_children"] is None
    to = dt.date.fromisoformat(report["to"])  # today in London; the twelve months to it
    a_year_before = to - relativedelta(years=1)  # 29 February: the 28th of the year before
    assert dt.date.fromisoformat(report["from"]) == a_year_before + dt.timedelta(days=1)


def test_the_draw_is_one_in_ten_at_least_one_and_the_same_whatever_the_order() -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(1, 35)]
    start, end = dt.date(2026, 1, 1), dt.date(2026, 12, 31)
    drawn = audit_sample(ids, start, end)
    assert len(drawn) == 4 and drawn == audit_sample(list(reversed(ids)), start, end)
    assert audit_sample(ids[:1], start, end) == ids[:1]
    assert audit_sample([], start, end) == []
    assert audit_sample(ids, start, dt.date(2026, 12, 30)) != drawn  # another period, another draw
