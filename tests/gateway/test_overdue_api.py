"""`GET /api/v1/overdue` on SQLite and on PostgreSQL: the time rules over the episodes a node holds,
following each episode as events change it, audited, with ids and dates only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.keys import ENGINE
from gateway.storage._tables import audit_entries
from gateway.timeliness import working_days_after

from ..adapters.facts import EXAMPLES
from ..conftest import Database
from .node import node_settings, register_system

FORM = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml"


async def _overdue(http: TestClient[Any, Any], auth: dict[str, str], query: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/overdue?{query}", headers=auth)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def test_what_is_due_follows_the_episode(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    system = await register_system(
        http, node_settings(database, tmp_path), ["episodes:read", "episodes:write"]
    )
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    stored = await http.post("/api/v1/forms", data=FORM.read_bytes(), headers=auth)
    (episode_id,) = (await stored.json())["episode_ids"]
    episode = await (await http.get(f"/api/v1/episodes/{episode_id}", headers=auth)).json()
    completed = dt.date.fromisoformat(
        min(a["completed_on"] for a in episode["assessments"] if a["completed_on"])
    )
    meeting_due = working_days_after(completed, 20)

    # The day before the meeting falls due nothing is listed; from that day it is, with its lateness.
    before = await _overdue(http, auth, f"as_of={meeting_due - dt.timedelta(days=1)}")
    assert [i for i in before["items"] if i["episode_id"] == episode_id] == []
    late = meeting_due + dt.timedelta(days=3)
    listed = await _overdue(http, auth, f"as_of={late}")
    assert {
        "episode_id": episode_id,
        "rule": "first_tac_meeting",
        "due_on": meeting_due.isoformat(),
        "days_overdue": 3,
    } in listed["items"]
    ahead = await _overdue(http, auth, f"as_of={meeting_due - dt.timedelta(days=5)}&ahead_days=5")
    assert [i["days_overdue"] for i in ahead["items"] if i["episode_id"] == episode_id] == [-5]

    # A TAC meeting takes it off the list and starts the review clock.
    held_on = meeting_due - dt.timedelta(days=1)
    review = {"held_on": held_on.isoformat(), "tac_meeting_held": True}
    changed = await http.post(
        f"/api/v1/episodes/{episode_id}/events",
        json={"event": {"type": "review", "review": review}},
        headers=auth,
    )
    assert changed.status == 200, await changed.text()
    far = await _overdue(http, auth, "as_of=2099-01-01&rule=first_tac_meeting&rule=first_review")
    mine = [(i["rule"], i["due_on"]) for i in far["items"] if i["episode_id"] == episode_id]
    assert mine == [("first_review", _three_months_after(held_on).isoformat())]

    # Reading the list is audited without naming any child.
    async with http.app[ENGINE].connect() as connection:
        audited = (
            await connection.execute(
                select(audit_entries.c.subject).where(audit_entries.c.action == "overdue.list")
            )
        ).all()
    assert len(audited) == 4 and all(row.subject is None for row in audited)


async def test_bad_parameters_are_refused_with_400(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    system = await register_system(http, node_settings(database, tmp_path), ["episodes:read"])
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    for query in ("as_of=tomorrow", "rule=lunch", "ahead_days=-1", "ahead_days=9999", "limit=0"):
        response = await http.get(f"/api/v1/overdue?{query}", headers=auth)
        assert response.status == 400, query
        assert (await response.json())["error"] == "bad_request"


def _three_months_after(day: dt.date) -> dt.date:
    month = day.month + 3
    year, month = day.year + (month - 1) // 12, (month - 1) % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")
