"""The node application: health, readiness, metrics, request ids and the error shape."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.app import create_app
from gateway.errors import error_middleware
from gateway.keys import ENGINE
from gateway.storage import head_revision
from gateway.storage._tables import audit_entries

from ..adapters.facts import EXAMPLES
from ..conftest import Database
from .node import node_settings, register_system


async def test_health_ready_and_metrics(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["migration"] == head_revision() == "0019"
    metrics = await (await client.get("/metrics")).text()
    assert 'cafx_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in metrics


async def test_not_ready_when_migrations_are_behind(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path).model_copy(update={"migrate_on_start": False})
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "not_ready"
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_unknown_route_gets_the_error_shape(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    response = await client.get(
        "/nowhere?nhs_number=9434765919", headers={"X-Request-ID": "abcdef123456"}
    )
    assert response.status == 404
    assert await response.json() == {
        "error": "not_found",
        "message": "Not Found",
        "request_id": "abcdef123456",
    }


async def test_a_wait_for_a_database_connection_that_runs_out_is_a_503_busy(
    aiohttp_client: AiohttpClient,
) -> None:
    """A SQLite node has one connection; requests beyond what it serves queue for it, and after the
    pool's wait SQLAlchemy raises. The node is full, not broken: 503 `busy`, not a 500."""

    async def full(_: web.Request) -> web.Response:
        raise PoolTimeout("QueuePool limit of size 1 overflow 0 reached, timed out")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/full", full)
    client = await aiohttp_client(app)
    response = await client.get("/full")
    assert response.status == 503
    assert (await response.json())["error"] == "busy"


async def test_an_incoming_request_id_that_could_hold_personal_data_is_replaced(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """The id goes, unsigned, into every log line and audit entry of the request: one that could be
    an NHS number, a date of birth or a name is replaced, and the read is audited as ever (an id
    the audit rules refuse once made every audited call a 500 that recorded nothing)."""
    settings = node_settings(Database(f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}"), tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read", "episodes:write"])
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    created = await http.post("/api/v1/forms", data=form, headers=auth)
    episode_id = (await created.json())["episode_ids"][0]

    async def audited() -> int:
        async with http.app[ENGINE].connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(audit_entries))
            return int(count or 0)

    for unsafe in ("9434765919", "943-476-5919", "2015-06-01", "JaneSmith2015", "ÄÄÄÄÄÄÄÄ"):
        before = await audited()
        response = await http.get(
            f"/api/v1/episodes/{episode_id}", headers={**auth, "X-Request-ID": unsafe}
        )
        assert response.status == 200, unsafe
        assert response.headers["X-Request-ID"] != unsafe
        assert await audited() == before + 1
    kept = "0b5e8a52-7c1d-4f0e-9a3b-2d6c8e1f4a70"
    response = await http.get(
        f"/api/v1/episodes/{episode_id}", headers={**auth, "X-Request-ID": kept}
    )
    assert response.headers["X-Request-ID"] == kept
