"""Processes for the federation benchmark: a holder node (`cafx serve`) seeded with one episode, a
plain mutual-TLS aiohttp echo server (the baseline), and a fresh PostgreSQL schema.

`python -m bench._nodes echo PORT CERT KEY CA` runs the echo server: the federation's server TLS
context (`gateway.federation.transport.server_context`) and a small JSON answer to every POST.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from gateway.demo import DEMO_BOROUGHS, Borough, NodePlan, free_port, plan_federation
from gateway.demo._run import demo_form, write_toml
from gateway.federation.transport import server_context
from gateway.oauth import SCOPES, register_client
from gateway.storage import async_url, create_engine, upgrade

__all__ = [
    "POSTGRES_URL",
    "Holder",
    "Process",
    "echo_server",
    "free_port",
    "holder_node",
    "plan_pair",
    "postgres_schema",
    "postgres_unreachable",
]

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CAFX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Process:
    """One child process with its output in `log`; `stop()` sends SIGTERM, then kills after a while."""

    def __init__(self, arguments: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as sink:
            self._process = subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
                [sys.executable, *arguments],
                stdout=sink,
                stderr=sink,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)


async def _wait_http(process: Process, url: str, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            with suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as reply:
                    if reply.status == 200:
                        return
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start:\n{process.tail()}")
            await asyncio.sleep(0.2)


async def _wait_port(process: Process, port: int, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
            return
        if not process.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{process.tail()}")
        await asyncio.sleep(0.1)


# --- the federation ---------------------------------------------------------------------------

CAMDEN, HACKNEY = DEMO_BOROUGHS[0], DEMO_BOROUGHS[1]


def plan_pair(root: Path, postgres_schema: str | None = None) -> tuple[NodePlan, NodePlan]:
    """Camden (the caller, never served) and Hackney (the holder): SQLite files, or Hackney in
    `postgres_schema` of POSTGRES_URL."""

    def database(borough: Borough, folder: Path) -> tuple[str, str | None]:
        if postgres_schema is not None and borough == HACKNEY:
            return async_url(POSTGRES_URL), postgres_schema
        return f"sqlite+aiosqlite:///{folder / 'node.sqlite3'}", None

    camden, hackney = plan_federation(root, (CAMDEN, HACKNEY), database=database)
    return camden, hackney


async def postgres_unreachable() -> str | None:
    """Why POSTGRES_URL cannot be used, or None when it answers."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL run needs the driver

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL not reachable at CAFX_TEST_POSTGRES_URL ({type(exc).__name__})"
    await connection.close()
    return None


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema in POSTGRES_URL, dropped afterwards. Raises OSError / asyncpg errors when the
    server cannot be reached."""
    import asyncpg  # noqa: PLC0415 - only the PostgreSQL run needs the driver

    connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    schema = f"cafx_bench_{secrets.token_hex(6)}"
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield schema
    finally:
        with suppress(Exception):
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


@dataclass(frozen=True)
class Holder:
    plan: NodePlan
    process: Process
    episode_id: str


async def _register_client(plan: NodePlan) -> tuple[str, dict[str, Any]]:
    """A case system for the holder (all scopes, private_key_jwt): its client id and private key."""
    settings = plan.settings
    engine = create_engine(settings.database_url, schema=settings.database_schema)
    try:
        await upgrade(engine)
        key = ECKey.generate_key("P-256", parameters={"kid": "bench"}, private=True)
        client = await register_client(
            engine, "bench case system", sorted(SCOPES), jwks={"keys": [key.as_dict(private=False)]}
        )
    finally:
        await engine.dispose()
    return client.client_id, key.as_dict(private=True)


async def _seed(plan: NodePlan, client_id: str, key: dict[str, Any]) -> str:
    """Get a token and post the demo eCAF form; the new episode's id."""
    endpoint = plan.settings.token_endpoint
    assertion = private_key_jwt_sign(key, client_id, endpoint, alg="ES256")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": _ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(endpoint, data=form) as reply:
            body = await reply.json()
            if reply.status != 200:
                raise RuntimeError(f"no token from the holder ({reply.status}: {body})")
            token = str(body["access_token"])
        async with session.post(
            plan.api_url + "/api/v1/forms",
            data=demo_form(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
        ) as reply:
            answer = await reply.json()
            if reply.status != 201:
                raise RuntimeError(f"the holder did not take the form ({reply.status}: {answer})")
    return str(answer["episode_ids"][0])


@asynccontextmanager
async def holder_node(plan: NodePlan) -> AsyncIterator[Holder]:
    """The holder as `python -m gateway.cli serve` in its own process, ready and seeded."""
    config = plan.folder / "node.toml"
    write_toml(plan.settings, config)
    client_id, key = await _register_client(plan)
    process = Process(
        ["-m", "gateway.cli", "serve", "--config", str(config)], plan.folder / "node.log"
    )
    try:
        await _wait_http(process, plan.api_url + "/readyz", f"{plan.borough.name} node")
        episode_id = await _seed(plan, client_id, key)
        yield Holder(plan, process, episode_id)
    finally:
        process.stop()


# --- the baseline -----------------------------------------------------------------------------

ECHO_ANSWER = {"outcome": "ok", "register_id": "00000000-0000-0000-0000-000000000000"}


@asynccontextmanager
async def echo_server(plan: NodePlan, folder: Path) -> AsyncIterator[tuple[str, Process]]:
    """The plain aiohttp echo server in its own process, with `plan`'s certificate: its base URL
    and its process."""
    settings = plan.settings
    assert settings.tls_cert_file and settings.tls_key_file and settings.ca_file  # noqa: S101
    port = free_port()
    process = Process(
        [
            "-m",
            "bench._nodes",
            "echo",
            str(port),
            str(settings.tls_cert_file),
            str(settings.tls_key_file),
            str(settings.ca_file),
        ],
        folder / "echo.log",
    )
    try:
        await _wait_port(process, port, "the echo server")
        yield f"https://127.0.0.1:{port}", process
    finally:
        process.stop()


async def _echo(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(ECHO_ANSWER)


def _serve_echo(port: int, cert: str, key: str, ca: str) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _echo)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        ssl_context=server_context(cert, key, ca),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "echo":
        sys.exit("usage: python -m bench._nodes echo PORT CERT KEY CA")
    _serve_echo(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
