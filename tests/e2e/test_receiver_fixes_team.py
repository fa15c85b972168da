"""Keeping the team informed only at members' nodes (DESIGN 3.6), between real nodes on loopback: a
TAC member or lead professional from an authority outside the federation (a school in a borough
that is not a member) is not sent a message, which could only be retried for 72 hours and then
dead-lettered with an alert; the audit entry says how many were left out. A suspended member is
still sent to: its messages wait until it is reinstated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.federation.operator import suspend
from gateway.storage._tables import audit_entries, outbox

from .nodes import (
    CAMDEN,
    HACKNEY,
    ISLINGTON,
    Node,
    eventually,
    offer_arrives,
    seed,
    sees_suspended,
)

WESTMINSTER = "E09000033"  # a London borough, not a member of the demo federation


def _worker(name: str, authority: str) -> dict[str, Any]:
    return {
        "name": name,
        "organisation": "A School",
        "agency_type": "education",
        "authority": authority,
    }


async def _add(holder: Node, episode_id: str, member: dict[str, Any]) -> None:
    event = {"type": "tac_member_added", "member": member}
    status, answer = await holder.call(
        "POST", f"/episodes/{episode_id}/events", json={"event": event}
    )
    assert status == 200, answer


async def _recipients(node: Node) -> list[str]:
    rows = await node.engine_rows(select(outbox.c.recipient, outbox.c.kind))
    return sorted(
        r.recipient for r in rows if r.kind in ("tac_notification", "lead_professional_update")
    )


async def _events(node: Node, action: str) -> list[dict[str, Any]]:
    rows = await node.engine_rows(
        select(audit_entries)
        .where(audit_entries.c.action == action)
        .order_by(audit_entries.c.sequence)
    )
    return [json.loads(r.details) for r in rows]


async def test_an_authority_outside_the_federation_is_not_sent_a_message(
    federation: dict[str, Node], tmp_path: Path
) -> None:
    hackney = federation[HACKNEY]
    episode_id = (await seed(hackney))["episode_id"]
    await _add(hackney, episode_id, _worker("A Teacher", WESTMINSTER))
    assert await _recipients(hackney) == []
    await _add(hackney, episode_id, _worker("A Nurse", ISLINGTON))
    assert await _recipients(hackney) == [ISLINGTON]  # Westminster's teacher: not told
    told = [(e["told"], e["left_out"]) for e in await _events(hackney, "episode.event")]
    assert told[-2:] == [(0, 1), (1, 1)]

    suspend(tmp_path / "federation", CAMDEN)
    plan_federation(tmp_path)  # re-sign the metadata: Camden suspended
    await sees_suspended(hackney, CAMDEN)
    await _add(hackney, episode_id, _worker("A Health Visitor", CAMDEN))
    # Camden is still a member: its message waits for it (Islington is told again too).
    assert await _recipients(hackney) == [CAMDEN, ISLINGTON, ISLINGTON]
    assert [(e["told"], e["left_out"]) for e in await _events(hackney, "episode.event")][-1] == (
        2,
        1,
    )


async def test_a_new_holder_tells_only_members_of_its_lead_professional(
    federation: dict[str, Node],
) -> None:
    """Islington takes the episode; its lead professional is announced to the team's members'
    nodes (Camden), not to Westminster, where the TAC's teacher works."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _add(hackney, episode_id, _worker("A Teacher", WESTMINSTER))
    await _add(hackney, episode_id, _worker("A Health Visitor", CAMDEN))
    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert status == 201, offer
    await offer_arrives(islington, offer["offer_id"])
    acceptance = {
        "lead_contact_id": islington.lead,
        "lead_professional": _worker("Lead in Islington", ISLINGTON),
    }
    status, accepted = await islington.call(
        "POST", f"/transfers/{offer['offer_id']}/accept", json=acceptance
    )
    assert status == 200, accepted

    async def received() -> bool:
        return bool(await _events(islington, "transfer.receive"))

    await eventually(received)
    (receive,) = await _events(islington, "transfer.receive")
    assert (receive["told"], receive["left_out"]) == (
        "2",
        "1",
    )  # Camden and Hackney; not Westminster
    assert await _recipients(islington) == [CAMDEN, HACKNEY]
