"""`GET /api/v1/overdue` after review 2, on SQLite and PostgreSQL: a window past the calendar's end
is a 400, an episode with a far-future date leaves the rest listed (finding 2), a transferred-out
copy is listed for purging from the day its transfer was committed (finding 4), and a first list
after a start reads episodes a chunk at a time, freeing the connection between chunks (finding 6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import insert, text

from gateway import timeliness
from gateway.app import create_app
from gateway.episodes import EpisodeStore
from gateway.keys import ENGINE, EPISODES
from gateway.protection import KeyRing
from gateway.storage._tables import transfers
from gateway.timeliness import TimeRule, due_by
from schemas import Episode

from ..conftest import Database
from .node import node_settings, register_system
from .test_timeliness import episode


def _fresh(made: Episode) -> Episode:
    return made.model_copy(update={"episode_id": uuid.uuid4()})


async def _stored(http: TestClient[Any, Any], *made: Episode) -> list[str]:
    async with http.app[ENGINE].begin() as connection:
        for one in made:
            await http.app[EPISODES].add(connection, one)
    return [str(one.episode_id) for one in made]


async def _client(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    return http, {"Authorization": f"Bearer {await system.token(http)}"}


async def test_a_window_past_the_calendars_end_is_refused_with_400(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _client(aiohttp_client, database, tmp_path)
    for query in ("as_of=9999-12-31&ahead_days=1", "as_of=9999-12-01&ahead_days=366"):
        response = await http.get(f"/api/v1/overdue?{query}", headers=auth)
        assert response.status == 400, query
        assert (await response.json())["error"] == "bad_request"
    last = await http.get("/api/v1/overdue?as_of=9999-12-31", headers=auth)
    assert last.status == 200, await last.text()


async def test_a_far_future_date_hides_nothing_else(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _client(aiohttp_client, database, tmp_path)
    late, *far = await _stored(
        http,
        _fresh(episode()),
        _fresh(episode(reviews=[("9999-11-30", True, None)])),
        _fresh(
            episode(state="closed", closed_on="9999-06-01", reviews=[("9999-06-01", True, None)])
        ),
        _fresh(episode(state="archived", closed_on="9993-06-01")),
    )
    response = await http.get("/api/v1/overdue?as_of=9999-12-31", headers=auth)
    listed = await response.json()
    assert response.status == 200, listed
    assert {i["episode_id"] for i in listed["items"]} == {late}
    assert listed["unreadable"] == []


async def test_a_transferred_out_copy_is_purged_seven_years_after_the_commit(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _client(aiohttp_client, database, tmp_path)
    (copy,) = await _stored(http, _fresh(episode(state="transferred")))
    committed = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC)  # 1 April in London (BST)
    async with http.app[ENGINE].begin() as connection:
        for offer, state, at in (
            ("earlier-offer", "withdrawn", committed + dt.timedelta(days=30)),
            ("the-offer", "committed", committed),
        ):
            await connection.execute(
                insert(transfers).values(
                    id=offer,
                    direction="out",
                    episode_id=copy,
                    counterpart="E09000012",
                    state=state,
                    created_at=committed - dt.timedelta(days=3),
                    updated_at=at,
                )
            )
    response = await http.get("/api/v1/overdue?as_of=2040-01-01&rule=purge", headers=auth)
    listed = await response.json()
    assert response.status == 200, listed
    assert [(i["episode_id"], i["due_on"]) for i in listed["items"]] == [(copy, "2033-04-01")]


async def test_a_first_list_frees_the_connection_between_chunks(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, _ = await _client(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    await _stored(http, *[_fresh(episode()) for _ in range(40)])
    monkeypatch.setattr(timeliness, "CHUNK", 5)
    cold = EpisodeStore(KeyRing.from_file(tmp_path / "keys.json"))  # as after a restart
    listing = asyncio.create_task(due_by(engine, cold, dt.date(2099, 1, 1), frozenset(TimeRule)))
    await asyncio.sleep(0)  # it takes the connection for its first read
    got_in: list[bool] = []
    for _ in range(3):  # each of these waits for a free connection (SQLite has one)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        got_in.append(not listing.done())
    found = await listing
    assert len(found.items) == 40 and found.unreadable == []
    assert all(got_in), got_in  # in while it was still working, not after it


async def test_two_cold_lists_at_once_open_each_episode_once(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """The second waits for the first and finds every episode worked out already."""
    http, _ = await _client(aiohttp_client, database, tmp_path)
    await _stored(http, *[_fresh(episode()) for _ in range(12)])
    cold = EpisodeStore(KeyRing.from_file(tmp_path / "keys.json"))  # as after a restart
    opened: list[str] = []
    real = cold.open_stored

    def counted(episode_id: str, blob: bytes) -> Episode:
        opened.append(episode_id)
        return real(episode_id, blob)

    cold.open_stored = counted  # type: ignore[method-assign]  # counts; the real one opens
    day = dt.date(2099, 1, 1)
    first, second = await asyncio.gather(
        due_by(http.app[ENGINE], cold, day, frozenset(TimeRule)),
        due_by(http.app[ENGINE], cold, day, frozenset(TimeRule)),
    )
    assert first == second and len(first.items) == 12
    assert sorted(opened) == sorted(set(opened)) and len(opened) == 12
