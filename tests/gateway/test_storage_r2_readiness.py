"""The index-key check of a node started before its migrations (review 2, finding 5), on SQLite and
PostgreSQL: with `migrate_on_start = false` nothing can be checked at start, so `/readyz` makes the
check once the migrations are current, and until it has passed the node serves nothing but its
health endpoints; a database recorded under another index key keeps it not ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.episodes import EpisodeStore, check_index_key
from gateway.keys import ENGINE, EPISODES
from gateway.protection import KeyRing
from gateway.storage import upgrade
from gateway.storage._tables import blind_index_key

from ..conftest import Database
from .node import node_settings


@pytest.mark.parametrize("recorded_by", ["this node", "another key"])
async def test_the_index_key_is_checked_once_the_migrations_are_applied(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, recorded_by: str
) -> None:
    http = await aiohttp_client(
        create_app(node_settings(database, tmp_path, migrate_on_start=False))
    )
    engine = http.app[ENGINE]
    early = await http.get("/readyz")
    assert early.status == 503 and (await early.json())["error"] == "not_ready"

    await upgrade(engine)  # `cafx db upgrade`, run after the node started
    if recorded_by == "another key":  # e.g. a replica started with another key file
        assert await check_index_key(engine, EpisodeStore(KeyRing.generate()))

    ready = await http.get("/readyz")
    served = await http.get("/api/v1/overdue")
    if recorded_by == "another key":
        body = await ready.json()
        assert ready.status == 503 and body["error"] == "not_ready", body
        assert "index_key.mismatch" in body["message"]
        assert served.status == 503 and (await served.json())["error"] == "not_ready"
        assert not http.app[EPISODES].index_key_checked
        return
    assert ready.status == 200, await ready.text()
    assert served.status == 401  # served: it asks for a token
    async with engine.connect() as connection:
        recorded = await connection.scalar(select(blind_index_key.c.fingerprint))
    assert recorded == http.app[EPISODES].ring.index_fingerprint()


async def test_a_request_before_readiness_makes_the_check_too(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await aiohttp_client(
        create_app(node_settings(database, tmp_path, migrate_on_start=False))
    )
    await upgrade(http.app[ENGINE])
    assert await check_index_key(http.app[ENGINE], EpisodeStore(KeyRing.generate()))
    served = await http.get("/api/v1/overdue")
    body = await served.json()
    assert served.status == 503 and "index_key.mismatch" in body["message"], body
