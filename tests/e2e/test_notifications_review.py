"""Keeping the team informed, between real nodes on loopback (DESIGN 3.6): a lead-professional update
held up by its back-off does not replace a newer one, a member that does not hold an episode cannot
tell others about it, and the borough of a replaced lead professional is told."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.keys import ENGINE, OUTBOX
from gateway.storage import aware_utc
from gateway.storage._tables import audit_entries, outbox

from .nodes import CAMDEN, HACKNEY, ISLINGTON, Node, eventually, offer_arrives, seed


def _lead(name: str, authority: str) -> dict[str, Any]:
    return {
        "name": name,
        "organisation": "Family Hub",
        "agency_type": "early_help",
        "authority": authority,
    }


async def _change_lead(holder: Node, episode_id: str, name: str, authority: str) -> None:
    event = {"type": "lead_professional_changed", "lead_professional": _lead(name, authority)}
    status, answer = await holder.call(
        "POST", f"/episodes/{episode_id}/events", json={"event": event}
    )
    assert status == 200, answer


async def _told(node: Node, episode_id: str, count: int) -> list[dict[str, Any]]:
    """`node`'s notifications about the episode, once it has `count` of them."""
    listed: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal listed
        status, answer = await node.call("GET", "/notifications", params={"episode": episode_id})
        listed = answer.get("notifications", []) if status == 200 else []
        return len(listed) >= count

    await eventually(arrived)
    return listed


async def _to(holder: Node, recipient: str) -> list[Any]:
    return await holder.engine_rows(
        select(outbox).where(outbox.c.recipient == recipient).order_by(outbox.c.created_at)
    )


async def _set_due(node: Node, message_id: str, due: dt.datetime) -> None:
    """Its next attempt at `due`, as a back-off that drew that long a wait would have set it; set
    again if an attempt in flight wrote its own over it."""
    assert node.runner is not None
    engine = node.runner.app[ENGINE]
    for _ in range(20):
        async with engine.begin() as connection:
            await connection.execute(
                update(outbox).where(outbox.c.id == message_id).values(next_attempt_at=due)
            )
        await asyncio.sleep(0.5)  # more than the outbox's interval on these nodes
        (row,) = await node.engine_rows(select(outbox).where(outbox.c.id == message_id))
        if row.state != "pending" or abs(aware_utc(row.next_attempt_at) - due).total_seconds() < 1:
            return
    pytest.fail("the message's next attempt could not be set")


async def test_an_update_held_up_by_its_back_off_does_not_replace_the_newer_lead(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await islington.stop()  # update A's first send fails
    await _change_lead(hackney, episode_id, "Lead A", ISLINGTON)

    async def attempted() -> bool:
        rows = await _to(hackney, ISLINGTON)
        return len(rows) == 1 and rows[0].attempts >= 1 and rows[0].state == "pending"

    await eventually(attempted)
    (a,) = await _to(hackney, ISLINGTON)
    await _set_due(hackney, a.id, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    await islington.start()
    await _change_lead(hackney, episode_id, "Lead B", ISLINGTON)  # B is sent at once
    (b,) = await _told(islington, episode_id, 1)
    assert b["practitioner"]["name"] == "Lead B" and b["superseded"] is False
    await _set_due(hackney, a.id, dt.datetime.now(dt.UTC))  # A's wait is over

    listed = await _told(islington, episode_id, 2)
    by_arrival = sorted(listed, key=lambda n: n["received_at"])
    assert [n["practitioner"]["name"] for n in by_arrival] == ["Lead B", "Lead A"]
    # Listed by when Hackney made each change: B, the newest, is last and the current lead.
    assert [n["practitioner"]["name"] for n in listed] == ["Lead A", "Lead B"]
    assert [n["superseded"] for n in listed] == [True, False]
    assert listed[0]["changed_at"] < listed[1]["changed_at"]
    since = {"since": b["received_at"]}  # a system that polled when B came is told A is stale
    status, late = await islington.call("GET", "/notifications", params=since)
    assert status == 200 and [n["superseded"] for n in late["notifications"]] == [True]


async def test_a_member_that_does_not_hold_the_episode_cannot_tell_about_it(
    federation: dict[str, Node],
) -> None:
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    member = {**_lead("A Youth Worker", ISLINGTON), "organisation": "Islington Youth Service"}
    event = {"type": "tac_member_added", "member": member}
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/events", json={"event": event})
    assert status == 200
    (first,) = await _told(islington, episode_id, 1)
    # Islington had no record of the episode: the first word is kept, marked unverified.
    assert first["from"] == HACKNEY and first["holder_verified"] is False

    # Camden, which never held the episode, says it has a new lead professional.
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        forged = await camden.runner.app[OUTBOX].enqueue(
            connection,
            ISLINGTON,
            "lead_professional_update",
            {
                "episode_ref": episode_id,
                "holder": CAMDEN,
                "practitioner": _lead("Someone Else", CAMDEN),
                "changed_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        )

    async def refused() -> bool:
        rows = await camden.engine_rows(select(outbox).where(outbox.c.id == forged))
        return bool(rows[0].last_error == "not_found")

    await eventually(refused)
    (audited,) = await islington.engine_rows(
        select(audit_entries).where(
            audit_entries.c.action == "federation.message", audit_entries.c.subject == forged
        )
    )
    assert (audited.actor, audited.outcome, audited.reason) == (
        f"member:{CAMDEN}",
        "failed",
        "not_found",
    )
    assert json.loads(audited.details)["kind"] == "lead_professional_update"
    assert "Someone" not in audited.details and episode_id not in audited.details

    # Hackney, the holder Islington knows, is still heard, and now as the known holder.
    await _change_lead(hackney, episode_id, "Lead in Islington", ISLINGTON)
    listed = await _told(islington, episode_id, 2)
    assert [(n["from"], n["holder_verified"]) for n in listed] == [
        (HACKNEY, False),
        (HACKNEY, True),
    ]


async def test_the_replaced_lead_professionals_borough_is_told(
    federation: dict[str, Node],
) -> None:
    """Hackney holds the episode; its lead professional works in Islington, which has nobody else
    on the team. Replaced by a Camden practitioner, Islington is told too (before: only Camden)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _change_lead(hackney, episode_id, "Lead in Islington", ISLINGTON)
    await _told(islington, episode_id, 1)
    await _change_lead(hackney, episode_id, "Lead in Camden", CAMDEN)

    listed = await _told(islington, episode_id, 2)
    assert [n["practitioner"]["name"] for n in listed] == ["Lead in Islington", "Lead in Camden"]
    assert [n["superseded"] for n in listed] == [True, False]
    (camdens,) = await _told(camden, episode_id, 1)
    assert camdens["practitioner"]["name"] == "Lead in Camden"


async def test_after_a_move_the_new_holder_is_heard_by_the_team(
    federation: dict[str, Node],
) -> None:
    """Camden knows Hackney as the holder; the episode moves to Islington, whose word Camden takes
    on the signed custody steps it shows (the node checks them with the federation's keys)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _change_lead(hackney, episode_id, "Lead in Camden", CAMDEN)
    (first,) = await _told(camden, episode_id, 1)
    assert first["from"] == HACKNEY

    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert status == 201, offer
    await offer_arrives(islington, offer["offer_id"])
    acceptance = {"lead_contact_id": islington.lead, "lead_professional": _lead("Lead B", CAMDEN)}
    status, accepted = await islington.call(
        "POST", f"/transfers/{offer['offer_id']}/accept", json=acceptance
    )
    assert status == 200, accepted

    async def held() -> bool:
        status, copy = await islington.call("GET", f"/episodes/{episode_id}")
        return status == 200 and copy["state"] != "transferred"

    await eventually(held)
    await _change_lead(islington, episode_id, "Lead C", CAMDEN)
    # The transfer's own lead professional (Lead B) is announced by Islington too.
    listed = await _told(camden, episode_id, 3)
    assert [(n["from"], n["practitioner"]["name"]) for n in listed[1:]] == [
        (ISLINGTON, "Lead B"),
        (ISLINGTON, "Lead C"),
    ]
    assert listed[-1]["holder_verified"] is True and listed[-1]["superseded"] is False
