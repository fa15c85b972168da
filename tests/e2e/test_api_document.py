"""The OpenAPI document against real federated nodes: every documented operation is walked to a
success, with real ids (a seeded episode, a raised request, a held disclosure, three transfer
offers), and every answer on the way, successes and errors alike, must be documented: its status,
its content type, and for JSON its body, checked against the document's own schemas.

The schemathesis test (tests/gateway/test_openapi.py) sends generated requests to a lone node,
which mostly meet 403s and 404s; this walk is what reaches the handlers' success answers, and it
fails when an operation is documented that no route serves."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.api import openapi_document
from gateway.demo import NodePlan, plan_federation

from ..adapters.facts import EXAMPLES
from .nodes import CAMDEN, HACKNEY, ISLINGTON, Node, disclosure, eventually, running

DOCUMENT = openapi_document()
METHODS = ("get", "post", "put", "patch", "delete")


class Walk:
    """Sends calls, checks each answer against the document, and keeps the operations that
    answered a success."""

    def __init__(self) -> None:
        self.succeeded: set[tuple[str, str]] = set()

    async def call(
        self,
        node: Node,
        method: str,
        template: str,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """`template` is the documented path ("/episodes/{episode_id}"), `path` the one sent."""
        headers = {**(headers or {}), "Authorization": f"Bearer {node.token}"}
        async with node.http.request(
            method, node.url + (path or template), headers=headers, **kwargs
        ) as response:
            status, raw = response.status, await response.read()
            media = response.headers.get("Content-Type", "").split(";")[0]
        body = json.loads(raw) if media == "application/json" else raw
        where = f"{method} {template} -> {status}"
        operation = DOCUMENT["paths"][template][method.lower()]
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{where}: status not documented"
        content = documented.get("content", {})
        assert media in content, f"{where}: {media} not documented ({sorted(content)})"
        if media == "application/json":
            schema = {**content[media]["schema"], "components": DOCUMENT["components"]}
            problems = [
                f"{list(e.absolute_path)}: {e.message[:200]}"
                for e in jsonschema.Draft202012Validator(schema).iter_errors(body)
            ]
            assert not problems, f"{where}: body does not conform: {problems[:3]}"
        if status < 300:
            self.succeeded.add((method.lower(), template))
        return status, body


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    """Three nodes on SQLite; Hackney holds every permitted disclosure for its lead contact, so
    the holder's approval queue has something in it."""
    plans = [
        NodePlan(
            p.borough, p.folder, p.settings.model_copy(update={"disclosure_approval": "always"})
        )
        if p.borough.gss == HACKNEY
        else p
        for p in plan_federation(tmp_path)
    ]
    async with running(plans) as started:
        yield started


async def test_every_documented_operation_answers_as_documented(nodes: dict[str, Node]) -> None:
    camden, hackney, islington = nodes[CAMDEN], nodes[HACKNEY], nodes[ISLINGTON]
    walk = Walk()
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml").read_bytes()

    # Forms and episodes, at Hackney.
    status, stored = await walk.call(hackney, "POST", "/forms", data=form)
    assert status == 201
    status, _ = await walk.call(hackney, "POST", "/forms", data=b"<not-a-form/>")
    assert status in (415, 422)
    (episode_id,) = stored["episode_ids"]
    one = "/episodes/{episode_id}"
    here = f"/episodes/{episode_id}"
    status, episode = await walk.call(hackney, "GET", one, here)
    assert status == 200 and episode["episode_id"] == episode_id
    for query in ("?format=eha-json", "?format=ecaf-xml-v3"):
        status, local = await walk.call(hackney, "GET", one, here + query)
        assert status == 200 and local, query
    status, _ = await walk.call(hackney, "GET", one, here, headers={"Accept": "application/xml"})
    assert status == 200
    status, _ = await walk.call(
        hackney, "GET", one, "/episodes/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12
    )
    assert status == 404
    child = episode["child"]
    status, found = await walk.call(
        hackney,
        "GET",
        "/episodes",
        params={
            "given_name": child["given_names"],
            "family_name": child["family_name"],
            "date_of_birth": child["date_of_birth"],
        },
    )
    assert status == 200 and found["matches"], found

    # An Islington TAC member: Islington is told (its notifications below).
    member = {
        "name": "A Teacher",
        "organisation": "Islington primary school",
        "agency_type": "education",
        "authority": ISLINGTON,
    }
    events = "/episodes/{episode_id}/events"
    status, _ = await walk.call(
        hackney,
        "POST",
        events,
        here + "/events",
        json={"event": {"type": "tac_member_added", "member": member}},
    )
    assert status == 200
    status, _ = await walk.call(hackney, "POST", events, here + "/events", json={"event": {}})
    assert status == 422
    oversized = io.BytesIO(b"{" + b" " * hackney.plan.settings.max_body_bytes + b"}")
    status, _ = await walk.call(
        hackney,
        "POST",
        events,
        here + "/events",
        data=oversized,
        headers={"Content-Type": "application/json"},
    )
    assert status == 413

    # Consent: a statement recorded, checked against, withdrawn.
    status, recorded = await walk.call(
        hackney,
        "POST",
        "/episodes/{episode_id}/consents",
        here + "/consents",
        json={
            "given_by": [{"role": "parent_carer", "name": "A Parent"}],
            "given_on": "2026-04-01",
            "method": "written",
            "storage_agreed": True,
            "purposes": ["early_help"],
            "share_with": [{"agency_type": "education"}],
        },
    )
    assert status == 201
    status, checked = await walk.call(
        hackney,
        "POST",
        "/episodes/{episode_id}/consent-check",
        here + "/consent-check",
        json={"recipient": {"agency_type": "education"}, "purpose": "early_help"},
    )
    assert status == 200 and checked["decision"] == "permit"
    status, _ = await walk.call(
        hackney,
        "POST",
        "/episodes/{episode_id}/consents/{consent_id}/withdraw",
        f"{here}/consents/{recorded['consent_id']}/withdraw",
        json={},
    )
    assert status == 200

    # A disclosure Camden asks for, decided at home, held at Hackney and released there.
    status, raised = await walk.call(camden, "POST", "/requests", json=disclosure(episode))
    assert status == 201
    request = f"/requests/{raised['request_id']}"
    decision = "/requests/{request_id}/decision"
    status, _ = await walk.call(
        camden,
        "POST",
        decision,
        request + "/decision",
        json={"decision": "approve", "lead_contact_id": "nobody"},
    )
    assert status == 403
    status, _ = await walk.call(
        camden,
        "POST",
        decision,
        request + "/decision",
        json={"decision": "approve", "lead_contact_id": camden.lead, "note": "known to us"},
    )
    assert status == 200
    status, _ = await walk.call(
        camden,
        "POST",
        decision,
        request + "/decision",
        json={"decision": "approve", "lead_contact_id": camden.lead},
    )
    assert status == 409
    status, _ = await walk.call(camden, "GET", "/requests")
    assert status == 200

    async def held() -> bool:
        status, waiting = await walk.call(hackney, "GET", "/disclosure-approvals")
        return status == 200 and bool(waiting["approvals"])

    await eventually(held)
    _, waiting = await walk.call(hackney, "GET", "/disclosure-approvals")
    status, _ = await walk.call(
        hackney,
        "POST",
        "/disclosure-approvals/{approval_id}/decision",
        f"/disclosure-approvals/{waiting['approvals'][0]['approval_id']}/decision",
        json={"decision": "approve", "lead_contact_id": hackney.lead},
    )
    assert status == 200

    async def answered() -> bool:
        status, seen = await walk.call(camden, "GET", "/requests/{request_id}", request)
        return status == 200 and seen["state"] == "answered"

    await eventually(answered)
    status, _ = await walk.call(hackney, "GET", "/register", params={"episode": episode_id})
    assert status == 200
    status, due = await walk.call(hackney, "GET", "/overdue", params={"as_of": "2099-01-01"})
    assert status == 200 and due["items"]
    status, _ = await walk.call(hackney, "GET", "/overdue", params={"rule": "lunch"})
    assert status == 400
    status, _ = await walk.call(hackney, "GET", "/audit/verify")
    assert status == 200
    status, report = await walk.call(hackney, "GET", "/reports/quality", params={"children": "900"})
    assert status == 200 and report["held_by_state"], report
    status, _ = await walk.call(
        hackney, "GET", "/reports/quality", params={"from": "2026-06-02", "to": "2026-06-01"}
    )
    assert status == 400

    # Directories, and what Islington was told.
    status, _ = await walk.call(
        hackney, "GET", "/directory/services", params={"scope": "federation"}
    )
    assert status == 200
    status, _ = await walk.call(hackney, "GET", "/directory/contacts", params={"authority": CAMDEN})
    assert status == 200

    async def told() -> bool:
        status, notices = await walk.call(islington, "GET", "/notifications")
        return status == 200 and bool(notices["notifications"])

    await eventually(told)

    # Transfers to Islington: declined, withdrawn, then accepted.
    offers: list[str] = []

    async def offer() -> str:
        status, made = await walk.call(
            hackney,
            "POST",
            "/episodes/{episode_id}/transfer",
            here + "/transfer",
            json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
        )
        assert status == 201
        offers.append(made["offer_id"])

        async def arrived() -> bool:
            status, listed = await walk.call(islington, "GET", "/transfers")
            return status == 200 and any(
                t["offer_id"] == made["offer_id"] for t in listed["transfers"]
            )

        await eventually(arrived)
        return str(made["offer_id"])

    closing = {"lead_contact_id": islington.lead, "reason": "not_resident"}
    first = await offer()
    status, _ = await walk.call(
        islington,
        "POST",
        "/transfers/{offer_id}/decline",
        f"/transfers/{first}/decline",
        json=closing,
    )
    assert status == 200

    async def closed_at_hackney(offer_id: str) -> bool:
        status, listed = await walk.call(hackney, "GET", "/transfers", params={"direction": "out"})
        return status == 200 and any(
            t["offer_id"] == offer_id and t["state"] != "offered" for t in listed["transfers"]
        )

    await eventually(lambda: closed_at_hackney(first))
    second = await offer()
    status, _ = await walk.call(
        hackney,
        "POST",
        "/transfers/{offer_id}/withdraw",
        f"/transfers/{second}/withdraw",
        json={"lead_contact_id": hackney.lead, "reason": "family_stayed"},
    )
    assert status == 200

    async def closed_at_islington() -> bool:
        status, listed = await walk.call(islington, "GET", "/transfers")
        return status == 200 and any(
            t["offer_id"] == second and t["state"] == "withdrawn" for t in listed["transfers"]
        )

    await eventually(closed_at_islington)
    third = await offer()
    lead = {
        "name": "Lead in Islington",
        "organisation": "Family Hub",
        "agency_type": "early_help",
        "authority": ISLINGTON,
    }
    status, _ = await walk.call(
        islington,
        "POST",
        "/transfers/{offer_id}/accept",
        f"/transfers/{third}/accept",
        json={"lead_contact_id": islington.lead, "lead_professional": lead},
    )
    assert status == 200
    status, _ = await walk.call(
        islington,
        "POST",
        "/transfers/{offer_id}/accept",
        f"/transfers/{first}/accept",
        json={"lead_contact_id": islington.lead, "lead_professional": lead},
    )
    assert status == 409

    documented = {
        (method, path)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method in METHODS
    }
    assert documented - walk.succeeded == set(), "documented operations never answered a success"
