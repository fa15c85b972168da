"""Retention of what a disclosure leaves behind, between real nodes: 7 years after a held disclosure
(Hackney: `disclosure_approval = "always"`), the requesting borough's request, its idempotency key
and received copy and the holder's held approval go, each audited; the sharing registers on both
sides stay, and still name the episode's holder to whom a notification about it must come from."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from gateway.errors import NotFound
from gateway.federation.outbox import Message
from gateway.keys import AUDIT, ENGINE, EPISODES, NOTIFICATIONS
from gateway.retention import apply_retention
from gateway.storage._tables import (
    disclosure_approvals,
    idempotency_keys,
    practitioner_requests,
    received_copies,
    register,
)
from schemas import london_today

from .nodes import CAMDEN, HACKNEY, ISLINGTON, Node, disclosure, holder_approves, seed
from .test_disclosure_approval import _federation


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with _federation(tmp_path, None, "always") as running_nodes:  # SQLite
        yield running_nodes


async def _retention(node: Node, today: dt.date) -> dict[str, int]:
    assert node.runner is not None
    app = node.runner.app
    return (await apply_retention(app[ENGINE], app[EPISODES], app[AUDIT], today)).records


async def test_a_disclosure_leaves_nothing_sealed_after_seven_years_but_the_registers(
    nodes: dict[str, Node],
) -> None:
    camden, hackney = nodes[CAMDEN], nodes[HACKNEY]
    episode = await seed(hackney)
    body = disclosure(episode)
    status, record = await camden.call("POST", "/requests", json=body, headers=_ONCE)
    assert status == 201, record
    request_id = record["request_id"]
    status, _ = await camden.call(
        "POST",
        f"/requests/{request_id}/decision",
        json={"decision": "approve", "lead_contact_id": camden.lead},
    )
    assert status == 200
    answered = await holder_approves(hackney, camden, request_id)
    assert answered["state"] == "answered" and answered["answer"]["content"], answered
    seven_years = london_today() + relativedelta(years=7)

    for node in (camden, hackney):  # a day early: nothing goes
        assert await _retention(node, seven_years - dt.timedelta(days=1)) == {}
    status, still = await camden.call("GET", f"/requests/{request_id}")
    assert status == 200 and still["answer"]["content"] == answered["answer"]["content"]
    assert await _raised_under_the_key(camden, body) == request_id

    assert await _retention(camden, seven_years) == {
        "idempotency_key.purge": 1,
        "request.purge": 1,
        "received_copy.purge": 1,
        "inbox.purge": 1,  # the id of Hackney's answer, once held, kept so it applied once
    }
    assert await _retention(hackney, seven_years) == {
        "disclosure_approval.purge": 1,
        "outbox.purge": 1,  # its answer to Camden, delivered (its body went on delivery)
    }

    status, gone = await camden.call("GET", f"/requests/{request_id}")
    assert status == 404 and gone["error"] == "not_found"
    assert await camden.engine_rows(select(practitioner_requests.c.id)) == []
    assert await camden.engine_rows(select(received_copies.c.id)) == []
    assert await hackney.engine_rows(select(disclosure_approvals.c.id)) == []
    assert await camden.engine_rows(select(idempotency_keys.c.key)) == []
    raised_again = await _raised_under_the_key(camden, body)  # the key was forgotten
    assert raised_again != request_id
    # Who was shown what stays on both sides: ids, member codes, statement ids.
    [received] = await camden.engine_rows(select(register))
    [sent] = await hackney.engine_rows(select(register))
    assert (received.direction, sent.direction) == ("received", "sent")
    assert received.episode_id == sent.episode_id == episode["episode_id"]
    assert received.basis == sent.basis and received.receipt == sent.receipt
    for node in (camden, hackney):
        assert node.runner is not None
        assert (await node.runner.app[AUDIT].verify()).ok
    # The register still says who holds the episode: another member's word about it is refused.
    assert camden.runner is not None
    told = camden.runner.app[NOTIFICATIONS]
    with pytest.raises(NotFound):
        async with camden.runner.app[ENGINE].begin() as connection:
            await told.receive(connection, ISLINGTON, _lead_professional(episode, ISLINGTON))
    async with camden.runner.app[ENGINE].begin() as connection:
        await told.receive(connection, HACKNEY, _lead_professional(episode, HACKNEY))


_ONCE = {"Idempotency-Key": "disclosure-1"}


async def _raised_under_the_key(node: Node, body: dict[str, Any]) -> str:
    status, record = await node.call("POST", "/requests", json=body, headers=_ONCE)
    assert status in (200, 201), record
    return str(record["request_id"])


def _lead_professional(episode: dict[str, Any], sender: str) -> Message:
    """A holder's word that the episode has a new lead professional (as `sender` would send it)."""
    practitioner = {
        "name": "A Lead Professional",
        "organisation": "Family hub",
        "agency_type": "early_help",
        "authority": sender,
    }
    body = {"episode_ref": episode["episode_id"], "holder": sender, "practitioner": practitioner}
    return Message(str(uuid.uuid4()), "lead_professional_update", body)
