"""Federated service search between three real nodes on loopback (Camden, Hackney, Islington): each
member's services found through signed mutual-TLS calls, merged and ranked (each service scored and
judged by the asking node from the record the member sent); with one member down the search still
answers and names it; an unsigned call to a member is refused. The member directory lists every
member's endpoints, status and lead CAF contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from directory.services import generate_services, read_services
from gateway.demo import plan_federation
from gateway.federation.node import FEDERATION_PATH
from gateway.federation.transport import client_context
from gateway.keys import DIRECTORY, ENGINE, PEERS
from gateway.service_directory import save_services

from ..directory.test_services import _assert_valid_page
from .nodes import CAMDEN, HACKNEY, ISLINGTON, Node, running


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path)) as started:
        for node in started.values():  # 150 generated services each, in the index
            assert node.runner is not None
            app, borough = node.runner.app, node.plan.borough
            accepted, rejected = read_services(generate_services(borough.gss, borough.name, 150))
            assert rejected == []
            await save_services(app[ENGINE], borough.gss, accepted)
            await app[DIRECTORY].reload()
        yield started


SEARCH = (
    "/directory/services?scope=federation&postcode=N1%207AA&age=8"
    f"&eligible_for=residence:{HACKNEY},school:{ISLINGTON}&per_page=50"
)


def _key(entry: dict[str, Any]) -> tuple[float, float]:
    return (-entry["cafx"]["relevance"], entry["cafx"]["distance_m"])


async def test_federated_search_answers_even_with_a_member_down(nodes: dict[str, Node]) -> None:
    camden = nodes[CAMDEN]
    status, page = await camden.call("GET", SEARCH)
    assert status == 200, page
    assert sorted(page["answered"]) == [CAMDEN, HACKNEY, ISLINGTON] and page["unanswered"] == []
    _assert_valid_page(page)
    authorities = {entry["cafx"]["authority"] for entry in page["contents"]}
    assert authorities == {CAMDEN, HACKNEY, ISLINGTON}
    assert [_key(e) for e in page["contents"]] == sorted(_key(e) for e in page["contents"])
    for entry in page["contents"]:
        assert entry["minimum_age"] <= 8 <= entry["maximum_age"]
        verdict = entry["cafx"]["eligibility"]
        if entry["cafx"]["authority"] == HACKNEY:
            assert verdict["code"] == "resident" and verdict["eligible"]
        elif entry["cafx"]["access"]["kind"] == "universal":
            assert verdict["eligible"] is (entry["cafx"]["authority"] == ISLINGTON)
    # The federation's total is the sum of each member's own.
    totals = 0
    for node in nodes.values():
        status, own = await node.call("GET", SEARCH.replace("scope=federation", "scope=local"))
        totals += own["total_items"]
    assert page["total_items"] == totals

    # Only one member's services: only that member is asked.
    status, hackney_only = await camden.call(
        "GET", f"/directory/services?scope=federation&authority={HACKNEY}"
    )
    assert status == 200 and hackney_only["answered"] == [CAMDEN, HACKNEY]
    assert {e["cafx"]["authority"] for e in hackney_only["contents"]} == {HACKNEY}

    await nodes[HACKNEY].stop()
    status, degraded = await camden.call("GET", SEARCH)
    assert status == 200, degraded
    assert sorted(degraded["answered"]) == [CAMDEN, ISLINGTON]
    assert degraded["unanswered"] == [
        {"member": HACKNEY, "name": "Hackney", "reason": "unreachable"}
    ]
    assert {e["cafx"]["authority"] for e in degraded["contents"]} == {CAMDEN, ISLINGTON}


async def test_the_member_directory_lists_lead_contacts(nodes: dict[str, Node]) -> None:
    status, listed = await nodes[ISLINGTON].call("GET", "/directory/contacts")
    assert status == 200, listed
    assert [m["id"] for m in listed["members"]] == [CAMDEN, HACKNEY, ISLINGTON]
    status, one = await nodes[ISLINGTON].call("GET", f"/directory/contacts?authority={HACKNEY}")
    assert status == 200
    (hackney,) = one["members"]
    assert hackney["status"] == "active" and hackney["endpoint"].startswith("https://127.0.0.1:")
    assert [c["id"] for c in hackney["lead_contacts"]] == ["hackney-lead-1", "hackney-lead-2"]
    assert hackney["lead_contacts"][0]["role"] == "Lead CAF contact"
    status, _ = await nodes[ISLINGTON].call("GET", "/directory/contacts?authority=E09000001")
    assert status == 404


async def test_an_unsigned_directory_search_is_refused(nodes: dict[str, Node]) -> None:
    """`/federation/v1/directory/services` answers signed member requests only, like every
    federation route: Camden's own TLS client certificate is not enough without the signature."""
    camden = nodes[CAMDEN].plan.settings
    assert camden.tls_cert_file and camden.tls_key_file and camden.ca_file
    context = client_context(camden.tls_cert_file, camden.tls_key_file, camden.ca_file)
    status, listed = await nodes[CAMDEN].call("GET", f"/directory/contacts?authority={HACKNEY}")
    assert status == 200
    endpoint = listed["members"][0]["endpoint"].rstrip("/") + FEDERATION_PATH  # where peers call
    url = endpoint + "/directory/services?text=club"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.get(url) as reply:
            status, body = reply.status, await reply.json()
    assert (status, body["error"]) == (403, "invalid_signature"), body
    assert "contents" not in body and "total_items" not in body

    # The same search signed by Camden's node is answered: what was missing is the signature.
    runner = nodes[CAMDEN].runner
    assert runner is not None
    signed = await runner.app[PEERS].get(HACKNEY, "/directory/services", {"text": "club"})
    assert signed.status == 200 and signed.body["total_items"] > 0
