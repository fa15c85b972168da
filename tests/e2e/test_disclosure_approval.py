"""Holder-side disclosure approval between real nodes (mutual TLS, signatures, attestations, the
outbox): Hackney holds permitted disclosures for its lead CAF contact (`CAFX_DISCLOSURE_APPROVAL`),
Camden's request waits in `awaiting_holder` until Hackney's `disclosure_answer` message completes it.
Every test runs on SQLite and on PostgreSQL (one schema per node)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.api._openapi import HeldDisclosure, HeldDisclosures
from gateway.demo import DEMO_BOROUGHS, Borough, NodePlan, plan_federation
from gateway.federation.operator import suspend
from gateway.keys import DISCLOSURE_APPROVALS, ENGINE, OUTBOX
from gateway.storage import async_url
from gateway.storage._tables import (
    audit_entries,
    outbox,
    practitioner_requests,
    received_copies,
    register,
)

from ..conftest import POSTGRES_URL, postgres_schemas
from .nodes import (
    CAMDEN,
    HACKNEY,
    ISLINGTON,
    PRACTITIONER,
    Node,
    ask,
    disclosure,
    eventually,
    login,
    running,
    seed,
    sees_suspended,
    settled,
)

DatabaseFor = Callable[[Borough, Path], tuple[str, str | None]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[DatabaseFor | None]:
    """None: each node's own SQLite file; or a fresh PostgreSQL schema per node."""
    if request.param == "sqlite":
        yield None
        return
    async with postgres_schemas(len(DEMO_BOROUGHS)) as schemas:
        by_borough = dict(zip((b.short for b in DEMO_BOROUGHS), schemas, strict=True))

        def database_for(borough: Borough, folder: Path) -> tuple[str, str | None]:
            return async_url(POSTGRES_URL), by_borough[borough.short]

        yield database_for


@asynccontextmanager
async def _federation(
    tmp_path: Path, backend: DatabaseFor | None, policy: str
) -> AsyncIterator[dict[str, Node]]:
    """Three nodes; Hackney (the holder in these tests) with the given approval policy."""
    extra: dict[str, Any] = {"database": backend} if backend is not None else {}
    plans = plan_federation(tmp_path, auto_approve_roles=("Health visitor",), **extra)
    plans = [
        NodePlan(
            plan.borough,
            plan.folder,
            plan.settings.model_copy(update={"disclosure_approval": policy}),
        )
        if plan.borough.gss == HACKNEY
        else plan
        for plan in plans
    ]
    async with running(plans) as nodes:
        yield nodes


@pytest.fixture
async def always(tmp_path: Path, backend: DatabaseFor | None) -> AsyncIterator[dict[str, Node]]:
    async with _federation(tmp_path, backend, "always") as nodes:
        yield nodes


@pytest.fixture
async def overrides(tmp_path: Path, backend: DatabaseFor | None) -> AsyncIterator[dict[str, Node]]:
    async with _federation(tmp_path, backend, "overrides") as nodes:
        yield nodes


async def _held(home: Node, holder: Node, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Ask; the request must wait for the holder. Returns it and the holder's approval id."""
    record = await ask(home, body)
    assert record["state"] == "awaiting_holder", record
    assert record["answer"] is None and record["error"] is None
    status, queue = await holder.call("GET", "/disclosure-approvals")
    assert status == 200, queue
    mine = [a for a in queue["approvals"] if a["episode_id"] == body["episode_ref"]]
    assert len(mine) == 1 and mine[0]["state"] == "pending" and mine[0]["requester"] == CAMDEN
    return record, str(mine[0]["approval_id"])


async def _decide(holder: Node, approval_id: str, **body: Any) -> tuple[int, dict[str, Any]]:
    status, answer = await holder.call(
        "POST", f"/disclosure-approvals/{approval_id}/decision", json=body
    )
    return status, dict(answer)


async def test_approve_after_a_listed_lead_contact_only_and_only_once(
    always: dict[str, Node],
) -> None:
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    HeldDisclosures.model_validate(queue)  # as the OpenAPI document describes it
    held = queue["approvals"][0]
    assert held["sections"] == ["assessments", "delivery_plan"] and held["override"] is False
    assert held["purpose"] == "early_help" and held["practitioner_role"] == "Health visitor"
    assert "content" not in held
    assert await hackney.engine_rows(select(register)) == []  # nothing disclosed while held

    status, missing = await _decide(
        hackney, "no-such-approval", decision="approve", lead_contact_id=hackney.lead
    )
    assert status == 404 and missing["error"] == "not_found"
    status, invalid = await _decide(hackney, approval_id, decision="maybe", lead_contact_id="x")
    assert status == 422 and invalid["problems"][0]["location"] == "/decision", invalid

    # Camden's lead contact is not Hackney's: refused, audited, still pending.
    status, refused = await _decide(
        hackney, approval_id, decision="approve", lead_contact_id=camden.lead
    )
    assert status == 403 and refused["error"] == "not_lead_contact", refused
    audited = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "disclosure_approval.decide")
    )
    # The decision on an id that names no hold was recorded too, by the system that passed it on.
    client = audited[0].actor
    assert client.startswith("client:")
    assert [(a.outcome, a.reason, a.actor) for a in audited] == [
        ("failed", "not_found", client),
        ("refused", "not_lead_contact", "lead:unlisted"),
    ]
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    assert [a["approval_id"] for a in queue["approvals"]] == [approval_id]

    status, decided = await _decide(
        hackney, approval_id, decision="approve", lead_contact_id=hackney.lead, note="fine"
    )
    assert status == 200, decided
    HeldDisclosure.model_validate(decided)
    assert decided["state"] == "approved" and decided["outcome"] == "disclosed"
    status, again = await _decide(
        hackney, approval_id, decision="reject", lead_contact_id=hackney.lead, note="late"
    )
    assert status == 409 and again["error"] == "already_decided"
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    assert queue["approvals"] == []

    answered = await settled(camden, record["request_id"])
    assert answered["state"] == "answered", answered
    answer = answered["answer"]
    assert answer["approval_id"] == approval_id and answer["outcome"] == "disclosed"
    assert set(answer["content"]) == {"assessments", "delivery_plan"}
    assert answer["content"]["assessments"] == episode["assessments"]
    assert answer["receipt"].count(".") == 2
    status, theirs = await hackney.call("GET", f"/register?episode={episode['episode_id']}")
    assert [(e["direction"], e["counterpart"]) for e in theirs["entries"]] == [("sent", CAMDEN)]
    assert theirs["entries"][0]["id"] == answer["register_id"]
    # Who approved, on each side: Camden's lead contact verified it, Hackney's released it.
    assert (theirs["entries"][0]["approved_by"], theirs["entries"][0]["holder_approved_by"]) == (
        camden.lead,
        hackney.lead,
    )
    ours = await camden.engine_rows(select(register))
    assert [(r.direction, r.counterpart, r.receipt, r.holder_approved_by) for r in ours] == [
        ("received", HACKNEY, answer["receipt"], hackney.lead)  # the receipt says so too
    ]
    copies = await camden.engine_rows(select(received_copies))
    assert [c.request_id for c in copies] == [record["request_id"]]
    status, log = await hackney.call("GET", "/audit/verify")
    assert log["ok"] is True
    status, log = await camden.call("GET", "/audit/verify")
    assert log["ok"] is True


async def test_a_rejection_reaches_the_requester_as_holder_rejected(
    always: dict[str, Node],
) -> None:
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    status, decided = await _decide(
        hackney,
        approval_id,
        decision="reject",
        lead_contact_id=hackney.lead,
        note="ask the family first",
    )
    assert status == 200 and decided["state"] == "rejected", decided
    assert decided["outcome"] == "holder_rejected"
    refused = await settled(camden, record["request_id"])
    assert refused["state"] == "refused" and refused["error"] == "holder_rejected"
    assert refused["answer"] is None
    assert await hackney.engine_rows(select(register)) == []
    assert await camden.engine_rows(select(register)) == []
    assert await camden.engine_rows(select(received_copies)) == []


async def test_an_answer_finds_its_request_by_approval_id_also_one_held_before_0012(
    always: dict[str, Node],
) -> None:
    """The holder's answer names its approval id: the requester finds the request by it (an indexed
    column), and one held before migration 0012, whose id is only in its sealed document, still."""
    camden, hackney = always[CAMDEN], always[HACKNEY]
    first, first_id = await _held(camden, hackney, disclosure(await seed(hackney)))
    older, older_id = await _held(camden, hackney, disclosure(await seed(hackney)))
    kept = await camden.engine_rows(
        select(practitioner_requests.c.id, practitioner_requests.c.approval_id)
    )
    assert sorted(kept) == sorted(
        [(first["request_id"], first_id), (older["request_id"], older_id)]
    )
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        await connection.execute(
            update(practitioner_requests)
            .where(practitioner_requests.c.id == older["request_id"])
            .values(approval_id=None)
        )
    for approval_id in (older_id, first_id):
        status, decided = await _decide(
            hackney, approval_id, decision="approve", lead_contact_id=hackney.lead
        )
        assert status == 200, decided
    for record, approval_id in ((older, older_id), (first, first_id)):
        answered = await settled(camden, record["request_id"])
        assert answered["state"] == "answered", answered
        assert answered["answer"]["approval_id"] == approval_id
    # Beside the request only while it waits: the answer named it, and it is sealed again.
    assert await camden.engine_rows(select(practitioner_requests.c.approval_id)) == [(None,)] * 2


async def test_consent_withdrawn_before_approval_discloses_nothing(
    always: dict[str, Node],
) -> None:
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    status, withdrawn = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200 and withdrawn["changed"] is True
    status, decided = await _decide(
        hackney, approval_id, decision="approve", lead_contact_id=hackney.lead
    )
    # Approved by the lead contact, refused by the node: its own state, not "approved".
    assert status == 200 and decided["state"] == "refused", decided
    # The episode holds one statement, C1, which covered this request when it was held; withdrawn
    # today it fails on timing (`withdrawn_on <= today`) while still covering, the closest a
    # statement can come (DESIGN 3.5 via consent/_decide.py): the engine answers consent_withdrawn.
    # consent_missing would mean no statement came that close, which is not this episode.
    assert decided["outcome"] == "consent_withdrawn", decided
    refused = await settled(camden, record["request_id"])
    assert refused["state"] == "refused" and refused["error"] == decided["outcome"]
    assert await hackney.engine_rows(select(register)) == []
    assert await camden.engine_rows(select(received_copies)) == []
    disclosures = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.disclosure")
    )
    # The refusal names the statement it turned on, as a permitted disclosure's register row does.
    assert [(d.outcome, d.reason, json.loads(d.details)["consent"]) for d in disclosures] == [
        ("refused", decided["outcome"], "C1")
    ]


async def test_a_requester_suspended_before_the_decision_is_sent_nothing(
    always: dict[str, Node], tmp_path: Path
) -> None:
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    first, approve_id = await _held(camden, hackney, disclosure(episode))
    second = await ask(camden, disclosure(episode, reason="the school nurse asked too"))
    assert second["state"] == "awaiting_holder", second
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    [reject_id] = [a["approval_id"] for a in queue["approvals"] if a["approval_id"] != approve_id]

    suspend(tmp_path / "federation", CAMDEN)
    plan_federation(tmp_path)  # re-sign the metadata: Camden suspended
    await sees_suspended(hackney, CAMDEN)

    status, approved = await _decide(
        hackney, approve_id, decision="approve", lead_contact_id=hackney.lead
    )
    assert status == 200, approved
    assert (approved["state"], approved["outcome"]) == ("refused", "member_suspended")
    status, rejected = await _decide(
        hackney, reject_id, decision="reject", lead_contact_id=hackney.lead, note="no need"
    )
    assert status == 200 and rejected["state"] == "rejected", rejected

    assert await hackney.engine_rows(select(register)) == []  # nothing disclosed
    answers = select(outbox).where(outbox.c.kind == "disclosure_answer")
    assert await hackney.engine_rows(answers) == []  # and nothing queued for Camden
    refusals = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.disclosure")
    )
    assert [(r.outcome, r.reason, r.subject) for r in refusals] == [
        ("refused", "member_suspended", episode["episode_id"])
    ]
    decisions = await hackney.engine_rows(
        select(audit_entries)
        .where(audit_entries.c.action == "disclosure_approval.decide")
        .order_by(audit_entries.c.sequence)
    )
    assert [(d.outcome, d.reason, json.loads(d.details)["told"]) for d in decisions] == [
        ("refused", "member_suspended", False),
        ("refused", "holder_rejected", False),
    ]
    for record in (first, second):  # Camden's node was told nothing
        status, still = await camden.call("GET", f"/requests/{record['request_id']}")
        assert still["state"] == "awaiting_holder", still
    status, log = await hackney.call("GET", "/audit/verify")
    assert log["ok"] is True


async def test_an_attestation_expired_before_the_decision_discloses_nothing(
    always: dict[str, Node],
) -> None:
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    assert hackney.runner is not None
    approvals = hackney.runner.app[DISCLOSURE_APPROVALS]
    # Camden's node attests for an hour; the lead contact decides two hours after it arrived.
    later = (await approvals.get(approval_id)).received_at + dt.timedelta(hours=2)
    decided = await approvals.decide(
        approval_id, lead_contact_id=hackney.lead, decision="approve", now=later
    )
    assert (decided.state, decided.outcome) == ("refused", "attestation_invalid")
    assert await hackney.engine_rows(select(register)) == []
    refused = await settled(camden, record["request_id"])  # still a member: told why
    assert refused["state"] == "refused" and refused["error"] == "attestation_invalid", refused
    assert await camden.engine_rows(select(received_copies)) == []
    audited = await hackney.engine_rows(
        select(audit_entries).where(
            audit_entries.c.action.in_(["federation.disclosure", "disclosure_approval.decide"])
        )
    )
    assert {(a.action, a.outcome, a.reason) for a in audited} >= {
        ("federation.disclosure", "refused", "attestation_invalid"),
        ("disclosure_approval.decide", "refused", "attestation_invalid"),
    }
    status, held = await hackney.call("GET", "/disclosure-approvals")
    assert held["approvals"] == []


async def _override_to_holder(
    camden: Node, episode: dict[str, Any], ends: dt.datetime
) -> dict[str, Any]:
    """A police officer's override request, approved by two of Camden's lead contacts (the second
    through another system) and sent: the request, waiting for the holder's lead contact."""
    police = {**PRACTITIONER, "id": "camden-pc-1", "agency": "Met", "agency_type": "police"}
    body = disclosure(
        episode,
        practitioner=police,
        purpose="safeguarding",
        reason="immediate risk of significant harm",
        sections=["child"],
        override={
            "justification": "Safeguarding concern reported tonight; consent cannot be sought safely.",
            "expires_at": ends.isoformat(),
        },
    )
    status, record = await camden.call("POST", "/requests", json=body)
    assert status == 201, record
    path = f"/requests/{record['request_id']}/decision"
    first, second = camden.plan.borough.lead_contacts()[:2]  # an override needs two of Camden's
    status, record = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": first}
    )
    assert status == 200, record
    raising_system = camden.token
    await login(camden, name="second-lead-system")  # the second comes through another system
    status, record = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    camden.token = raising_system  # only the system that raised it reads the answer's content
    assert status == 200 and record["state"] == "awaiting_holder", record
    return dict(record)


async def test_the_overrides_policy_holds_only_override_disclosures(
    overrides: dict[str, Node],
) -> None:
    camden, hackney = overrides[CAMDEN], overrides[HACKNEY]
    episode = await seed(hackney)
    plain = await ask(camden, disclosure(episode))
    assert plain["state"] == "answered", plain  # consent alone: answered at once

    record = await _override_to_holder(
        camden, episode, dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    )
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    [held] = queue["approvals"]
    assert held["override"] is True and held["sections"] == ["child"]
    status, decided = await _decide(
        hackney, held["approval_id"], decision="approve", lead_contact_id=hackney.lead
    )
    assert status == 200 and decided["outcome"] == "disclosed", decided
    answered = await settled(camden, record["request_id"])
    assert answered["state"] == "answered" and answered["answer"]["override"] is True
    assert set(answered["answer"]["content"]) == {"child"}
    status, theirs = await hackney.call("GET", f"/register?episode={episode['episode_id']}")
    assert [e["override"] for e in theirs["entries"]] == [False, True]
    status, flagged = await hackney.call("GET", f"/episodes/{episode['episode_id']}")
    assert len(flagged["extensions"]["caf-exchange"]["overrides"]) == 1


async def test_an_override_ended_before_the_holders_decision_permits_nothing(
    overrides: dict[str, Node],
) -> None:
    """The holder's lead contact decides after the override's time limit (the attestation still
    valid): the override no longer counts, and consent alone does not let the police see it."""
    camden, hackney = overrides[CAMDEN], overrides[HACKNEY]
    episode = await seed(hackney)
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    await _override_to_holder(camden, episode, ends)
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    [held] = queue["approvals"]
    assert hackney.runner is not None
    decided = await hackney.runner.app[DISCLOSURE_APPROVALS].decide(
        held["approval_id"],
        lead_contact_id=hackney.lead,
        decision="approve",
        now=ends + dt.timedelta(minutes=1),  # the attestation lasts an hour
    )
    assert decided.state == "refused" and decided.outcome != "disclosed", decided
    assert await hackney.engine_rows(select(register)) == []


async def test_a_forged_disclosure_answer_is_not_applied(always: dict[str, Node]) -> None:
    camden, hackney, islington = always[CAMDEN], always[HACKNEY], always[ISLINGTON]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    forged = {
        "outcome": "disclosed",
        "register_id": "r-1",
        "episode_ref": episode["episode_id"],
        "sections": ["assessments"],
        "refused_sections": [],
        "basis": ["C1"],
        "override": False,
        "content": {"assessments": []},
        "receipt": "a.b.c",
        "approval_id": approval_id,
    }
    # Islington (a member in good standing, over real mTLS) answers for Hackney; Hackney itself
    # answers with an approval id Camden never received.
    for sender, body in (
        (islington, forged),
        (hackney, {**forged, "approval_id": "00000000-0000-4000-8000-000000000000"}),
    ):
        assert sender.runner is not None
        app = sender.runner.app
        async with app[ENGINE].begin() as connection:
            await app[OUTBOX].enqueue(connection, CAMDEN, "disclosure_answer", body)

    async def refused_twice() -> bool:
        rows = [
            *(await islington.engine_rows(select(outbox))),
            *(await hackney.engine_rows(select(outbox))),
        ]
        return len(rows) == 2 and all(r.last_error == "not_found" for r in rows)

    await eventually(refused_twice)
    status, still = await camden.call("GET", f"/requests/{record['request_id']}")
    assert still["state"] == "awaiting_holder" and still["answer"] is None
    assert await camden.engine_rows(select(register)) == []
    assert await camden.engine_rows(select(received_copies)) == []
    audited = await camden.engine_rows(
        select(audit_entries).where(
            audit_entries.c.action == "federation.message", audit_entries.c.reason == "not_found"
        )
    )
    assert {a.actor for a in audited} == {f"member:{ISLINGTON}", f"member:{HACKNEY}"}

    # The real answer still completes the request.
    status, decided = await _decide(
        hackney, approval_id, decision="approve", lead_contact_id=hackney.lead
    )
    assert status == 200, decided
    answered = await settled(camden, record["request_id"])
    assert answered["state"] == "answered" and answered["answer"]["approval_id"] == approval_id


async def test_a_withdrawal_that_overtakes_its_disclosure_still_marks_it(
    always: dict[str, Node],
) -> None:
    """Messages to one member are retried each on its own back-off, so a withdrawal can arrive
    before the held disclosure's answer (here: the answer dead-lettered while Camden was down,
    retried from the console after the withdrawal went through). The copy must arrive withdrawn."""
    camden, hackney = always[CAMDEN], always[HACKNEY]
    episode = await seed(hackney)
    record, approval_id = await _held(camden, hackney, disclosure(episode))
    await camden.stop()
    status, decided = await _decide(
        hackney, approval_id, decision="approve", lead_contact_id=hackney.lead
    )
    assert status == 200 and decided["state"] == "approved", decided
    status, withdrawn = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200 and withdrawn["changed"] is True
    [answer] = await hackney.engine_rows(select(outbox).where(outbox.c.kind == "disclosure_answer"))
    assert hackney.runner is not None
    async with hackney.runner.app[ENGINE].begin() as connection:
        await connection.execute(
            update(outbox).where(outbox.c.id == answer.id).values(state="dead")
        )

    await camden.start()
    pushed = select(outbox.c.state).where(outbox.c.kind == "consent_withdrawn")

    async def withdrawal_delivered() -> bool:
        return [r.state for r in await hackney.engine_rows(pushed)] == ["delivered"]

    await eventually(withdrawal_delivered, timeout=40)
    assert await camden.engine_rows(select(received_copies)) == []  # nothing to mark yet

    assert await hackney.runner.app[OUTBOX].retry_dead(answer.id)
    late = await settled(camden, record["request_id"])
    assert late["state"] == "answered", late
    [copy] = await camden.engine_rows(select(received_copies))
    assert copy.withdrawn_at is not None  # marked on arrival: the withdrawal came first
    [row] = await camden.engine_rows(select(register).where(register.c.direction == "received"))
    assert row.withdrawn_at is not None
