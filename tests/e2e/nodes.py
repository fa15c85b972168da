"""Real nodes for the end-to-end and browser tests: a node started from a demo plan, a borough system
signed in to it (private_key_jwt), and the protocol's common steps (seed an episode, ask, wait)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from gateway.demo import DEMO_BOROUGHS, NodePlan, plan_federation
from gateway.keys import ENGINE, MEMBERS
from gateway.oauth import register_client
from gateway.runner import start
from gateway.storage import async_url

from ..adapters.facts import EXAMPLES
from ..conftest import POSTGRES_URL, postgres_schemas

CAMDEN, HACKNEY, ISLINGTON = (b.gss for b in DEMO_BOROUGHS)
SCOPES = [
    "episodes:read",
    "episodes:write",
    "consents:write",
    "audit:read",
    "register:read",
    "requests:write",
    "requests:decide",
    "directory:read",
]


@dataclass
class Node:
    plan: NodePlan
    runner: web.AppRunner | None = None
    token: str = ""
    http: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return self.plan.api_url + "/api/v1"

    @property
    def lead(self) -> str:
        return self.plan.borough.lead_contacts()[0]

    async def start(self) -> None:
        self.runner = await start(self.plan.settings)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
        async with self.http.request(
            method, self.url + path, headers=headers, **kwargs
        ) as response:
            return response.status, await response.json()

    async def engine_rows(self, query: Any) -> list[Any]:
        assert self.runner is not None
        async with self.runner.app[ENGINE].connect() as connection:
            return list((await connection.execute(query)).all())


async def login(node: Node, scopes: list[str] = SCOPES, name: str = "case-system") -> None:
    """Register a borough system called `name` and take a token for it (replacing the node's)."""
    assert node.runner is not None
    key = ECKey.generate_key("P-256", private=True)
    client = await register_client(
        node.runner.app[ENGINE], name, scopes, jwks={"keys": [key.as_dict(private=False)]}
    )
    assertion = private_key_jwt_sign(
        key.as_dict(private=True), client.client_id, node.plan.settings.token_endpoint, alg="ES256"
    )
    async with node.http.post(
        node.plan.api_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    ) as response:
        node.token = (await response.json())["access_token"]


@asynccontextmanager
async def running(plans: Iterable[NodePlan]) -> AsyncIterator[dict[str, Node]]:
    """Start a node per plan, sign a borough system in to each; stop them all at the end."""
    nodes = {plan.borough.gss: Node(plan) for plan in plans}
    try:
        for node in nodes.values():
            await node.start()
            await login(node)
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()
            await node.http.close()


@asynccontextmanager
async def federation_on(backend: str, root: Path, **plan: Any) -> AsyncIterator[dict[str, Node]]:
    """The demo's three nodes on `backend`: each its own SQLite file ("sqlite"), or each its own
    fresh schema in the test PostgreSQL ("postgresql"). `plan` goes to `plan_federation`."""
    if backend == "sqlite":
        async with running(plan_federation(root, **plan)) as nodes:
            yield nodes
        return
    async with postgres_schemas(len(DEMO_BOROUGHS)) as schemas:
        by = dict(zip((b.short for b in DEMO_BOROUGHS), schemas, strict=True))
        plans = plan_federation(
            root, database=lambda b, _: (async_url(POSTGRES_URL), by[b.short]), **plan
        )
        async with running(plans) as nodes:
            yield nodes


PRACTITIONER = {
    "id": "camden-hv-17",
    "name": "A Health Visitor",
    "role": "Health visitor",
    "agency": "Camden health visiting",
    "agency_type": "health",
}


async def seed(holder: Node) -> dict[str, Any]:
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml").read_bytes()
    status, answer = await holder.call("POST", "/forms", data=form)
    assert status == 201, answer
    status, episode = await holder.call("GET", f"/episodes/{answer['episode_ids'][0]}")
    return dict(episode)


def disclosure(episode: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The health visitor's disclosure request for `episode` (assessments and delivery plan)."""
    return {
        "kind": "disclosure",
        "practitioner": PRACTITIONER,
        "purpose": "early_help",
        "reason": "joining the TAC",
        "target_authority": HACKNEY,
        "episode_ref": episode["episode_id"],
        "sections": ["assessments", "delivery_plan"],
        **changes,
    }


def existence_check(episode: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The health visitor's existence check for the child of `episode` (auto-approved by role where
    the home node says so)."""
    return {
        "kind": "existence_check",
        "practitioner": PRACTITIONER,
        "purpose": "early_help",
        "reason": "family moved into our area",
        "target_authority": HACKNEY,
        "child": match_keys(episode),
        **changes,
    }


def match_keys(episode: dict[str, Any]) -> dict[str, str]:
    child = episode["child"]
    return {
        "given_names": child["given_names"],
        "family_name": child["family_name"],
        "date_of_birth": child["date_of_birth"],
    }


async def ask(home: Node, body: dict[str, Any], approve: bool = True) -> dict[str, Any]:
    status, record = await home.call("POST", "/requests", json=body)
    assert status == 201, record
    if record["state"] == "awaiting_verification" and approve:
        status, record = await home.call(
            "POST",
            f"/requests/{record['request_id']}/decision",
            json={"decision": "approve", "lead_contact_id": home.lead, "note": "known to us"},
        )
        assert status == 200, record
    return dict(record)


async def holder_approves(holder: Node, home: Node, request_id: str) -> dict[str, Any]:
    """The holder's lead contact approves the one disclosure waiting there (an override, by
    default); the home node's request once the answer arrived."""
    status, queue = await holder.call("GET", "/disclosure-approvals")
    assert status == 200, queue
    [held] = queue["approvals"]
    status, decided = await holder.call(
        "POST",
        f"/disclosure-approvals/{held['approval_id']}/decision",
        json={"decision": "approve", "lead_contact_id": holder.lead},
    )
    assert status == 200, decided
    return await settled(home, request_id)


async def settled(home: Node, request_id: str) -> dict[str, Any]:
    """The request once the holder's answer arrived (through the outbox)."""
    latest: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal latest
        status, latest = await home.call("GET", f"/requests/{request_id}")
        return status == 200 and latest["state"] != "awaiting_holder"

    await eventually(done)
    return latest


async def eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("the condition did not come true in time")
        await asyncio.sleep(0.2)


async def offer_arrives(receiver: Node, offer_id: str) -> None:
    """Wait until `receiver` lists the transfer offer made to it."""

    async def arrived() -> bool:
        status, incoming = await receiver.call("GET", "/transfers")
        return any(t["offer_id"] == offer_id for t in incoming["transfers"])

    await eventually(arrived)


async def sees_suspended(node: Node, member: str) -> None:
    """Wait until `node` has taken up metadata in which `member` is suspended (it polls every 2 s)."""
    assert node.runner is not None
    members = node.runner.app[MEMBERS]

    async def seen() -> bool:
        found = members().member(member)
        return found is not None and found.status == "suspended"

    await eventually(seen)
