"""The console's Due page with a realistic number of items (review 2, finding 1), on SQLite and
PostgreSQL: more than fit an audit entry's details (64 items, 2 KiB) are shown, and the view is
audited with the count, not the ids; an episode with a far-future date hides none of them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.keys import ENGINE, EPISODES
from gateway.storage._tables import audit_entries

from ..conftest import Database
from .console_client import ConsoleClient
from .test_console import CAMDEN, Node, _camden
from .test_timeliness import episode

SHOWN = 70


@pytest.fixture
async def camden(database: Database, tmp_path: Path) -> AsyncIterator[Node]:
    async with _camden(database, tmp_path) as node:
        yield node


async def test_the_due_page_shows_more_than_an_audit_entry_could_name(
    camden: Node, database: Database
) -> None:
    late = episode()  # its first TAC meeting fell due in March 2026
    far = episode(reviews=[("9999-11-30", True, None)])  # its next review is past 9999-12-31
    made = [late.model_copy(update={"episode_id": uuid.uuid4()}) for _ in range(SHOWN)]
    async with camden.app[ENGINE].begin() as connection:
        for one in [*made, far.model_copy(update={"episode_id": uuid.uuid4()})]:
            await camden.app[EPISODES].add(connection, one)

    browser = ConsoleClient(camden.plan.api_url)
    try:
        await browser.sign_in(CAMDEN.lead_contacts()[0])
        status, page, _ = await browser.get("/console/due")
    finally:
        await browser.close()
    assert status == 200, page[:300]
    assert all(str(one.episode_id) in page for one in made)
    assert "could not be opened" not in page

    async with camden.app[ENGINE].connect() as connection:
        found = (
            await connection.execute(
                select(audit_entries.c.details).where(audit_entries.c.action == "console.view")
            )
        ).scalars()
        viewed = [d if isinstance(d, dict) else json.loads(d) for d in found]
    assert [d for d in viewed if d.get("page") == "due"] == [{"page": "due", "results": SHOWN}]
