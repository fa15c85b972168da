"""The node application: health, readiness, metrics, request ids and the error shape."""

from __future__ import annotations

from pathlib import Path

from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.storage import head_revision

from ..conftest import Database
from .node import node_settings


async def test_health_ready_and_metrics(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["migration"] == head_revision() == "0010"
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
