"""Transfers between real nodes (third review): only a potential or open episode moves (a closed
one stays with its holder, readable: before, its moved copy kept a closure no `transferred` episode
may have, and could no longer be read, taken back or purged); an acceptance must name a lead
contact the metadata lists for the receiving borough."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from gateway.errors import SchemaViolation
from gateway.federation.outbox import Message
from gateway.keys import AUDIT, TRANSFERS
from gateway.storage._tables import transfers
from schemas import london_today

from .nodes import HACKNEY, ISLINGTON, Node, eventually, seed
from .test_london_protocol import _acceptance, _offer
from .test_transfer_review import _audited

_CLOSURE = {"closed_on": london_today().isoformat(), "outcome": "resolved_family"}


async def _close(holder: Node, episode_id: str) -> None:
    status, closed = await holder.call(
        "POST",
        f"/episodes/{episode_id}/events",
        json={"event": {"type": "closure", "closure": _CLOSURE}},
    )
    assert status == 200 and closed["state"] == "closed", closed


async def _offer_state(node: Node, offer_id: str, direction: str) -> tuple[str, str | None]:
    [row] = await node.engine_rows(
        select(transfers.c.state, transfers.c.reason).where(
            transfers.c.id == offer_id, transfers.c.direction == direction
        )
    )
    return row.state, row.reason


async def test_a_closed_episode_is_not_offered(federation: dict[str, Node]) -> None:
    hackney = federation[HACKNEY]
    episode_id = (await seed(hackney))["episode_id"]
    await _close(hackney, episode_id)
    status, refused = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (409, "conflict"), refused
    [audited] = await _audited(hackney, "transfer.offer")
    assert (audited.outcome, audited.reason, audited.subject) == ("refused", "conflict", episode_id)


async def test_an_episode_closed_after_its_offer_stays_with_its_holder(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    offer_id = await _offer(hackney, islington, episode_id)
    await _close(hackney, episode_id)
    status, accepted = await islington.call(
        "POST", f"/transfers/{offer_id}/accept", json=_acceptance(islington)
    )
    assert status == 200, accepted

    async def closed_on_both_sides() -> bool:
        return await _offer_state(islington, offer_id, "in") == (
            "withdrawn",
            "transfer.episode_closed",
        )

    await eventually(closed_on_both_sides)
    assert await _offer_state(hackney, offer_id, "out") == ("withdrawn", "transfer.episode_closed")
    status, ours = await hackney.call("GET", f"/episodes/{episode_id}")  # readable, still ours
    assert status == 200 and ours["state"] == "closed", ours
    status, theirs = await islington.call("GET", f"/episodes/{episode_id}")
    assert status == 404, theirs


async def _accepted_by(
    holder: Node, receiver: Node, offer_id: str, lead_contact_id: Any, **changes: Any
) -> None:
    """The receiver's acceptance as its outbox would send it, naming `lead_contact_id`."""
    body = {**_acceptance(receiver), "offer_id": offer_id, "lead_contact_id": lead_contact_id}
    await _from_islington(holder, "transfer_accept", body | changes)


async def _from_islington(holder: Node, kind: str, body: dict[str, Any]) -> None:
    assert holder.runner is not None
    async with holder.runner.app[AUDIT].transaction() as connection:
        await holder.runner.app[TRANSFERS].apply(
            connection, ISLINGTON, Message(str(uuid.uuid4()), kind, body)
        )


async def test_an_acceptance_by_someone_not_a_listed_lead_contact_moves_nothing(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    named = [
        "islington-nobody",  # not listed for Islington
        hackney.lead,  # Hackney's own lead contact, not Islington's
        "\x1b[2J" + islington.lead,  # control characters
        "x" * 300,  # longer than any register column holds
        None,
    ]
    for who in named:
        episode_id = (await seed(hackney))["episode_id"]
        offer_id = await _offer(hackney, islington, episode_id)
        await _accepted_by(hackney, islington, offer_id, who)
        assert await _offer_state(hackney, offer_id, "out") == (
            "withdrawn",
            "transfer.not_lead_contact",
        )
        status, ours = await hackney.call("GET", f"/episodes/{episode_id}")
        assert status == 200 and ours["state"] == "open", ours
    commits = await _audited(hackney, "transfer.commit")
    assert [(c.outcome, c.reason) for c in commits] == [
        ("refused", "transfer.not_lead_contact")
    ] * len(named)

    # A listed one moves it.
    episode_id = (await seed(hackney))["episode_id"]
    offer_id = await _offer(hackney, islington, episode_id)
    await _accepted_by(hackney, islington, offer_id, islington.lead)
    assert (await _offer_state(hackney, offer_id, "out"))[0] == "committed"


async def test_a_message_missing_what_it_must_carry_is_refused_with_a_code(
    federation: dict[str, Node],
) -> None:
    """Before: a KeyError, failed as `internal_error` and retried into a dead letter."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    offer_id = await _offer(hackney, islington, episode_id)
    for kind, body in [
        ("transfer_accept", {"offer_id": offer_id}),
        ("transfer_accept", {"lead_professional": _acceptance(islington)["lead_professional"]}),
        ("transfer_commit", {"offer_id": offer_id}),
        ("transfer_offer", {"offer_id": str(uuid.uuid4())}),
        ("transfer_decline", {"reason": "unspecified"}),
    ]:
        with pytest.raises(SchemaViolation):
            await _from_islington(hackney, kind, body)
    assert await _offer_state(hackney, offer_id, "out") == ("offered", None)

    # An acceptance whose lead professional our models refuse moves nothing, and says why.
    await _accepted_by(hackney, islington, offer_id, islington.lead, lead_professional={"name": ""})
    assert await _offer_state(hackney, offer_id, "out") == ("withdrawn", "transfer.lead_invalid")
    status, ours = await hackney.call("GET", f"/episodes/{episode_id}")
    assert status == 200 and ours["state"] == "open", ours
