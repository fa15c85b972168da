"""The OpenAPI document against the running node, with schemathesis: no server error, and every
response conforms to the document (status code, content type, body schema).

Generated requests mostly meet refusals (random ids, a node outside any federation): the walk of
every operation to a success between federated nodes is tests/e2e/test_api_document.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from hypothesis import HealthCheck, settings
from joserfc.jwk import ECKey
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api import openapi_document
from gateway.app import create_app
from gateway.keys import ENGINE
from gateway.oauth import SCOPES, register_client

from ..adapters.facts import EXAMPLES
from ..conftest import Database
from .node import node_settings

schema = schemathesis.openapi.from_dict(openapi_document())
MAX_REQUEST_LINE = 8190  # aiohttp's max_line_size: the URL and method must fit in it


def test_the_document_is_valid_openapi_3_1() -> None:
    validate_openapi(openapi_document())


class LiveNode:
    """A node on a real port, its event loop in a thread (schemathesis calls are synchronous)."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}")
        self.settings = node_settings(database, tmp_path)
        self.runner = web.AppRunner(create_app(self.settings))
        self._run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._run(site.start())
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    def token(self) -> str:
        key = ECKey.generate_key("P-256", private=True)
        client = self._run(
            register_client(
                self.runner.app[ENGINE],
                "schemathesis",
                sorted(SCOPES),  # every scope: no operation is only ever refused 403
                jwks={"keys": [key.as_dict(private=False)]},
            )
        )
        assertion = private_key_jwt_sign(
            key.as_dict(private=True), client.client_id, self.settings.token_endpoint, alg="ES256"
        )
        response = requests.post(
            f"{self.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def close(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveNode, dict[str, str]]]:
    node = LiveNode(tmp_path_factory.mktemp("live"))
    auth = {"Authorization": f"Bearer {node.token()}"}
    # A few real episodes, so reads and changes meet data and not only 404s.
    for form in ("ecaf-xml-v3/ecaf-xml-v3-101-1.xml", "eha-json/eha-json-101-0.json"):
        requests.post(
            f"{node.url}/api/v1/forms",
            data=(EXAMPLES / form).read_bytes(),
            headers=auth,
            timeout=10,
        ).raise_for_status()
    yield node, auth
    node.close()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_document(
    case: schemathesis.Case[Any], live: tuple[LiveNode, dict[str, str]]
) -> None:
    node, auth = live
    started = time.monotonic()
    response = case.call(base_url=f"{node.url}/api/v1", headers=auth)
    if len(response.request.url or "") > MAX_REQUEST_LINE:
        # Refused by the HTTP server before any handler (a request line over aiohttp's limit, which
        # negative generation reaches with a query of many values): its plain-text 400, not ours.
        assert response.status_code == 400
        return
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    assert time.monotonic() - started < 30
