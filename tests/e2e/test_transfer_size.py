"""An episode too large for one transfer commit is never offered, and one that grew past the limit
after its offer is withdrawn at the acceptance, still held and writable (between real nodes).
Before, the commit was refused for its size at every attempt after the holder's copy had become
read-only, and nobody held the child's episode."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from adapters import get_adapter
from gateway.federation.transfer import _terms as transfer
from gateway.storage._tables import audit_entries
from schemas import Episode

from .nodes import HACKNEY, ISLINGTON, Node, eventually, offer_arrives, seed


async def test_an_episode_too_large_to_carry_is_not_offered(
    federation: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    hackney = federation[HACKNEY]
    episode_id = (await seed(hackney))["episode_id"]
    monkeypatch.setattr(transfer, "MAX_EPISODE_BYTES", 1_000)  # the seeded episode is bigger
    status, refused = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (413, "payload_too_large")
    status, listed = await hackney.call("GET", "/transfers?direction=out")
    assert listed["transfers"] == []


async def test_an_episode_that_grew_too_large_is_withdrawn_at_the_acceptance(
    federation: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert status == 201, offer
    offer_id = offer["offer_id"]
    await offer_arrives(islington, offer_id)
    monkeypatch.setattr(transfer, "MAX_EPISODE_BYTES", 1_000)  # as if it had grown since
    lead = {
        "name": "Lead in Islington",
        "organisation": "Family Hub",
        "agency_type": "early_help",
        "authority": ISLINGTON,
    }
    status, accepted = await islington.call(
        "POST",
        f"/transfers/{offer_id}/accept",
        json={"lead_contact_id": islington.lead, "lead_professional": lead},
    )
    assert status == 200, accepted

    async def closed() -> bool:
        status, listed = await islington.call("GET", "/transfers?direction=in")
        return status == 200 and listed["transfers"][0]["state"] == "withdrawn"

    await eventually(closed)
    status, ours = await hackney.call("GET", "/transfers?direction=out")
    assert ours["transfers"][0]["state"] == "withdrawn"
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert copy["state"] != "transferred"
    status, _ = await islington.call("GET", f"/episodes/{episode_id}")
    assert status == 404
    review = {
        "event": {"type": "review", "review": {"held_on": "2026-06-01", "tac_meeting_held": True}}
    }
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/events", json=review)
    assert status == 200  # still Hackney's, and writable
    (audited,) = await hackney.engine_rows(
        select(audit_entries).where(audit_entries.c.reason == transfer.TOO_LARGE)
    )
    assert (audited.action, audited.outcome) == ("transfer.commit", "refused")


def test_the_size_is_counted_in_bytes_on_the_wire() -> None:
    """Bengali notes: three bytes a character in UTF-8, as the transport sends them."""
    source = Path(__file__).parents[1] / "fixtures"
    data = next(source.rglob("ecaf-xml-v3-101-0.xml")).read_bytes()
    episode = get_adapter("ecaf-xml-v3").to_national(data).episodes[0]
    noted = episode.model_copy(update={"family_ref": "শিশু" * 1_000})
    characters = len(noted.model_dump_json())
    assert transfer._size(noted) >= characters + 2 * 4_000  # two more bytes each


async def test_the_limit_is_met_in_bytes_when_offering(
    federation: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a limit of as many bytes as the episode has characters, a character count would let it
    through; its bytes (names with accents, three-byte dashes) do not."""
    hackney = federation[HACKNEY]
    episode_id = (await seed(hackney))["episode_id"]
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    episode = Episode.model_validate(copy)
    characters = len(episode.model_dump_json())
    assert len(episode.model_dump_json().encode()) > characters
    monkeypatch.setattr(transfer, "MAX_EPISODE_BYTES", characters)
    status, refused = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (413, "payload_too_large")
