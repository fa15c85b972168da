"""`cafx demo run`: three borough nodes on loopback, each its own process and SQLite file, with the
federation's metadata, certificates and demo credentials generated on the first run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from ..oauth import SCOPES, load_client, register_client
from ..settings import Settings
from ..storage import create_engine, upgrade
from ._federation import NodePlan, plan_federation
from ._scenario import DemoNode, Echo, run_scenario
from ._services import ensure_services

__all__ = [
    "answers",
    "demo_form",
    "demo_token",
    "prepare",
    "running_nodes",
    "scenario_nodes",
    "stopped",
    "write_toml",
]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def demo_form() -> bytes:
    return files("gateway.demo").joinpath("data/hackney-ecaf.xml").read_bytes()


def write_toml(settings: Settings, path: Path) -> None:
    """The settings as the TOML file `cafx serve --config` reads."""
    lines = []
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        lines.append(f"{name} = {json.dumps(value)}")  # JSON strings, numbers and arrays are TOML
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def _ensure_client(plan: NodePlan) -> None:
    """A demo borough system for the node: its private key and client id, kept in the node folder."""
    record = plan.folder / "demo-client.json"
    engine = create_engine(plan.settings.database_url)
    try:
        await upgrade(engine)
        if record.exists():
            known = json.loads(record.read_text(encoding="utf-8"))
            if await load_client(engine, known["client_id"], allow_secret=False) is not None:
                return
        key = ECKey.generate_key("P-256", parameters={"kid": "demo"}, private=True)
        client = await register_client(
            engine, "demo case system", sorted(SCOPES), jwks={"keys": [key.as_dict(private=False)]}
        )
        record.write_text(
            json.dumps({"client_id": client.client_id, "key": key.as_dict(private=True)}),
            encoding="utf-8",
        )
        record.chmod(0o600)
    finally:
        await engine.dispose()


def prepare(root: Path) -> list[NodePlan]:
    plans = plan_federation(root)
    for plan in plans:
        write_toml(plan.settings, plan.folder / "node.toml")
        asyncio.run(_ensure_client(plan))
        asyncio.run(ensure_services(plan))
    return plans


async def _token(session: aiohttp.ClientSession, plan: NodePlan) -> str:
    record = json.loads((plan.folder / "demo-client.json").read_text(encoding="utf-8"))
    assertion = private_key_jwt_sign(
        record["key"], record["client_id"], plan.settings.token_endpoint, alg="ES256"
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": _ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    async with session.post(plan.settings.token_endpoint, data=form) as reply:
        body: dict[str, Any] = await reply.json()
        return str(body["access_token"])


async def demo_token(plan: NodePlan) -> str:
    """An access token of the borough's demo system (`cafx demo token`)."""
    async with aiohttp.ClientSession() as session:
        return await _token(session, plan)


async def scenario_nodes(plans: list[NodePlan]) -> list[DemoNode]:
    async with aiohttp.ClientSession() as session:
        return [
            DemoNode(
                gss=plan.borough.gss,
                name=plan.borough.name,
                api_url=plan.api_url + "/api/v1",
                token=await _token(session, plan),
                lead_contacts=plan.borough.lead_contacts(),
            )
            for plan in plans
        ]


def answers(plan: NodePlan) -> bool:
    """Does the borough's node answer `/readyz` (ready) on its API port?"""

    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(plan.api_url + "/readyz") as reply:
                    return reply.status == 200
        except aiohttp.ClientError:
            return False

    return asyncio.run(probe())


@contextmanager
def running_nodes(
    plans: list[NodePlan], timeout: float = 60.0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Each node in its own process (`cafx serve`), logs in its folder; stopped gracefully after.
    Refused (`RuntimeError`) when a node already answers on a borough's port: a demo still
    running (or left running) would answer for the new nodes, which could not start."""
    taken = [plan.borough.name for plan in plans if answers(plan)]
    if taken:
        raise RuntimeError(
            f"a node already answers on the port of {', '.join(taken)}: is the demo running "
            "already? Stop it first (Ctrl-C where it runs)"
        )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for plan in plans:
            log = (plan.folder / "node.log").open("ab")
            processes.append(
                subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
                    [
                        sys.executable,
                        "-m",
                        "gateway.cli",
                        "serve",
                        "--config",
                        str(plan.folder / "node.toml"),
                    ],
                    stdout=log,
                    stderr=log,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )
        deadline = time.monotonic() + timeout
        for plan, process in zip(plans, processes, strict=True):
            while not answers(plan):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{plan.borough.name} did not start: see {plan.folder / 'node.log'}"
                    )
                time.sleep(0.2)
        yield processes
    finally:
        # A second Ctrl-C or SIGTERM while they stop would cut the waiting short, and could leave
        # a node that hangs on its port: from here the nodes are stopped, whatever comes.
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def stopped(
    plans: list[NodePlan], processes: list[subprocess.Popen[bytes]]
) -> tuple[NodePlan, int] | None:
    """The first node whose process has ended, with its exit code; None while all run."""
    for plan, process in zip(plans, processes, strict=True):
        code = process.poll()
        if code is not None:
            return plan, code
    return None


def story(plans: list[NodePlan], echo: Echo) -> None:
    """Camden asks about a child Hackney holds; the child later moves to Islington."""
    camden, hackney, islington = asyncio.run(scenario_nodes(plans))
    asyncio.run(run_scenario(camden, hackney, islington, demo_form(), echo))
