"""The London protocol end to end between three real nodes on loopback (Camden, Hackney, Islington):
real certificates from the operator's CA, mutual TLS 1.3, RFC 9421 signatures both ways, attestations,
consent decided by the holder, the register on both sides, withdrawal pushed through the outbox,
delivery after a peer was down, and a transfer."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import insert, select, update
from yarl import URL

from gateway.demo import plan_federation
from gateway.federation.custody import sign_step
from gateway.federation.operator import suspend
from gateway.federation.outbox import Message
from gateway.federation.practitioner import INTERRUPTED_AFTER, Decision
from gateway.federation.transfer import answer_due_by
from gateway.federation.transport import client_context, sign_request
from gateway.keys import AUDIT, OUTBOX, REQUESTS, TRANSFERS
from gateway.signing import load_signing_key
from gateway.storage._tables import (
    audit_entries,
    inbox,
    outbox,
    received_copies,
    register,
    transfers,
)
from schemas import london_today

from .nodes import (
    CAMDEN,
    HACKNEY,
    ISLINGTON,
    PRACTITIONER,
    Node,
    ask,
    disclosure,
    eventually,
    existence_check,
    holder_approves,
    login,
    offer_arrives,
    running,
    seed,
    sees_suspended,
)


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path, auto_approve_roles=("Health visitor",))) as nodes:
        yield nodes


async def test_check_verify_found_refused_permitted_withdrawn(federation: dict[str, Node]) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)

    # Existence check: the health visitor's role is auto-approved by Camden's rule.
    record = await ask(camden, existence_check(episode))
    assert record["state"] == "answered", record
    answer = record["answer"]
    assert answer["outcome"] == "found" and answer["episode_ref"] == episode["episode_id"]
    assert "assessments" not in answer and "child" not in answer  # never content

    # Disclosure to an excluded agency (housing): refused on Hackney's side, with the code.
    housing = {
        **PRACTITIONER,
        "id": "camden-ho-3",
        "role": "Housing officer",
        "agency": "Camden housing",
        "agency_type": "housing",
    }
    refused = await ask(
        camden,
        {
            "kind": "disclosure",
            "practitioner": housing,
            "purpose": "early_help",
            "reason": "rehousing",
            "target_authority": HACKNEY,
            "episode_ref": answer["episode_ref"],
            "sections": ["assessments"],
        },
    )
    assert refused["state"] == "refused" and refused["error"] == "consent_excluded"
    [audited] = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.disclosure")
    )
    assert (audited.outcome, audited.reason) == ("refused", "consent_excluded")
    assert json.loads(audited.details)["consent"] == "C1"  # the statement that excludes housing

    # Disclosure to a consented agency (health): permitted, sections filtered, both registers.
    permitted = await ask(
        camden,
        {
            "kind": "disclosure",
            "practitioner": PRACTITIONER,
            "purpose": "early_help",
            "reason": "joining the TAC",
            "target_authority": HACKNEY,
            "episode_ref": answer["episode_ref"],
            "sections": ["assessments", "delivery_plan"],
        },
    )
    assert permitted["state"] == "answered", permitted
    disclosed = permitted["answer"]
    assert set(disclosed["content"]) == {"assessments", "delivery_plan"}
    assert disclosed["basis"] == ["C1"] and disclosed["receipt"].count(".") == 2
    status, theirs = await hackney.call("GET", f"/register?episode={episode['episode_id']}")
    assert [e["direction"] for e in theirs["entries"]] == ["sent"]
    assert theirs["entries"][0]["counterpart"] == CAMDEN
    ours = await camden.engine_rows(select(register))
    assert [(r.direction, r.counterpart) for r in ours] == [("received", HACKNEY)]

    # Consent withdrawn at the holder: pushed through the outbox, Camden's copy marked.
    status, withdrawn = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200 and withdrawn["changed"] is True

    async def marked() -> bool:
        copies = await camden.engine_rows(select(received_copies))
        return len(copies) == 1 and copies[0].withdrawn_at is not None

    await eventually(marked)
    again = await ask(
        camden,
        {
            "kind": "disclosure",
            "practitioner": PRACTITIONER,
            "purpose": "early_help",
            "reason": "review",
            "target_authority": HACKNEY,
            "episode_ref": answer["episode_ref"],
        },
    )
    assert again["state"] == "refused" and again["error"] in {
        "consent_withdrawn",
        "consent_missing",
    }


async def test_a_request_waits_for_a_lead_contact_and_only_a_listed_one_may_approve(
    federation: dict[str, Node],
) -> None:
    camden = federation[CAMDEN]
    teacher = {
        **PRACTITIONER,
        "id": "camden-t-9",
        "role": "Teacher",
        "agency": "A school",
        "agency_type": "education",
    }
    body = {
        "kind": "existence_check",
        "practitioner": teacher,
        "purpose": "early_help",
        "reason": "attendance",
        "target_authority": HACKNEY,
        "child": {"given_names": "Nobody", "family_name": "Known", "date_of_birth": "2015-01-01"},
    }
    letterless = {
        **body,
        "child": {"given_names": "Nobody", "family_name": "--", "date_of_birth": "2015-01-01"},
    }
    status, refused = await camden.call("POST", "/requests", json=letterless)
    assert status == 422 and refused["problems"][0]["location"] == "/child/family_name", refused
    record = await ask(camden, body, approve=False)
    assert record["state"] == "awaiting_verification"
    status, waiting = await camden.call("GET", "/requests")
    assert [r["request_id"] for r in waiting["requests"]] == [record["request_id"]]
    child = waiting["requests"][0]["input"]["child"]  # whom it is about
    assert {k: v for k, v in child.items() if v is not None} == body["child"]
    assert waiting["requests"][0]["input"]["reason"] == "attendance"
    status, refused = await camden.call(
        "POST",
        f"/requests/{record['request_id']}/decision",
        json={"decision": "approve", "lead_contact_id": "hackney-lead-1"},  # not Camden's
    )
    assert status == 403
    status, answered = await camden.call(
        "POST",
        f"/requests/{record['request_id']}/decision",
        json={"decision": "approve", "lead_contact_id": camden.lead},
    )
    assert answered["state"] == "answered" and answered["answer"]["outcome"] == "not_found"


async def test_a_request_cut_off_mid_send_fails_and_is_not_sent_twice(
    federation: dict[str, Node],
) -> None:
    """A stop between the approval's commit and the call leaves a request `approved` with nobody
    to send it: the housekeeping pass fails it as `interrupted` (once, audited), never re-sends."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    body = existence_check(episode, practitioner={**PRACTITIONER, "role": "Teacher"})
    record = await ask(camden, body, approve=False)
    assert record["state"] == "awaiting_verification", record
    assert camden.runner is not None
    requests = camden.runner.app[REQUESTS]
    decision = Decision(decision="approve", lead_contact_id=camden.lead, note="checked")
    # The decision as it is committed, without the send that follows it (the node "stopped").
    stuck, state = await requests._decide(
        record["request_id"], decision, "test", "client:case-system"
    )
    assert state == "approved"

    assert await requests.fail_interrupted() == []  # just approved: perhaps being sent now
    later = dt.datetime.now(dt.UTC) + INTERRUPTED_AFTER + dt.timedelta(seconds=1)
    assert await requests.fail_interrupted(later) == [record["request_id"]]
    assert await requests.fail_interrupted(later) == []  # failed now, it is not looked at again
    status, failed = await camden.call("GET", f"/requests/{record['request_id']}")
    assert (failed["state"], failed["error"]) == ("failed", "interrupted"), failed
    [audited] = await camden.engine_rows(
        select(audit_entries).where(
            audit_entries.c.action == "request.send",
            audit_entries.c.subject == failed["request_id"],
        )
    )
    assert (audited.outcome, audited.reason, audited.actor) == ("failed", "interrupted", "node")
    asked = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.existence_check")
    )
    assert asked == []  # never sent

    # A send that outlived the wait and answers after all: the failure stands, nothing is kept.
    late = await requests._send(stuck, "test")
    assert (late.state, late.document["error"]) == ("failed", "interrupted")
    sends = await camden.engine_rows(
        select(audit_entries.c.outcome).where(
            audit_entries.c.action == "request.send",
            audit_entries.c.subject == failed["request_id"],
        )
    )
    assert [s.outcome for s in sends] == ["failed"]


async def test_public_interest_override_needs_a_second_lead_contact(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    police = {
        **PRACTITIONER,
        "id": "camden-pc-1",
        "role": "Police officer",
        "agency": "Met",
        "agency_type": "police",
    }
    body = {
        "kind": "disclosure",
        "practitioner": police,
        "purpose": "safeguarding",
        "reason": "immediate risk of significant harm",
        "target_authority": HACKNEY,
        "episode_ref": episode["episode_id"],
        "sections": ["child"],
        "override": {
            "justification": "Safeguarding concern reported tonight; consent cannot be sought safely.",
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat(),
        },
    }
    # The time limit is a real one: with its offset, in the future, at most 30 days away.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    for limit in (
        soon.replace(tzinfo=None),
        soon - dt.timedelta(days=3),
        soon + dt.timedelta(days=29),
    ):
        override = {**body["override"], "expires_at": limit.isoformat()}
        status, refused = await camden.call(
            "POST", "/requests", json={**body, "override": override}
        )
        assert status == 422, refused
        assert refused["problems"][0]["location"] == "/override/expires_at", refused
    record = await ask(camden, body)  # first approval: camden-lead-1
    assert record["state"] == "awaiting_second_approval"
    path = f"/requests/{record['request_id']}/decision"
    status, _ = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": camden.lead}
    )
    assert status == 403  # the same person cannot be the second approver
    # A lead contact raising a request under another spelling of their id cannot verify it.
    own = {**body, "practitioner": {**police, "id": camden.lead.upper()}}
    del own["override"]
    mine = await ask(camden, own, approve=False)
    status, refused = await camden.call(
        "POST",
        f"/requests/{mine['request_id']}/decision",
        json={"decision": "approve", "lead_contact_id": camden.lead},
    )
    assert (status, refused["error"]) == (403, "self_approval"), refused
    [audited] = await camden.engine_rows(
        select(audit_entries).where(
            audit_entries.c.action == "request.decide",
            audit_entries.c.subject == mine["request_id"],
        )
    )
    assert (audited.outcome, audited.reason) == ("refused", "self_approval")  # refusals audited
    second = camden.plan.borough.lead_contacts()[1]
    # Nor can the system that passed on the first approval pass on the second: it could name
    # any lead contact, and two approvals would not mean two people.
    status, refused = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    assert (status, refused["error"]) == (403, "self_approval"), refused
    raising_system = camden.token
    await login(camden, name="second-lead-system")  # the second lead contact's own system
    status, done = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    camden.token = raising_system  # only the system that raised it reads the answer's content
    # Sharing without consent is the holder's judgement too (003): its lead contact approves.
    assert done["state"] == "awaiting_holder", done
    done = await holder_approves(hackney, camden, done["request_id"])
    assert done["state"] == "answered", done
    assert done["answer"]["override"] is True and set(done["answer"]["content"]) == {"child"}
    status, theirs = await hackney.call("GET", f"/register?episode={episode['episode_id']}")
    assert theirs["entries"][0]["override"] is True
    # Every approver; Camden's register read per practitioner (DESIGN 3.8).
    assert (
        theirs["entries"][0]["approved_by"],
        theirs["entries"][0]["second_approved_by"],
        theirs["entries"][0]["holder_approved_by"],
    ) == (camden.lead, second, hackney.lead)
    status, ours = await camden.call("GET", "/register?practitioner=camden-pc-1")
    assert status == 200, ours
    assert [
        (e["direction"], e["episode_id"], e["approved_by"], e["second_approved_by"])
        for e in ours["entries"]
    ] == [("received", episode["episode_id"], camden.lead, second)]
    status, flagged = await hackney.call("GET", f"/episodes/{episode['episode_id']}")
    assert flagged["extensions"]["caf-exchange"]["overrides"][0]["approved_by"] == second


async def test_a_request_is_read_only_by_the_system_that_raised_it(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    assert record["state"] == "answered", record  # its answer holds disclosed content
    path = f"/requests/{record['request_id']}"
    await login(camden, scopes=["requests:write"], name="another-case-system")
    status, other = await camden.call("GET", path)
    assert status == 404, other
    status, other = await camden.call("GET", "/requests/not-a-request-id")
    assert status == 404, other


async def test_a_double_submit_raises_one_request(federation: dict[str, Node]) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    body = existence_check(episode)  # auto-approved by role, so it is sent at once
    key = {"Idempotency-Key": "case-42-check"}
    status, first = await camden.call("POST", "/requests", json=body, headers=key)
    assert status == 201 and first["state"] == "answered", first
    status, again = await camden.call("POST", "/requests", json=body, headers=key)
    assert status == 201 and again == first  # the first request, as it stands
    status, other = await camden.call(
        "POST", "/requests", json={**body, "reason": "another reason"}, headers=key
    )
    assert (status, other["error"]) == (409, "idempotency_key_reused"), other
    checks = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.existence_check")
    )
    assert len(checks) == 1  # Hackney was asked once


async def test_messages_wait_for_a_peer_that_is_down_and_arrive_once(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    record = await ask(
        camden,
        {
            "kind": "disclosure",
            "practitioner": PRACTITIONER,
            "purpose": "early_help",
            "reason": "joining the TAC",
            "target_authority": HACKNEY,
            "episode_ref": episode["episode_id"],
        },
    )
    assert record["state"] == "answered"
    await camden.stop()  # Camden goes down; Hackney withdraws consent meanwhile
    status, _ = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200

    async def retried() -> bool:
        rows = await hackney.engine_rows(select(outbox))
        return len(rows) == 1 and rows[0].attempts >= 1 and rows[0].state == "pending"

    await eventually(retried)
    await camden.start()

    async def delivered() -> bool:
        rows = await hackney.engine_rows(select(outbox))
        return bool(rows[0].state == "delivered")

    await eventually(delivered, timeout=40)
    copies = await camden.engine_rows(select(received_copies))
    assert len(copies) == 1 and copies[0].withdrawn_at is not None


async def _offer(holder: Node, receiver: Node, episode_id: str) -> str:
    """Offer the episode; the offer's id once the receiver lists it."""
    status, offer = await holder.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": receiver.plan.borough.gss, "lead_contact_id": holder.lead},
    )
    assert status == 201, offer
    await offer_arrives(receiver, offer["offer_id"])
    return str(offer["offer_id"])


async def _stray_offer(
    member: Node, to: Node, episode_id: str, custody: list[str] | None = None
) -> str:
    """An offer `member` sends of an episode it does not hold (a faulty member), as its outbox
    would, with the custody steps it shows; its id once `to` lists it."""
    assert member.runner is not None
    offer_id, now = str(uuid.uuid4()), dt.datetime.now(dt.UTC)
    async with member.runner.app[AUDIT].transaction() as connection:
        await connection.execute(  # its own record of the offer, which an answer will close
            insert(transfers).values(
                id=offer_id,
                direction="out",
                episode_id=episode_id,
                counterpart=to.plan.borough.gss,
                state="offered",
                created_at=now,
                updated_at=now,
            )
        )
        await member.runner.app[OUTBOX].enqueue(
            connection,
            to.plan.borough.gss,
            "transfer_offer",
            {
                "offer_id": offer_id,
                "episode_ref": episode_id,
                "state": "open",
                "local_ref": None,
                "custody": custody or [],
            },
        )
    await offer_arrives(to, offer_id)
    return offer_id


def _acceptance(receiver: Node) -> dict[str, Any]:
    """An acceptance by `receiver`'s lead contact, naming "Lead in <borough>"."""
    lead = {
        "name": f"Lead in {receiver.plan.borough.name}",
        "organisation": "Family Hub",
        "agency_type": "early_help",
        "authority": receiver.plan.borough.gss,
    }
    return {"lead_contact_id": receiver.lead, "lead_professional": lead}


async def _accept(receiver: Node, offer_id: str, episode_id: str) -> None:
    """Accept; wait until the receiver holds the episode."""
    status, accepted = await receiver.call(
        "POST", f"/transfers/{offer_id}/accept", json=_acceptance(receiver)
    )
    assert status == 200, accepted

    async def held() -> bool:
        status, copy = await receiver.call("GET", f"/episodes/{episode_id}")
        return status == 200 and copy["state"] != "transferred"

    await eventually(held)


async def test_transfer_offer_accept_commit(federation: dict[str, Node]) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)
    status, copy = await islington.call("GET", f"/episodes/{episode_id}")
    assert copy["home_authority"] == ISLINGTON
    assert copy["lead_professional"]["name"] == "Lead in Islington"
    assert copy["assessments"] == episode["assessments"]  # the whole episode, with its history
    status, old = await hackney.call("GET", f"/episodes/{episode_id}")
    assert old["state"] == "transferred" and old["lead_professional"] is not None
    review = {
        "event": {"type": "review", "review": {"held_on": "2026-06-01", "tac_meeting_held": True}}
    }
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/events", json=review)
    assert status == 409  # the old copy is read-only


async def test_one_open_offer_per_episode_and_a_child_who_moves_back(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    first = await _offer(hackney, islington, episode_id)
    # A second offer while the first is open: refused, the episode cannot go to two authorities.
    status, second = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": CAMDEN, "lead_contact_id": hackney.lead},
    )
    assert status == 409, second
    status, ours = await hackney.call("GET", "/transfers?direction=out")
    assert [t["to"] for t in ours["transfers"]] == [ISLINGTON]

    # Hackney -> Islington completes the open offer; then the child moves back to Hackney, whose
    # read-only copy takes the episode again (before: refused as a duplicate id, and lost).
    await _accept(islington, first, episode_id)
    await _accept(hackney, await _offer(islington, hackney, episode_id), episode_id)
    status, back = await hackney.call("GET", f"/episodes/{episode_id}")
    assert back["home_authority"] == HACKNEY and back["state"] != "transferred"
    assert back["lead_professional"]["name"] == "Lead in Hackney"
    status, left = await islington.call("GET", f"/episodes/{episode_id}")
    assert left["state"] == "transferred"
    steps = await hackney.engine_rows(
        select(audit_entries.c.action, audit_entries.c.subject)
        .where(audit_entries.c.action.like("transfer.%"))
        .order_by(audit_entries.c.sequence)
    )
    assert [tuple(s) for s in steps] == [
        ("transfer.offer", episode_id),
        ("transfer.offer", episode_id),  # the refused second offer
        ("transfer.commit", episode_id),
        ("transfer.accept", episode_id),
        ("transfer.receive", episode_id),
    ]


async def _listed(node: Node, offer_id: str, direction: str = "in") -> dict[str, Any]:
    status, listed = await node.call("GET", f"/transfers?direction={direction}")
    assert status == 200, listed
    [offer] = [t for t in listed["transfers"] if t["offer_id"] == offer_id]
    return dict(offer)


async def _closed(node: Node, offer_id: str, direction: str, state: str) -> dict[str, Any]:
    """The offer once `node` lists it in `state` (the other side's message has arrived)."""

    async def arrived() -> bool:
        return bool((await _listed(node, offer_id, direction))["state"] == state)

    await eventually(arrived)
    return await _listed(node, offer_id, direction)


async def test_an_offer_is_withdrawn_or_declined_and_the_episode_offered_again(
    federation: dict[str, Node],
) -> None:
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    close = {"lead_contact_id": hackney.lead, "reason": "family_stayed"}

    # The holder withdraws an unanswered offer: both sides list it withdrawn, with the reason.
    first = await _offer(hackney, islington, episode_id)
    status, denied = await hackney.call(
        "POST", f"/transfers/{first}/withdraw", json={**close, "lead_contact_id": "not-a-lead"}
    )
    assert status == 403, denied
    status, closed = await hackney.call("POST", f"/transfers/{first}/withdraw", json=close)
    assert (status, closed["state"]) == (200, "withdrawn"), closed
    theirs = await _closed(islington, first, "in", "withdrawn")
    assert theirs["reason"] == "family_stayed"
    status, late = await islington.call(
        "POST", f"/transfers/{first}/accept", json=_acceptance(islington)
    )
    assert status == 409, late
    status, again = await hackney.call("POST", f"/transfers/{first}/withdraw", json=close)
    assert status == 409, again

    # An acceptance that crossed the withdrawal in flight moves nothing.
    assert hackney.runner is not None
    workflow, audit = hackney.runner.app[TRANSFERS], hackney.runner.app[AUDIT]
    body = {"offer_id": first, "lead_professional": _acceptance(islington)["lead_professional"]}
    crossed = Message(str(uuid.uuid4()), "transfer_accept", body)
    async with audit.transaction() as connection:
        await workflow.apply(connection, ISLINGTON, crossed)
    status, still = await hackney.call("GET", f"/episodes/{episode_id}")
    assert (still["state"], still["home_authority"]) == (
        episode["state"],
        episode["home_authority"],
    )

    # The episode can be offered again; this receiver declines it, and it can be offered again.
    second = await _offer(hackney, camden, episode_id)
    decline = {"lead_contact_id": camden.lead, "reason": "not_resident"}
    status, declined = await camden.call("POST", f"/transfers/{second}/decline", json=decline)
    assert (status, declined["state"]) == (200, "declined"), declined
    ours = await _closed(hackney, second, "out", "declined")
    assert ours["reason"] == "not_resident"
    third = await _offer(hackney, islington, episode_id)
    status, listed = await hackney.call("GET", "/transfers?direction=out&state=open")
    assert [t["offer_id"] for t in listed["transfers"]] == [third]
    await _accept(islington, third, episode_id)

    # Listed by state, or the newest few, oldest first.
    for query, expected in (
        ("", [first, second, third]),
        ("&state=withdrawn", [first]),
        ("&state=open", []),
        ("&limit=2", [second, third]),
        ("&state=declined&limit=1", [second]),
    ):
        status, listed = await hackney.call("GET", f"/transfers?direction=out{query}")
        assert status == 200, listed
        assert [t["offer_id"] for t in listed["transfers"]] == expected, query
    for query in ("&state=gone", "&limit=0", "&limit=1001", "&limit=x"):
        status, refused = await hackney.call("GET", f"/transfers?direction=out{query}")
        assert status == 400, (query, refused)

    steps = await hackney.engine_rows(
        select(audit_entries.c.action, audit_entries.c.outcome, audit_entries.c.reason)
        .where(audit_entries.c.action.like("transfer.%"))
        .order_by(audit_entries.c.sequence)
    )
    assert [tuple(s) for s in steps] == [
        ("transfer.offer", "success", None),
        ("transfer.withdraw", "refused", "insufficient_scope"),
        ("transfer.withdraw", "success", "family_stayed"),
        ("transfer.withdraw", "refused", "conflict"),
        ("transfer.commit", "refused", "transfer.withdrawn"),
        ("transfer.offer", "success", None),
        ("transfer.decline", "success", "not_resident"),
        ("transfer.offer", "success", None),
        ("transfer.commit", "success", None),
    ]


async def test_no_other_member_can_overwrite_a_transferred_copy(
    federation: dict[str, Node],
) -> None:
    """Hackney moved the episode to Islington; Camden, which never held it, offers it back to
    Hackney: declined at once (before: once accepted, Camden's copy replaced Hackney's)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)
    forged = await _stray_offer(camden, hackney, episode_id)
    offer = await _listed(hackney, forged)
    assert (offer["state"], offer["reason"]) == ("declined", "transfer.moved_elsewhere")
    # Camden is told only that it was refused, not where the child's episode went.
    told = await _closed(camden, forged, "out", "declined")
    assert told["reason"] == "transfer.refused"
    status, refused = await hackney.call(
        "POST", f"/transfers/{forged}/accept", json=_acceptance(hackney)
    )
    assert status == 409, refused
    [audited] = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "transfer.decline")
    )
    assert (audited.outcome, audited.actor) == ("refused", "node")
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert (copy["state"], copy["home_authority"]) == ("transferred", episode["home_authority"])

    # Offered the episode it holds, a member declines too: it is already its own.
    again = await _stray_offer(camden, islington, episode_id)
    offer = await _listed(islington, again)
    assert (offer["state"], offer["reason"]) == ("declined", "transfer.already_held")


def _key_file(node: Node) -> Path:
    assert node.plan.settings.signing_key_file is not None
    return node.plan.settings.signing_key_file


async def _custody(node: Node, offer_id: str) -> list[tuple[str, str]] | None:
    """The custody steps `node` keeps for an offer made to it, as (from, to)."""
    [row] = await node.engine_rows(
        select(transfers.c.custody).where(transfers.c.id == offer_id, transfers.c.direction == "in")
    )
    if row.custody is None:
        return None
    claims = [json.loads(jws.extract_compact(s.encode()).payload) for s in json.loads(row.custody)]
    return [(c["from"], c["to"]) for c in claims]


async def test_a_child_who_moves_on_comes_back_from_whoever_holds_the_episode_now(
    federation: dict[str, Node],
) -> None:
    """Hackney -> Islington -> Camden -> Hackney: Camden's offer shows Islington's signed custody
    step, so Hackney takes its episode back from Camden (before: declined as moved elsewhere, and
    the episode could never come home). A step Camden signs in Islington's name moves nothing."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)

    # Camden's own key under Islington's key id: the step names Islington's key, which refuses it.
    theirs = load_signing_key(_key_file(islington)).kid
    assert theirs is not None
    impostor = {**load_signing_key(_key_file(camden)).as_dict(private=True), "kid": theirs}
    forged = sign_step(
        OKPKey.import_key(impostor),
        episode_ref=episode_id,
        sender=ISLINGTON,
        receiver=CAMDEN,
        offer_id=str(uuid.uuid4()),
        committed_at=dt.datetime.now(dt.UTC),
    )
    stray = await _stray_offer(camden, hackney, episode_id, custody=[forged])
    offer = await _listed(hackney, stray)
    assert (offer["state"], offer["reason"]) == ("declined", "transfer.custody_unverified")
    told = await _closed(camden, stray, "out", "declined")
    assert told["reason"] == "transfer.refused"

    onward = await _offer(islington, camden, episode_id)
    assert await _custody(camden, onward) is None  # Camden never held it: it is shown no steps
    await _accept(camden, onward, episode_id)
    back = await _offer(camden, hackney, episode_id)
    assert await _custody(hackney, back) == [(HACKNEY, ISLINGTON), (ISLINGTON, CAMDEN)]
    assert (await _listed(hackney, back))["state"] == "offered"
    await _accept(hackney, back, episode_id)
    status, home = await hackney.call("GET", f"/episodes/{episode_id}")
    assert status == 200, home
    assert (home["home_authority"], home["state"]) == (HACKNEY, episode["state"])
    assert home["lead_professional"]["name"] == "Lead in Hackney"
    assert home["assessments"] == episode["assessments"]
    for member in (islington, camden):
        status, left = await member.call("GET", f"/episodes/{episode_id}")
        assert (status, left["state"]) == (200, "transferred")
    # The steps Hackney keeps vouch for its copy in turn, when the child moves on again.
    assert await _custody(hackney, back) == [
        (HACKNEY, ISLINGTON),
        (ISLINGTON, CAMDEN),
        (CAMDEN, HACKNEY),
    ]


async def test_an_episode_first_moved_without_custody_steps_comes_back_only_as_before(
    federation: dict[str, Node],
) -> None:
    """A copy received before migration 0011 (or from a node without it) has no steps: its holder
    signs only its own step on, which does not start at the first holder's move, so the first
    holder takes the episode back only from the member it moved it to, as before."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    first = await _offer(hackney, islington, episode_id)
    await _accept(islington, first, episode_id)
    assert islington.runner is not None
    async with islington.runner.app[AUDIT].transaction() as connection:
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == first, transfers.c.direction == "in")
            .values(custody=None)
        )
    onward = await _offer(islington, camden, episode_id)
    await _accept(camden, onward, episode_id)
    assert await _custody(camden, onward) == [(ISLINGTON, CAMDEN)]
    back = await _offer(camden, hackney, episode_id)
    assert await _custody(hackney, back) is None
    offer = await _listed(hackney, back)
    assert (offer["state"], offer["reason"]) == ("declined", "transfer.moved_elsewhere")


async def _escalated(receiver: Node, offer_id: str) -> None:
    """Past the offer's due date on `receiver`'s clock: the escalation has marked it."""
    assert receiver.runner is not None
    due = dt.date.fromisoformat((await _listed(receiver, offer_id))["due_by"])
    assert offer_id in await receiver.runner.app[TRANSFERS].escalate(due + dt.timedelta(days=1))


async def test_an_accepted_offer_whose_episode_never_comes_is_released_for_the_genuine_one(
    federation: dict[str, Node],
) -> None:
    """Islington accepted Camden's offer of an episode Camden does not hold, so it could accept no
    other offer of it, Hackney's genuine one included (before: for good). Past its due date,
    Islington releases it; Camden's side closes, and Hackney's offer is accepted and committed."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    stray = await _stray_offer(camden, islington, episode_id)
    status, accepted = await islington.call(
        "POST", f"/transfers/{stray}/accept", json=_acceptance(islington)
    )
    assert status == 200, accepted
    genuine = await _offer(hackney, islington, episode_id)
    status, blocked = await islington.call(
        "POST", f"/transfers/{genuine}/accept", json=_acceptance(islington)
    )
    assert status == 409, blocked

    release = {"lead_contact_id": islington.lead, "reason": "wrong_authority"}
    status, early = await islington.call("POST", f"/transfers/{stray}/decline", json=release)
    assert status == 409, early  # not before its due date: the episode may be on its way
    await _escalated(islington, stray)
    status, released = await islington.call("POST", f"/transfers/{stray}/decline", json=release)
    assert (status, released["state"]) == (200, "released"), released
    assert (await _closed(camden, stray, "out", "declined"))["reason"] == "wrong_authority"
    assert islington.runner is not None  # released: no longer escalated, nor alerted on
    later = dt.date.today() + dt.timedelta(days=60)
    assert stray not in await islington.runner.app[TRANSFERS].escalate(later)

    await _accept(islington, genuine, episode_id)
    status, copy = await islington.call("GET", f"/episodes/{episode_id}")
    assert (copy["home_authority"], copy["lead_professional"]["name"]) == (
        ISLINGTON,
        "Lead in Islington",
    )
    assert (await _listed(islington, stray))["state"] == "released"
    steps = await islington.engine_rows(
        select(audit_entries.c.action, audit_entries.c.outcome, audit_entries.c.reason)
        .where(audit_entries.c.action.in_(("transfer.decline", "transfer.release")))
        .order_by(audit_entries.c.sequence)
    )
    assert [tuple(s) for s in steps] == [
        ("transfer.release", "refused", "conflict"),  # too early: audited as what it was
        ("transfer.release", "success", "wrong_authority"),
    ]


async def _released_while_the_holder_is_down(
    hackney: Node, islington: Node, episode_id: str
) -> str:
    """Hackney offers the episode to Islington and goes down; Islington accepts and, once the
    episode is past its due date (counted from the acceptance), releases the offer. The offer."""
    offer_id = await _offer(hackney, islington, episode_id)
    await _escalated(islington, offer_id)  # left unanswered too long first
    await hackney.stop()
    status, accepted = await islington.call(
        "POST", f"/transfers/{offer_id}/accept", json=_acceptance(islington)
    )
    assert status == 200, accepted
    release = {"lead_contact_id": islington.lead, "reason": "unspecified"}
    status, early = await islington.call("POST", f"/transfers/{offer_id}/decline", json=release)
    assert status == 409, early  # accepting started the episode's own due date
    [refused] = await islington.engine_rows(
        select(audit_entries.c.outcome).where(audit_entries.c.action == "transfer.release")
    )
    assert refused.outcome == "refused"  # audited as what it was, not as a decline
    await _escalated(islington, offer_id)
    status, released = await islington.call("POST", f"/transfers/{offer_id}/decline", json=release)
    assert (status, released["state"]) == (200, "released"), released
    status, again = await islington.call("POST", f"/transfers/{offer_id}/decline", json=release)
    assert status == 409, again
    return offer_id


async def _send_now(node: Node, kind: str | None = None, state: str = "pending") -> None:
    """`node`'s messages (of `kind`) due now, in `state` (`dead`: as if dead-lettered)."""
    assert node.runner is not None
    chosen = update(outbox).where(outbox.c.state == "pending")
    if kind is not None:
        chosen = chosen.where(outbox.c.kind == kind)
    async with node.runner.app[AUDIT].transaction() as connection:
        await connection.execute(
            chosen.values(state=state, next_attempt_at=dt.datetime.now(dt.UTC))
        )


async def test_a_commit_on_its_way_when_an_offer_is_released_still_lands(
    federation: dict[str, Node],
) -> None:
    """Hackney comes back, takes the acceptance and gives its copy up before the release reaches
    it: the commit still lands at Islington, so the episode is never left with nobody holding it."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    offer_id = await _released_while_the_holder_is_down(hackney, islington, episode_id)
    await hackney.start()
    await _send_now(islington)

    async def landed() -> bool:
        status, copy = await islington.call("GET", f"/episodes/{episode_id}")
        return status == 200 and copy["state"] != "transferred"

    await eventually(landed, timeout=30)
    assert (await _listed(islington, offer_id))["state"] == "committed"
    [received] = await islington.engine_rows(
        select(audit_entries.c.details).where(audit_entries.c.action == "transfer.receive")
    )
    assert json.loads(received.details)["after"] == "released"
    status, old = await hackney.call("GET", f"/episodes/{episode_id}")
    assert old["state"] == "transferred"
    # Hackney's side was committed when the release arrived: refused there, and acknowledged.
    assert (await _listed(hackney, offer_id, "out"))["state"] == "committed"


async def test_an_acceptance_held_up_behind_its_release_moves_nothing(
    federation: dict[str, Node],
) -> None:
    """Islington's acceptance was dead-lettered while Hackney was down, and its release reaches
    Hackney first: Hackney's side is declined, and the acceptance, retried later, moves nothing
    (before: refused for ever into a dead letter). Hackney keeps the episode."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    offer_id = await _released_while_the_holder_is_down(hackney, islington, episode_id)
    await _send_now(islington, "transfer_accept", state="dead")
    await hackney.start()
    await _send_now(islington, "transfer_decline")
    assert (await _closed(hackney, offer_id, "out", "declined"))["reason"] == "unspecified"

    assert islington.runner is not None  # retried, as the console's Retry does
    [dead] = await islington.engine_rows(select(outbox.c.id).where(outbox.c.state == "dead"))
    assert await islington.runner.app[OUTBOX].retry_dead(dead.id)

    async def acknowledged() -> bool:
        rows = await islington.engine_rows(select(outbox.c.kind, outbox.c.state))
        return all(row.state == "delivered" for row in rows)

    await eventually(acknowledged, timeout=30)
    [refused] = await hackney.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.reason).where(
            audit_entries.c.action == "transfer.commit"
        )
    )
    assert tuple(refused) == ("refused", "transfer.declined")
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert (status, copy["state"]) == (200, episode["state"])
    assert (await _listed(islington, offer_id))["state"] == "released"


async def test_a_receiver_accepts_one_offer_of_an_episode(federation: dict[str, Node]) -> None:
    """Hackney offers its episode to Islington, and Camden (wrongly) offers the same episode: once
    Islington accepts one, the other is refused, so Hackney never gives its copy up for an episode
    Islington could not then take (before: Hackney's copy went read-only and nobody held it)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    genuine = await _offer(hackney, islington, episode_id)
    wrong = await _stray_offer(camden, islington, episode_id)
    status, first = await islington.call(
        "POST", f"/transfers/{wrong}/accept", json=_acceptance(islington)
    )
    assert status == 200, first
    status, second = await islington.call(
        "POST", f"/transfers/{genuine}/accept", json=_acceptance(islington)
    )
    assert status == 409, second
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert copy["state"] == episode["state"]  # still Hackney's, open
    assert (await _listed(hackney, genuine, "out"))["state"] == "offered"


async def test_an_unanswered_offer_escalates_on_both_sides(federation: dict[str, Node]) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    offer_id = await _offer(hackney, islington, episode["episode_id"])
    status, ours = await hackney.call("GET", "/transfers?direction=out")
    [made] = ours["transfers"]
    assert made["to"] == ISLINGTON and made["escalated_at"] is None
    due = dt.date.fromisoformat(made["due_by"])
    assert answer_due_by(dt.datetime.now(dt.UTC), 5) == due  # five working days from today
    status, bad = await hackney.call("GET", "/transfers?direction=sideways")
    assert status == 400, bad

    for node in (hackney, islington):
        assert node.runner is not None
        workflow = node.runner.app[TRANSFERS]
        assert await workflow.escalate(due) == []  # on its due day it still waits
        assert await workflow.escalate(due + dt.timedelta(days=1)) == [offer_id]
        assert await workflow.escalate(due + dt.timedelta(days=2)) == []  # once only
        [entry] = await node.engine_rows(
            select(audit_entries).where(audit_entries.c.action == "transfer.escalate")
        )
        assert (entry.reason, entry.subject) == ("transfer.unanswered", episode["episode_id"])
    status, theirs = await islington.call("GET", "/transfers")
    assert theirs["transfers"][0]["escalated_at"] is not None

    # Escalation decides nothing: the offer can still be accepted, and the episode moves.
    await _accept(islington, offer_id, episode["episode_id"])


def test_working_days_skip_weekends_and_bank_holidays() -> None:
    christmas_eve_eve = dt.datetime(2026, 12, 23, 10, 0, tzinfo=dt.UTC)
    # 24 Dec, then 29, 30, 31 Dec (25 Dec and the 28th for Boxing Day are bank holidays), 4 Jan.
    assert answer_due_by(christmas_eve_eve, 5) == dt.date(2027, 1, 4)
    # Offered at 23:30 UTC on 30 June: already 1 July in London, a Thursday.
    assert answer_due_by(dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC), 1) == dt.date(2026, 7, 2)


async def test_a_suspended_member_is_refused(federation: dict[str, Node], tmp_path: Path) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    suspend(tmp_path / "federation", CAMDEN)
    plan_federation(tmp_path)  # re-sign the metadata: Camden suspended

    body = existence_check(episode, reason="again")

    async def refused() -> bool:
        # Camden's own node stops acting for a suspended member (its lead contacts no longer count);
        # Hackney refuses its signed traffic (transport tests cover that refusal code by code).
        status, record = await camden.call("POST", "/requests", json=body)
        return status == 403 or record.get("state") not in ("answered", None)

    await eventually(refused)
    # Nor is an episode offered to it: it could never answer (before: a 500, unaudited).
    await sees_suspended(hackney, CAMDEN)
    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode['episode_id']}/transfer",
        json={"to": CAMDEN, "lead_contact_id": hackney.lead},
    )
    assert (status, offer["error"]) == (403, "member_suspended"), offer
    [audited] = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "transfer.offer")
    )
    assert (audited.outcome, audited.reason) == ("refused", "member_suspended")
    status, log = await hackney.call("GET", "/audit/verify")
    assert log["ok"] is True


async def test_a_request_replayed_to_a_restarted_node_is_refused(
    federation: dict[str, Node],
) -> None:
    """A SQLite node keeps its nonces in its database: restarting it does not reopen the window in
    which a captured request could be sent again."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    mine, theirs = camden.plan.settings, hackney.plan.settings
    assert mine.signing_key_file and mine.tls_cert_file and mine.tls_key_file and mine.ca_file
    key = load_signing_key(mine.signing_key_file)
    child = {"given_names": "Ada", "family_name": "Example", "date_of_birth": "2015-01-01"}
    body = json.dumps({"match": child}).encode()
    parts = sign_request(
        "POST",
        f"{theirs.federation_public_url}/federation/v1/existence-checks",
        body,
        sender=CAMDEN,
        recipient=HACKNEY,
        key=key,
        keyid=str(key.kid),
        now=dt.datetime.now(dt.UTC),
        headers={"Content-Type": "application/json"},
    )
    context = client_context(mine.tls_cert_file, mine.tls_key_file, mine.ca_file)

    async def send() -> tuple[int, Any]:
        connector = aiohttp.TCPConnector(ssl=context)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(URL(parts.url, encoded=True), data=body, headers=parts.headers) as reply,
        ):
            return reply.status, await reply.json()

    status, first = await send()  # signed, but no attestation: refused for that, its nonce kept
    assert (status, first["error"]) == (403, "attestation_invalid"), first
    assert (await send())[1]["error"] == "replayed_request"
    await hackney.stop()
    await hackney.start()
    status, again = await send()
    assert (status, again["error"]) == (403, "replayed_request"), again
    # Refused before it was verified, each replay is audited all the same, with its code.
    refused = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.request")
    )
    assert [(r.actor, r.outcome, r.reason) for r in refused] == [
        (f"member:{CAMDEN}", "refused", "replayed_request")
    ] * 2


async def test_a_new_tac_member_is_announced_to_their_authority(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    member = {
        "name": "A Youth Worker",
        "organisation": "Islington Youth Service",
        "agency_type": "early_help",
        "authority": ISLINGTON,
    }
    status, _ = await hackney.call(
        "POST",
        f"/episodes/{episode['episode_id']}/events",
        json={"event": {"type": "tac_member_added", "member": member}},
    )
    assert status == 200

    async def told() -> bool:
        rows = await islington.engine_rows(select(inbox))
        return [r.sender for r in rows] == [HACKNEY]

    await eventually(told)
    # Islington's case system reads it: who joined which episode, and from whom.
    status, listed = await islington.call("GET", "/notifications")
    assert status == 200, listed
    (note,) = listed["notifications"]
    assert note["kind"] == "tac_notification" and note["from"] == HACKNEY
    assert note["episode_ref"] == episode["episode_id"]
    assert {k: note["practitioner"][k] for k in member} == member
    since = {"since": note["received_at"]}
    status, later = await islington.call("GET", "/notifications", params=since)
    assert status == 200 and later["notifications"] == []
    an_hour_east = dt.datetime.fromisoformat(note["received_at"]).astimezone(
        dt.timezone(dt.timedelta(hours=1))
    )
    status, later = await islington.call(
        "GET", "/notifications", params={"since": an_hour_east.isoformat()}
    )
    assert status == 200 and later["notifications"] == []  # the same moment, another offset
    status, _ = await islington.call("GET", "/notifications?since=yesterday")
    assert status == 400
    status, nothing = await hackney.call("GET", "/notifications")  # the holder was told nothing
    assert status == 200 and nothing["notifications"] == []


async def test_a_trace_is_carried_from_the_home_node_to_the_holder(
    federation: dict[str, Node], caplog: pytest.LogCaptureFixture
) -> None:
    """DESIGN 4: the W3C `traceparent` a borough system sends with a request (here auto-approved
    and sent at once) is logged on the home node and carried to the holder, whose log line for the
    federation call names the same trace."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    caplog.set_level("INFO", logger="cafx.http")
    status, record = await camden.call(
        "POST",
        "/requests",
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
        json=existence_check(episode),
    )
    assert status == 201 and record["answer"]["outcome"] == "found", record
    routes = {
        (getattr(r, "route", None), getattr(r, "trace_id", None))
        for r in caplog.records
        if r.name == "cafx.http"
    }
    assert ("/api/v1/requests", trace) in routes
    assert any(route and "existence" in route and t == trace for route, t in routes), routes
    # A malformed traceparent starts a trace of its own.
    caplog.clear()
    status, _ = await camden.call("GET", "/requests", headers={"traceparent": "00-zz-01"})
    (line,) = [getattr(r, "trace_id", "") for r in caplog.records if r.name == "cafx.http"]
    assert status == 200 and len(line) == 32 and line != trace
    # So does a trace id of digits alone: it could be a date of birth and an NHS number.
    caplog.clear()
    digits = "20150601000000000000009434765919"
    parent = {"traceparent": f"00-{digits}-00f067aa0ba902b7-01"}
    status, _ = await camden.call("GET", "/requests", headers=parent)
    (line,) = [getattr(r, "trace_id", "") for r in caplog.records if r.name == "cafx.http"]
    assert status == 200 and len(line) == 32 and line != digits


async def test_a_review_and_a_closure_are_announced_to_the_team(
    federation: dict[str, Node],
) -> None:
    """Protocol 003 section 7: the lead professional and the team are kept informed of all
    developments, a step up among them. A review and a closure travel as `episode_update`: dates,
    whether a TAC meeting was held, the next review, the outcome; never the text of either."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    member = {
        "name": "A Youth Worker",
        "organisation": "Islington Youth Service",
        "agency_type": "early_help",
        "authority": ISLINGTON,
    }
    today = london_today()
    events = [
        {"type": "tac_member_added", "member": member},
        {
            "type": "review",
            "review": {
                "held_on": today.isoformat(),
                "tac_meeting_held": True,
                "progress": "Progress noted in the meeting",
                "next_review_on": (today + dt.timedelta(days=90)).isoformat(),
            },
        },
        {
            "type": "closure",
            "closure": {
                "closed_on": today.isoformat(),
                "outcome": "stepped_up",
                "notes": "Referred to social care",
            },
        },
    ]
    for event in events:
        status, answer = await hackney.call(
            "POST", f"/episodes/{episode_id}/events", json={"event": event}
        )
        assert status == 200, answer

    async def told() -> bool:
        return len(await islington.engine_rows(select(inbox))) == 3

    await eventually(told)
    status, listed = await islington.call("GET", "/notifications")
    assert status == 200, listed
    kinds: list[tuple[str, Any]] = [(n["kind"], n["change"]) for n in listed["notifications"]]
    expected: list[tuple[str, Any]] = [
        ("tac_notification", None),
        (
            "episode_update",
            {
                "type": "review",
                "on": today.isoformat(),
                "tac_meeting_held": True,
                "next_review_on": (today + dt.timedelta(days=90)).isoformat(),
                "outcome": None,
            },
        ),
        (
            "episode_update",
            {
                "type": "closure",
                "on": today.isoformat(),
                "tac_meeting_held": None,
                "next_review_on": None,
                "outcome": "stepped_up",
            },
        ),
    ]
    assert kinds == expected
    assert all(
        n["episode_ref"] == episode_id and n["from"] == HACKNEY for n in listed["notifications"]
    )
    assert "Progress noted" not in json.dumps(listed) and "social care" not in json.dumps(listed)


async def test_a_withdrawal_reaches_recipients_of_a_long_basis(
    federation: dict[str, Node],
) -> None:
    """The register keeps every statement a disclosure relied on, however long their ids: the
    basis was cut at 64 characters, and withdrawing a statement past the cut told nobody."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    consents = f"/episodes/{episode['episode_id']}/consents"
    status, _ = await hackney.call("POST", f"{consents}/C1/withdraw", json={})
    assert status == 200
    ids = [f"LB-HACKNEY-EARLY-HELP-2026-000123-STATEMENT-{n}" for n in (1, 2)]
    for consent_id, section in zip(ids, ("assessments", "delivery_plan"), strict=True):
        status, recorded = await hackney.call(
            "POST",
            consents,
            json={
                "consent_id": consent_id,
                "given_by": [{"role": "parent_carer", "name": "A Parent"}],
                "given_on": "2026-11-02",
                "method": "written",
                "storage_agreed": True,
                "share_with": [{"agency_type": "health"}],
                "sections": [section],
            },
        )
        assert status == 201, recorded
    permitted = await ask(camden, disclosure(episode))
    assert permitted["state"] == "answered", permitted
    assert sorted(permitted["answer"]["basis"]) == ids
    status, _ = await hackney.call("POST", f"{consents}/{ids[1]}/withdraw", json={})
    assert status == 200

    async def marked() -> bool:
        copies = await camden.engine_rows(select(received_copies))
        return len(copies) == 1 and copies[0].withdrawn_at is not None

    await eventually(marked)


async def test_an_episode_closed_on_withdrawal_or_archived_is_not_disclosed(
    federation: dict[str, Node],
) -> None:
    """An episode closed because consent was withdrawn shares nothing on consent (some forms record
    the withdrawal only there); an archived one (DESIGN 3.6: kept, no longer accessible) nothing at
    all. Both refusals are decided and audited on the holder's side."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"
    today = london_today().isoformat()
    closure = {"closed_on": today, "outcome": "consent_withdrawn"}
    status, closed = await hackney.call(
        "POST",
        f"/episodes/{episode['episode_id']}/events",
        json={"event": {"type": "closure", "closure": closure}},
    )
    assert status == 200, closed
    refused = await ask(camden, disclosure(episode))
    assert refused["state"] == "refused" and refused["error"] == "consent_withdrawn", refused

    archived = {
        **episode,
        "episode_id": str(uuid.uuid4()),
        "state": "archived",
        "closure": {"closed_on": "2020-01-06", "outcome": "resolved_family"},
    }
    status, answer = await hackney.call(
        "POST", "/forms", json=archived, headers={"Content-Type": "application/json"}
    )
    assert status == 201, answer
    gone = await ask(camden, disclosure(archived))
    assert gone["state"] != "answered" and gone["error"] == "not_found", gone
    # Nor is a child known only from an archived episode found by an existence check.
    other = {**episode["child"], "family_name": "Oldcase", "date_of_birth": "2012-03-04"}
    other["identifiers"] = {}
    old_case = {**archived, "episode_id": str(uuid.uuid4()), "child": other}
    status, answer = await hackney.call(
        "POST", "/forms", json=old_case, headers={"Content-Type": "application/json"}
    )
    assert status == 201, answer
    checked = await ask(camden, existence_check(old_case))
    assert checked["state"] == "answered" and checked["answer"]["outcome"] == "not_found", checked
    rows = await hackney.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.reason, audit_entries.c.subject).where(
            audit_entries.c.action == "federation.disclosure"
        )
    )
    assert [(r.outcome, r.reason) for r in rows] == [
        ("success", None),
        ("refused", "consent_withdrawn"),
        ("refused", "not_found"),
    ]
    assert rows[-1].subject == archived["episode_id"]


async def test_an_episode_reference_spelt_another_way_is_answered_and_registered_alike(
    federation: dict[str, Node],
) -> None:
    """The holder reads `{3F25...}` as its episode and answers with `3f25...`: the request takes the
    holder's spelling, so the answer matches it and both registers record the disclosure."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    shouted = "{" + episode["episode_id"].upper() + "}"
    answered = await ask(camden, disclosure(episode, episode_ref=shouted))
    assert answered["state"] == "answered", answered
    assert answered["answer"]["episode_ref"] == episode["episode_id"]
    ours = await camden.engine_rows(select(register.c.direction, register.c.episode_id))
    assert [(r.direction, r.episode_id) for r in ours] == [("received", episode["episode_id"])]

    status, problem = await camden.call(
        "POST", "/requests", json=disclosure(episode, episode_ref="CAF-2026-000123")
    )
    assert status == 422 and problem["error"] == "schema_violation", problem
    assert any(p["location"] == "/episode_ref" for p in problem["problems"]), problem


async def test_an_override_is_not_approved_twice_through_the_system_that_raised_it(
    federation: dict[str, Node],
) -> None:
    """The first approval comes from another system; the case system that raised the override then
    names a second lead contact: refused, as it could name anyone."""
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    override = {"justification": "Risk of significant harm tonight.", "expires_at": expires}
    raised = await ask(camden, disclosure(episode, override=override), approve=False)
    raising_system = camden.token
    path = f"/requests/{raised['request_id']}/decision"
    first, second = camden.plan.borough.lead_contacts()[:2]
    await login(camden, name="first-lead-system")
    status, record = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": first}
    )
    assert (status, record["state"]) == (200, "awaiting_second_approval"), record
    camden.token = raising_system
    status, refused = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    assert (status, refused["error"]) == (403, "self_approval"), refused
    await login(camden, name="second-lead-system")
    status, done = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    assert (status, done["state"]) == (200, "answered"), done  # consent alone permits it


async def _forged_withdrawal(sender: Node, to: Node, episode_id: str, consent_id: str) -> None:
    """`sender` tells `to` that a statement was withdrawn, through its outbox; returns once sent."""
    assert sender.runner is not None
    async with sender.runner.app[AUDIT].transaction() as connection:
        await sender.runner.app[OUTBOX].enqueue(
            connection,
            to.plan.borough.gss,
            "consent_withdrawn",
            {"episode_ref": episode_id, "consent_id": consent_id},
        )

    async def delivered() -> bool:
        rows = await sender.engine_rows(select(outbox.c.state))
        return all(r.state == "delivered" for r in rows)

    await eventually(delivered)


async def _withdrawals_sent(node: Node) -> list[str]:
    """The members `node` told of a withdrawal, in order."""
    rows = await node.engine_rows(
        select(outbox.c.recipient)
        .where(outbox.c.kind == "consent_withdrawn")
        .order_by(outbox.c.created_at)
    )
    return [r.recipient for r in rows]


async def test_a_withdrawal_after_the_child_moved_reaches_who_the_earlier_holder_shared_with(
    federation: dict[str, Node],
) -> None:
    """Hackney shares with Camden, then the episode moves to Islington, and the family withdraws
    there. Islington's register knows nothing of Camden: the withdrawal goes back to Hackney, which
    tells its own recipients. Camden's copy is marked, and Hackney's register notes it."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)

    # A member Hackney never moved the episode to cannot make it pass a withdrawal on.
    await _forged_withdrawal(camden, hackney, episode_id, "C1")
    sent = select(register.c.counterpart, register.c.withdrawn_at).where(
        register.c.direction == "sent"
    )
    assert [(r.counterpart, r.withdrawn_at) for r in await hackney.engine_rows(sent)] == [
        (CAMDEN, None),
        (ISLINGTON, None),  # the transfer: the whole episode, on C1 (the register's both sides)
    ]
    assert await _withdrawals_sent(hackney) == []

    status, withdrawn = await islington.call(
        "POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={}
    )
    assert status == 200 and withdrawn["changed"] is True, withdrawn

    async def marked() -> bool:
        copies = await camden.engine_rows(select(received_copies))
        return len(copies) == 1 and copies[0].withdrawn_at is not None

    await eventually(marked)
    rows = await hackney.engine_rows(sent)
    assert [(r.counterpart, r.withdrawn_at is not None) for r in rows] == [
        (CAMDEN, True),
        (ISLINGTON, True),
    ]
    # Islington too, for the transfer: it marks its side of the register, and passes nothing on.
    assert sorted(await _withdrawals_sent(hackney)) == [CAMDEN, ISLINGTON]
    [told] = await islington.engine_rows(
        select(audit_entries.c.details).where(audit_entries.c.action == "consent.withdraw")
    )
    assert json.loads(told.details)["pushed"] == 1  # Hackney, whom it received the episode from


async def test_a_former_holder_that_holds_the_episode_again_decides_withdrawals_itself(
    federation: dict[str, Node],
) -> None:
    """Hackney -> Islington -> Hackney. Islington (faulty, or replaying) tells Hackney a statement
    was withdrawn: Hackney holds the episode again, so its own copy decides, and it passes nothing on.
    A genuine withdrawal at Hackney reaches Camden and Islington, and ends there."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)
    await _accept(hackney, await _offer(islington, hackney, episode_id), episode_id)
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"

    await _forged_withdrawal(islington, hackney, episode_id, "C1")
    sent = select(register.c.withdrawn_at).where(register.c.direction == "sent")
    # The transfer to Islington and the disclosure to Camden: neither marked.
    assert [r.withdrawn_at for r in await hackney.engine_rows(sent)] == [None, None]
    assert await _withdrawals_sent(hackney) == []

    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={})
    assert status == 200

    async def settled() -> bool:
        rows = [
            r for n in (hackney, islington) for r in await n.engine_rows(select(outbox.c.state))
        ]
        return (
            all(r.state == "delivered" for r in rows) and len(await _withdrawals_sent(hackney)) == 2
        )

    await eventually(settled)
    await asyncio.sleep(2)  # more than an outbox round: nothing more is sent
    assert sorted(await _withdrawals_sent(hackney)) == sorted([CAMDEN, ISLINGTON])
    # The forged one, then Islington passing the genuine one back to its earlier holder, Hackney,
    # which holds the episode and passes nothing on: the chain ends.
    assert await _withdrawals_sent(islington) == [HACKNEY, HACKNEY]
    copies = await camden.engine_rows(select(received_copies.c.withdrawn_at))
    assert [c.withdrawn_at is not None for c in copies] == [True]
