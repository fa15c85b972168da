"""Practitioner requests between real nodes, as a review found them wanting: withdrawn content no
longer served, the decision response of a system that did not raise the request, audited reads, a
refused auto-approval, located refusals of bad input and of a target that is no member."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from gateway.demo import NodePlan, plan_federation
from gateway.federation.operator import suspend
from gateway.keys import ENGINE
from gateway.storage._tables import audit_entries, received_copies, received_withdrawals

from .nodes import (
    CAMDEN,
    HACKNEY,
    PRACTITIONER,
    Node,
    ask,
    disclosure,
    eventually,
    existence_check,
    federation_on,
    login,
    running,
    seed,
    sees_suspended,
    settled,
)


def _with(plans: list[NodePlan], gss: str, **settings: Any) -> list[NodePlan]:
    return [
        NodePlan(p.borough, p.folder, p.settings.model_copy(update=settings))
        if p.borough.gss == gss
        else p
        for p in plans
    ]


async def _audited(node: Node, action: str) -> list[Any]:
    return await node.engine_rows(
        select(audit_entries)
        .where(audit_entries.c.action == action)
        .order_by(audit_entries.c.sequence)
    )


async def _decide(node: Node, request_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    status, answer = await node.call("POST", f"/requests/{request_id}/decision", json=body)
    return status, dict(answer)


async def _withdrawal_arrived_first(camden: Node, episode: dict[str, Any]) -> None:
    """Hackney's withdrawal of C1 reached Camden before the answer (each message has its own
    back-off): Camden keeps it, and marks the copy as the answer arrives."""
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        await connection.execute(
            insert(received_withdrawals).values(
                holder=HACKNEY,
                episode_ref=episode["episode_id"],
                consent_id="C1",
                received_at=dt.datetime.now(dt.UTC),
            )
        )


# --- 1. withdrawn content ------------------------------------------------------------------------


async def test_content_is_not_served_once_consent_to_it_is_withdrawn(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    answered = await ask(camden, disclosure(episode))
    assert answered["state"] == "answered", answered
    request_id = answered["request_id"]
    status, record = await camden.call("GET", f"/requests/{request_id}")
    assert set(record["answer"]["content"]) == {"assessments", "delivery_plan"}
    assert record["answer"]["withdrawn_at"] is None

    status, withdrawn = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200, withdrawn

    async def marked() -> bool:
        copies = await camden.engine_rows(select(received_copies))
        return len(copies) == 1 and copies[0].withdrawn_at is not None

    await eventually(marked)
    status, record = await camden.call("GET", f"/requests/{request_id}")
    assert status == 200 and record["state"] == "answered", record
    answer = record["answer"]
    assert "content" not in answer
    assert answer["withdrawn_at"] is not None
    assert answer["sections"] == ["assessments", "delivery_plan"]  # what was disclosed, still


async def test_a_held_answer_arriving_after_the_withdrawal_is_not_served(
    tmp_path: Path,
) -> None:
    plans = _with(plan_federation(tmp_path), HACKNEY, disclosure_approval="always")
    async with running(plans) as nodes:
        camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
        episode = await seed(hackney)
        waiting = await ask(camden, disclosure(episode))
        assert waiting["state"] == "awaiting_holder", waiting
        await _withdrawal_arrived_first(camden, episode)
        status, queue = await hackney.call("GET", "/disclosure-approvals")
        [held] = queue["approvals"]
        status, decided = await hackney.call(
            "POST",
            f"/disclosure-approvals/{held['approval_id']}/decision",
            json={"decision": "approve", "lead_contact_id": hackney.lead},
        )
        assert status == 200 and decided["outcome"] == "disclosed", decided
        record = await settled(camden, waiting["request_id"])
        assert record["state"] == "answered", record
        assert "content" not in record["answer"] and record["answer"]["withdrawn_at"] is not None


async def test_the_decision_that_sends_a_request_shows_a_withdrawal_already_known(
    federation: dict[str, Node],
) -> None:
    """The withdrawal reached Camden before the answer: the response of the decision that sent
    the request (to the system that raised it) already leaves the content out."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    await _withdrawal_arrived_first(camden, episode)
    status, record = await camden.call("POST", "/requests", json=disclosure(episode))
    assert status == 201, record
    status, sent = await _decide(
        camden, record["request_id"], decision="approve", lead_contact_id=camden.lead
    )
    assert status == 200 and sent["state"] == "answered", sent
    assert "content" not in sent["answer"] and sent["answer"]["withdrawn_at"] is not None


# --- 2. the decision response ----------------------------------------------------------------------


async def test_a_system_passing_on_a_decision_sees_no_disclosed_content(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    status, record = await camden.call("POST", "/requests", json=disclosure(episode))
    assert status == 201, record
    leads = Node(camden.plan)  # the lead contacts' own system: requests:decide only
    leads.runner = camden.runner
    try:
        await login(leads, scopes=["requests:decide"], name="lead-contacts")
        status, decided = await _decide(
            leads, record["request_id"], decision="approve", lead_contact_id=camden.lead
        )
        assert status == 200 and decided["state"] == "answered", decided
        assert decided["answer"] == {
            "outcome": "disclosed",
            "sections": ["assessments", "delivery_plan"],
        }
        assert decided["decisions"][0]["by"] == camden.lead
    finally:
        await leads.http.close()
    status, read = await camden.call("GET", f"/requests/{record['request_id']}")  # the raiser
    assert set(read["answer"]["content"]) == {"assessments", "delivery_plan"}


async def test_another_system_with_both_scopes_reads_no_disclosed_content(
    federation: dict[str, Node],
) -> None:
    """A borough's main case system may hold `requests:write` and `requests:decide`: it reads the
    decision view of a request another system raised, not what that system's practitioner
    received."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    answered = await ask(camden, disclosure(episode))
    main = Node(camden.plan)
    main.runner = camden.runner
    try:
        await login(main, scopes=["requests:write", "requests:decide"], name="main-case-system")
        status, read = await main.call("GET", f"/requests/{answered['request_id']}")
    finally:
        await main.http.close()
    assert status == 200, read
    assert read["answer"] == {"outcome": "disclosed", "sections": ["assessments", "delivery_plan"]}
    assert read["state"] == "answered"


# --- 3. audited reads -------------------------------------------------------------------------------


async def test_reads_of_a_request_and_of_the_queues_are_audited(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    answered = await ask(camden, disclosure(episode))
    request_id = answered["request_id"]
    for _ in range(2):
        status, _read = await camden.call("GET", f"/requests/{request_id}")
        assert status == 200
    reads = await _audited(camden, "request.read")
    assert [(r.subject, r.outcome, r.actor.startswith("client:")) for r in reads] == [
        (request_id, "success", True)
    ] * 2
    assert json.loads(reads[0].details) == {"state": "answered"}

    status, waiting = await camden.call("POST", "/requests", json=disclosure(episode))
    status, queue = await camden.call("GET", "/requests")
    assert [r["request_id"] for r in queue["requests"]] == [waiting["request_id"]]
    [listed] = await _audited(camden, "request.list")
    assert (listed.subject, json.loads(listed.details)) == (None, {"results": 1})

    status, held = await hackney.call("GET", "/disclosure-approvals")
    assert status == 200 and held["approvals"] == []
    [listed] = await _audited(hackney, "disclosure_approval.list")
    assert (listed.subject, json.loads(listed.details)) == (None, {"results": 0})


# --- 4. a refused auto-approval --------------------------------------------------------------------


async def test_a_refused_auto_approval_leaves_the_request_waiting(tmp_path: Path) -> None:
    async with running(plan_federation(tmp_path, auto_approve_roles=("Health visitor",))) as nodes:
        camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
        episode = await seed(hackney)
        # The auto-approver raised it themself: they cannot approve their own request.
        body = existence_check(episode, practitioner={**PRACTITIONER, "id": camden.lead})
        key = {"Idempotency-Key": "raise-once"}
        status, record = await camden.call("POST", "/requests", json=body, headers=key)
        assert status == 201 and record["state"] == "awaiting_verification", record
        status, again = await camden.call("POST", "/requests", json=body, headers=key)
        assert (status, again["request_id"]) == (201, record["request_id"])
        status, queue = await camden.call("GET", "/requests")
        assert [r["request_id"] for r in queue["requests"]] == [record["request_id"]]
        [refused] = await _audited(camden, "request.decide")
        assert (refused.outcome, refused.reason) == ("refused", "self_approval")
        assert json.loads(refused.details)["via"] == "auto"
        # Another lead contact verifies it as any other.
        second = camden.plan.borough.lead_contacts()[1]
        status, decided = await _decide(
            camden, record["request_id"], decision="approve", lead_contact_id=second
        )
        assert status == 200 and decided["state"] == "answered", decided


async def test_an_unlisted_auto_approver_leaves_the_request_waiting(tmp_path: Path) -> None:
    plans = plan_federation(tmp_path, auto_approve_roles=("Health visitor",))
    async with running(_with(plans, CAMDEN, auto_approver="no-longer-listed")) as nodes:
        camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
        episode = await seed(hackney)
        status, record = await camden.call("POST", "/requests", json=existence_check(episode))
        assert status == 201 and record["state"] == "awaiting_verification", record
        [refused] = await _audited(camden, "request.decide")
        assert (refused.reason, refused.actor) == ("not_lead_contact", "lead:unlisted")


# --- 5. not_lead_contact, 7. a rejection's reason and who passed a decision on ------------------------


async def test_a_decision_names_a_listed_lead_contact_and_a_rejection_its_reason(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    status, record = await camden.call("POST", "/requests", json=disclosure(episode))
    request_id = record["request_id"]
    status, refused = await _decide(
        camden, request_id, decision="approve", lead_contact_id="not-a-lead"
    )
    assert (status, refused["error"]) == (403, "not_lead_contact"), refused

    for note in (None, "  "):
        body: dict[str, Any] = {"decision": "reject", "lead_contact_id": camden.lead}
        if note is not None:
            body["note"] = note
        status, refused = await _decide(camden, request_id, **body)
        assert (status, refused["error"]) == (422, "schema_violation"), refused
        assert [p["location"] for p in refused["problems"]] == ["/note"]
    status, rejected = await _decide(
        camden, request_id, decision="reject", lead_contact_id=camden.lead, note="not known to us"
    )
    assert status == 200 and rejected["state"] == "rejected", rejected

    decisions = await _audited(camden, "request.decide")
    client = rejected["decisions"][0]["via"]
    assert client.startswith("client:")
    assert [(d.reason, json.loads(d.details).get("via")) for d in decisions] == [
        ("not_lead_contact", client),
        (None, client),
    ]


async def test_a_decision_on_no_such_request_is_audited(federation: dict[str, Node]) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    unknown = "0b5e8a52-7c1d-4f0e-9a3b-2d6c8e1f4a70"
    status, refused = await _decide(
        camden, unknown, decision="approve", lead_contact_id=camden.lead
    )
    assert (status, refused["error"]) == (404, "not_found"), refused
    status, refused = await _decide(
        camden, "not-a-request", decision="approve", lead_contact_id=camden.lead
    )
    assert (status, refused["error"]) == (404, "not_found"), refused
    entry, malformed = await _audited(camden, "request.decide")
    assert (entry.outcome, entry.reason, entry.subject) == ("refused", "not_found", unknown)
    assert entry.actor == f"lead:{camden.lead}"
    assert (malformed.reason, malformed.subject) == ("not_found", None)
    assert malformed.actor.startswith("client:")
    status, refused = await hackney.call(
        "POST",
        f"/disclosure-approvals/{unknown}/decision",
        json={"decision": "approve", "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (404, "not_found"), refused
    status, refused = await hackney.call(
        "POST",
        "/disclosure-approvals/not-a-hold/decision",
        json={"decision": "approve", "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (404, "not_found"), refused
    entries = await _audited(hackney, "disclosure_approval.decide")
    assert [e.reason for e in entries] == ["not_found", "not_found"]


async def test_a_decision_without_usable_federation_metadata_is_audited(tmp_path: Path) -> None:
    """A node whose federation metadata cannot be had (here: the file is not there) checks no lead
    contact and decides nothing (503): both kinds of decision are still recorded as refused."""
    plans = plan_federation(tmp_path)
    plans = _with(plans, CAMDEN, federation_metadata=str(tmp_path / "no-such-metadata.jws"))
    async with running(p for p in plans if p.borough.gss == CAMDEN) as nodes:
        camden = nodes[CAMDEN]
        unknown = "0b5e8a52-7c1d-4f0e-9a3b-2d6c8e1f4a70"
        status, refused = await _decide(
            camden, unknown, decision="approve", lead_contact_id=camden.lead
        )
        assert (status, refused["error"]) == (503, "peer_unavailable"), refused
        status, held = await camden.call(
            "POST",
            f"/disclosure-approvals/{unknown}/decision",
            json={"decision": "approve", "lead_contact_id": camden.lead},
        )
        assert (status, held["error"]) == (503, "peer_unavailable"), held
        for action in ("request.decide", "disclosure_approval.decide"):
            (entry,) = await _audited(camden, action)
            assert (entry.outcome, entry.reason) == ("refused", "peer_unavailable"), action
            assert entry.actor == "lead:unlisted"  # not known to be a lead contact's id
        # And the node says it is not ready (DESIGN 4: metadata freshness).
        async with camden.http.get(camden.plan.api_url + "/readyz") as response:
            assert response.status == 503
            assert (await response.json())["error"] == "not_ready"


async def test_a_holder_side_rejection_gives_its_reason_and_who_passed_it_on(
    tmp_path: Path,
) -> None:
    plans = _with(plan_federation(tmp_path), HACKNEY, disclosure_approval="always")
    async with running(plans) as nodes:
        camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
        episode = await seed(hackney)
        await ask(camden, disclosure(episode))
        status, queue = await hackney.call("GET", "/disclosure-approvals")
        [held] = queue["approvals"]
        path = f"/disclosure-approvals/{held['approval_id']}/decision"
        body = {"decision": "reject", "lead_contact_id": hackney.lead}
        status, refused = await hackney.call("POST", path, json=body)
        assert (status, refused["problems"][0]["location"]) == (422, "/note"), refused
        status, rejected = await hackney.call("POST", path, json={**body, "note": "ask first"})
        assert status == 200 and rejected["state"] == "rejected", rejected
        [decided] = await _audited(hackney, "disclosure_approval.decide")
        assert json.loads(decided.details)["via"].startswith("client:")


# --- 6. control characters, on PostgreSQL ------------------------------------------------------------


@pytest.fixture
async def on_postgresql(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with federation_on("postgresql", tmp_path) as nodes:
        yield nodes


async def test_control_characters_are_refused_where_they_are_not_a_500(
    on_postgresql: dict[str, Node],
) -> None:
    camden, hackney = on_postgresql[CAMDEN], on_postgresql[HACKNEY]
    episode = await seed(hackney)
    for field in ("role", "name", "agency"):
        practitioner = {**PRACTITIONER, field: "Health\u0000visitor"}
        body = existence_check(episode, practitioner=practitioner)
        status, refused = await camden.call("POST", "/requests", json=body)
        assert (status, refused["error"]) == (422, "schema_violation"), refused
        assert [(p["location"], p["rule"]) for p in refused["problems"]] == [
            (f"/practitioner/{field}", "text.control_characters")
        ]
    status, record = await camden.call("POST", "/requests", json=existence_check(episode))
    status, refused = await _decide(
        camden, record["request_id"], decision="approve", lead_contact_id="lead\u0000"
    )
    assert (status, refused["problems"][0]["location"]) == (422, "/lead_contact_id"), refused
    for approval_id in ("x%00y", "not-an-approval"):
        status, missing = await hackney.call(
            "POST",
            f"/disclosure-approvals/{approval_id}/decision",
            json={"decision": "approve", "lead_contact_id": hackney.lead},
        )
        assert (status, missing["error"]) == (404, "not_found"), missing
    for offer_id in ("x%00y", "not-an-offer"):  # a NUL reached PostgreSQL: a 500, not audited
        for verb in ("decline", "withdraw"):
            status, missing = await hackney.call(
                "POST", f"/transfers/{offer_id}/{verb}", json={"lead_contact_id": hackney.lead}
            )
            assert (status, missing["error"]) == (404, "not_found"), missing
    closing = [
        *await _audited(hackney, "transfer.decline"),
        *await _audited(hackney, "transfer.withdraw"),
    ]
    assert [(e.outcome, e.reason) for e in closing] == [("failed", "not_found")] * 4


# --- 8. the target ------------------------------------------------------------------------------------


async def test_a_request_goes_only_to_another_active_member(federation: dict[str, Node]) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    for target, status_code, code in (
        ("E09999999", 403, "unknown_member"),
        (CAMDEN, 422, "schema_violation"),
    ):
        body = existence_check(episode, target_authority=target)
        status, refused = await camden.call("POST", "/requests", json=body)
        assert (status, refused["error"]) == (status_code, code), refused
        assert [p["location"] for p in refused["problems"]] == ["/target_authority"]
    status, queue = await camden.call("GET", "/requests")
    assert queue["requests"] == []  # nothing raised


async def test_a_target_suspended_before_the_approval_fails_the_request_with_its_code(
    tmp_path: Path, federation: dict[str, Node]
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    status, record = await camden.call("POST", "/requests", json=existence_check(episode))
    assert status == 201, record
    suspend(tmp_path / "federation", HACKNEY)
    plan_federation(tmp_path)  # re-sign the metadata: Hackney suspended
    await sees_suspended(camden, HACKNEY)
    status, failed = await _decide(
        camden, record["request_id"], decision="approve", lead_contact_id=camden.lead
    )
    assert status == 200, failed
    assert (failed["state"], failed["error"]) == ("failed", "member_suspended")
    status, refused = await camden.call("POST", "/requests", json=existence_check(episode))
    assert (status, refused["error"]) == (403, "member_suspended"), refused


async def test_a_request_refused_when_raised_is_audited(federation: dict[str, Node]) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    to_self = {**disclosure(episode), "target_authority": CAMDEN}
    status, refused = await camden.call("POST", "/requests", json=to_self)
    assert status == 422, refused
    to_nobody = {**disclosure(episode), "target_authority": "E09000001"}
    status, refused = await camden.call("POST", "/requests", json=to_nobody)
    assert status == 403 and refused["error"] == "unknown_member", refused
    rows = await _audited(camden, "request.create")
    assert [(r.outcome, r.reason) for r in rows] == [
        ("failed", "schema_violation"),
        ("refused", "unknown_member"),
    ]
