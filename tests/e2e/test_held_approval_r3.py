"""A disclosure held for the holder's lead CAF contact (Hackney: `disclosure_approval = "always"`),
after the third review, between real nodes: approving releases what the lead contact was shown and
nothing else (consent alone, unless they were shown an override), only while the requesting
borough's approvers are still listed; an override the request carried but consent did not need is
not recorded as relied on; a second decision is refused and audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.demo import plan_federation
from gateway.federation.operator import remove_lead_contact, rotate_key
from gateway.keys import DISCLOSURE_APPROVALS, ENGINE, MEMBERS, SIGNING_KEY
from gateway.storage import aware_utc
from gateway.storage._tables import audit_entries, disclosure_approvals, register

from .nodes import (
    CAMDEN,
    HACKNEY,
    Node,
    ask,
    disclosure,
    eventually,
    login,
    seed,
    settled,
)
from .test_disclosure_approval import _federation

_OVERRIDE = {
    "justification": "Safeguarding concern raised by the school; consent may not hold for long.",
}


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with _federation(tmp_path, None, "always") as running_nodes:  # SQLite
        yield running_nodes


async def _held_with_override(
    camden: Node, hackney: Node, episode: dict[str, Any]
) -> tuple[str, str]:
    """Camden asks with consent that covers it and an override besides (two of its lead contacts
    approve); Hackney holds it, showing its lead contact a consent-based release. The request's id
    and the hold's."""
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    body = disclosure(episode, override={**_OVERRIDE, "expires_at": expires})
    status, record = await camden.call("POST", "/requests", json=body)
    assert status == 201, record
    path = f"/requests/{record['request_id']}/decision"
    first, second = camden.plan.borough.lead_contacts()[:2]
    status, record = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": first}
    )
    assert status == 200, record
    raising_system = camden.token
    await login(camden, name="second-system")
    status, record = await camden.call(
        "POST", path, json={"decision": "approve", "lead_contact_id": second}
    )
    camden.token = raising_system
    assert status == 200 and record["state"] == "awaiting_holder", record
    return str(record["request_id"]), await _the_held(hackney)


async def _the_held(hackney: Node) -> str:
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    assert status == 200, queue
    (held,) = queue["approvals"]
    assert held["override"] is False  # consent permitted it: the override was not needed
    return str(held["approval_id"])


async def _approve(hackney: Node, approval_id: str) -> tuple[int, dict[str, Any]]:
    status, decided = await hackney.call(
        "POST",
        f"/disclosure-approvals/{approval_id}/decision",
        json={"decision": "approve", "lead_contact_id": hackney.lead},
    )
    return status, dict(decided)


async def _refusals(hackney: Node) -> list[str | None]:
    rows = await hackney.engine_rows(
        select(audit_entries.c.reason).where(
            audit_entries.c.action == "federation.disclosure",
            audit_entries.c.outcome == "refused",
        )
    )
    return [row.reason for row in rows]


async def test_a_consent_withdrawn_while_held_is_not_made_up_for_by_an_unseen_override(
    nodes: dict[str, Node],
) -> None:
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    _, approval_id = await _held_with_override(camden, hackney, episode)
    status, withdrawn = await hackney.call(
        "POST", f"/episodes/{episode['episode_id']}/consents/C1/withdraw", json={}
    )
    assert status == 200 and withdrawn["changed"] is True, withdrawn
    status, decided = await _approve(hackney, approval_id)
    assert status == 200, decided
    assert (decided["state"], decided["outcome"]) == ("refused", "consent_withdrawn")
    assert await hackney.engine_rows(select(register)) == []
    assert await _refusals(hackney) == ["consent_withdrawn"]


async def test_an_override_consent_did_not_need_is_not_recorded_as_relied_on(
    nodes: dict[str, Node],
) -> None:
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    request_id, approval_id = await _held_with_override(camden, hackney, episode)
    status, decided = await _approve(hackney, approval_id)
    assert status == 200 and decided["outcome"] == "disclosed", decided
    (row,) = await hackney.engine_rows(select(register))
    assert (row.override, row.basis, row.second_approved_by) == (False, "C1", None)
    held = await hackney.engine_rows(select(disclosure_approvals.c.override))
    assert [h.override for h in held] == [False]
    await settled(camden, request_id)  # the requester's row says the same
    (received,) = await camden.engine_rows(
        select(register).where(register.c.direction == "received")
    )
    assert (received.override, received.basis, received.second_approved_by) == (False, "C1", None)


async def test_a_second_decision_is_refused_and_audited(nodes: dict[str, Node]) -> None:
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    assert record["state"] == "awaiting_holder", record
    approval_id = await _the_held(hackney)
    status, decided = await _approve(hackney, approval_id)
    assert status == 200 and decided["outcome"] == "disclosed", decided
    status, again = await hackney.call(
        "POST",
        f"/disclosure-approvals/{approval_id}/decision",
        json={"decision": "reject", "lead_contact_id": hackney.lead, "note": "changed my mind"},
    )
    assert status == 409 and again["error"] == "already_decided", again
    rows = await hackney.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.reason, audit_entries.c.details).where(
            audit_entries.c.action == "disclosure_approval.decide"
        )
    )
    assert [(r.outcome, r.reason) for r in rows] == [
        ("success", None),
        ("refused", "already_decided"),
    ]
    assert json.loads(rows[-1].details)["decision"] == "reject"


async def test_an_approver_delisted_while_held_releases_nothing(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    """Camden's operator takes the lead contact who verified the practitioner off its list (left,
    or the account was compromised) before Hackney's lead contact approves."""
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    assert record["state"] == "awaiting_holder", record
    approval_id = await _the_held(hackney)
    remove_lead_contact(tmp_path / "federation", CAMDEN, camden.lead)
    plan_federation(tmp_path)  # signs the metadata again
    assert hackney.runner is not None
    members = hackney.runner.app[MEMBERS]

    async def delisted() -> bool:
        return not members().is_lead_contact(CAMDEN, camden.lead)

    await eventually(delisted)
    status, decided = await _approve(hackney, approval_id)
    assert status == 200, decided
    assert (decided["state"], decided["outcome"]) == ("refused", "not_lead_contact")
    assert await hackney.engine_rows(select(register)) == []
    assert await _refusals(hackney) == ["not_lead_contact"]


async def test_an_attestation_whose_key_was_dropped_while_held_releases_nothing(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    """Camden's signing key is found compromised and dropped (`rotate-key --grace-days 0`) while
    the disclosure waits: what it signed is not released."""
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    assert record["state"] == "awaiting_holder", record
    approval_id = await _the_held(hackney)
    assert camden.runner is not None
    dropped = camden.runner.app[SIGNING_KEY].kid
    rotate_key(tmp_path / "federation", CAMDEN, grace=dt.timedelta(0))
    plan_federation(tmp_path)  # signs the metadata again
    assert hackney.runner is not None
    members = hackney.runner.app[MEMBERS]

    async def gone() -> bool:
        return all(key.kid != dropped for key in members().active(CAMDEN).signing_keys)

    await eventually(gone)
    status, decided = await _approve(hackney, approval_id)
    assert status == 200, decided
    assert (decided["state"], decided["outcome"]) == ("refused", "attestation_invalid")
    assert await hackney.engine_rows(select(register)) == []
    assert await _refusals(hackney) == ["attestation_invalid"]


async def test_both_registers_give_the_holders_time_for_a_disclosure(
    nodes: dict[str, Node],
) -> None:
    """Released later by Hackney's lead contact, the answer reaches Camden through the outbox:
    Camden's row takes the moment from Hackney's receipt, not the moment the message arrived."""
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    approval_id = await _the_held(hackney)
    await asyncio.sleep(1.1)  # the arrival would otherwise fall within the same second
    status, decided = await _approve(hackney, approval_id)
    assert status == 200 and decided["outcome"] == "disclosed", decided
    await settled(camden, record["request_id"])
    (sent,) = await hackney.engine_rows(select(register.c.disclosed_at))
    (received,) = await camden.engine_rows(
        select(register.c.disclosed_at).where(register.c.direction == "received")
    )
    assert aware_utc(received.disclosed_at) == aware_utc(sent.disclosed_at)


async def test_a_hold_left_undecided_past_its_attestation_is_refused_and_the_requester_told(
    nodes: dict[str, Node],
) -> None:
    """Nobody at Hackney decided within the attestation's life: the housekeeping refuses the hold,
    so neither Hackney's queue nor Camden's request waits for ever."""
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    record = await ask(camden, disclosure(episode))
    approval_id = await _the_held(hackney)
    assert hackney.runner is not None
    approvals = hackney.runner.app[DISCLOSURE_APPROVALS]
    received = (await approvals.get(approval_id)).received_at
    assert await approvals.expire(now=received + dt.timedelta(minutes=30)) == []  # still in date
    assert await approvals.expire(now=received + dt.timedelta(hours=2)) == [approval_id]
    assert await approvals.expire(now=received + dt.timedelta(hours=3)) == []  # once
    held = await approvals.get(approval_id)
    assert (held.state, held.outcome) == ("refused", "attestation_invalid")
    refused = await settled(camden, record["request_id"])
    assert (refused["state"], refused["error"]) == ("refused", "attestation_invalid"), refused
    assert await hackney.engine_rows(select(register)) == []
    assert await _refusals(hackney) == ["attestation_invalid"]
    expired = await hackney.engine_rows(
        select(audit_entries.c.actor, audit_entries.c.subject).where(
            audit_entries.c.action == "disclosure_approval.expire"
        )
    )
    assert [(e.actor, e.subject) for e in expired] == [("node:housekeeping", approval_id)]
    status, queue = await hackney.call("GET", "/disclosure-approvals")
    assert status == 200 and queue["approvals"] == []


async def test_a_hold_that_does_not_open_stops_neither_the_queue_nor_the_others_expiring(
    nodes: dict[str, Node],
) -> None:
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    for _ in range(2):
        record = await ask(camden, disclosure(episode))
        assert record["state"] == "awaiting_holder", record
    assert hackney.runner is not None
    approvals = hackney.runner.app[DISCLOSURE_APPROVALS]
    held = [h.id for h in await approvals.waiting()]
    async with hackney.runner.app[ENGINE].begin() as connection:  # sealed under a key not here
        await connection.execute(
            update(disclosure_approvals)
            .where(disclosure_approvals.c.id == held[0])
            .values(sealed=b"not a sealed document")
        )
    status, queue = await hackney.call("GET", "/disclosure-approvals")  # the console's list too
    assert status == 200, queue
    assert [a["approval_id"] for a in queue["approvals"]] == [held[1]]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert await approvals.expire(now=later) == [held[1]]
