"""Transfers between real nodes (review findings): a commit is never refused after its holder gave
its copy up for what was judged at the acceptance, and one refused for good gives the holder its
copy back; consent decides a transfer as any disclosure, and the register keeps it on both sides;
the team hears of the new lead professional; only a lead CAF contact offers an episode; refusals
are audited with the offer, the episode and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.federation.operator import suspend
from gateway.keys import AUDIT, OUTBOX
from gateway.storage._tables import audit_entries, outbox, register
from schemas import london_today

from .nodes import (
    CAMDEN,
    HACKNEY,
    ISLINGTON,
    Node,
    eventually,
    login,
    offer_arrives,
    seed,
    sees_suspended,
)
from .test_london_protocol import (
    _accept,
    _acceptance,
    _escalated,
    _listed,
    _offer,
    _released_while_the_holder_is_down,
    _send_now,
    _stray_offer,
)
from .test_notifications_review import _change_lead, _told


async def _audited(node: Node, action: str) -> list[Any]:
    return await node.engine_rows(
        select(
            audit_entries.c.outcome,
            audit_entries.c.reason,
            audit_entries.c.subject,
            audit_entries.c.details,
        )
        .where(audit_entries.c.action == action)
        .order_by(audit_entries.c.sequence)
    )


async def _holds(node: Node, episode_id: str) -> None:
    async def held() -> bool:
        status, copy = await node.call("GET", f"/episodes/{episode_id}")
        return status == 200 and copy["state"] != "transferred"

    await eventually(held, timeout=40)


# --- 1. a commit refused after the holder gave its copy up ---------------------------------------


async def test_a_commit_lands_though_a_member_on_its_custody_steps_was_suspended_meanwhile(
    federation: dict[str, Node], tmp_path: Path
) -> None:
    """Hackney -> Islington -> Camden, and Camden offers it back. Hackney accepts (Islington's
    custody step verifies then) while Camden is down; the operator then suspends Islington. Camden
    commits: Hackney takes the episode (before: it walked the steps again, refused them as
    unverified, and nobody held the episode, every copy `transferred`)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)
    await _accept(camden, await _offer(islington, camden, episode_id), episode_id)
    back = await _offer(camden, hackney, episode_id)
    await camden.stop()
    status, accepted = await hackney.call(
        "POST", f"/transfers/{back}/accept", json=_acceptance(hackney)
    )
    assert status == 200, accepted
    suspend(tmp_path / "federation", ISLINGTON)
    plan_federation(tmp_path)
    await sees_suspended(hackney, ISLINGTON)
    await camden.start()
    await _send_now(hackney)

    await _holds(hackney, episode_id)
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert (copy["home_authority"], copy["lead_professional"]["name"]) == (
        HACKNEY,
        "Lead in Hackney",
    )
    status, left = await camden.call("GET", f"/episodes/{episode_id}")
    assert left["state"] == "transferred"
    assert (await _listed(hackney, back))["state"] == "committed"


async def test_a_released_offers_late_commit_does_not_take_the_place_of_the_accepted_one(
    federation: dict[str, Node],
) -> None:
    """Camden (faulty) offers Islington an episode it never held; Islington accepts, then releases
    it past its due date and accepts Hackney's genuine offer. Camden's commit for the released
    offer arrives first: refused, as another offer is accepted (before: stored, and Hackney's
    genuine commit then refused as already held, for good)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    stray = await _stray_offer(camden, islington, episode_id)
    status, _ = await islington.call(
        "POST", f"/transfers/{stray}/accept", json=_acceptance(islington)
    )
    assert status == 200
    await _escalated(islington, stray)
    release = {"lead_contact_id": islington.lead, "reason": "wrong_authority"}
    status, released = await islington.call("POST", f"/transfers/{stray}/decline", json=release)
    assert (status, released["state"]) == (200, "released"), released
    genuine = await _offer(hackney, islington, episode_id)
    await hackney.stop()  # its commit waits
    status, _ = await islington.call(
        "POST", f"/transfers/{genuine}/accept", json=_acceptance(islington)
    )
    assert status == 200

    fake = {
        **episode,
        "home_authority": CAMDEN,
        "lead_professional": _acceptance(islington)["lead_professional"],
        "family_ref": "FABRICATED",
    }
    assert camden.runner is not None
    async with camden.runner.app[AUDIT].transaction() as connection:
        await camden.runner.app[OUTBOX].enqueue(
            connection,
            ISLINGTON,
            "transfer_commit",
            {"offer_id": stray, "episode": fake, "custody": []},
        )

    async def refused() -> bool:
        return bool(await _audited(islington, "transfer.receive"))

    await eventually(refused, timeout=30)
    [receive] = await _audited(islington, "transfer.receive")
    assert (receive.outcome, receive.reason, receive.subject) == (
        "refused",
        "transfer.another_accepted",
        episode_id,
    )
    assert json.loads(receive.details)["offer"] == stray
    status, _ = await islington.call("GET", f"/episodes/{episode_id}")
    assert status == 404

    await hackney.start()
    await _send_now(islington)
    await _holds(islington, episode_id)
    status, copy = await islington.call("GET", f"/episodes/{episode_id}")
    assert copy["family_ref"] == episode["family_ref"] != "FABRICATED"
    assert (await _listed(islington, genuine))["state"] == "committed"
    assert (await _listed(islington, stray))["state"] == "released"


async def test_a_commit_refused_for_good_gives_the_holder_its_copy_back(
    federation: dict[str, Node],
) -> None:
    """Islington released Hackney's accepted offer while Hackney was down, and accepted another
    offer of the episode. Hackney comes back and commits, giving its copy up: Islington refuses
    the commit and tells Hackney, which takes its copy back, open, with its own lead professional
    (before: Hackney's commit was retried into a dead letter and nobody held the episode)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    offer_id = await _released_while_the_holder_is_down(hackney, islington, episode_id)
    other = await _stray_offer(camden, islington, episode_id)
    status, _ = await islington.call(
        "POST", f"/transfers/{other}/accept", json=_acceptance(islington)
    )
    assert status == 200
    await hackney.start()
    await _send_now(islington)

    async def taken_back() -> bool:
        return bool((await _listed(hackney, offer_id, "out"))["state"] == "declined")

    await eventually(taken_back, timeout=40)
    assert (await _listed(hackney, offer_id, "out"))["reason"] == "transfer.commit_refused"
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert (copy["state"], copy["lead_professional"]) == (
        episode["state"],
        episode["lead_professional"],
    )
    [refused] = await _audited(islington, "transfer.receive")
    assert (refused.outcome, refused.reason) == ("refused", "transfer.another_accepted")
    [back] = await _audited(hackney, "transfer.take_back")
    assert (back.outcome, back.subject) == ("success", episode_id)
    # The episode went to Islington, which refused it and holds nothing: the register row stays,
    # marked given back, and a withdrawal later goes to nobody for it.
    [row] = await hackney.engine_rows(
        select(register.c.counterpart, register.c.returned_at).where(
            register.c.episode_id == episode_id
        )
    )
    assert row.counterpart == ISLINGTON and row.returned_at is not None
    status, listed = await hackney.call("GET", f"/register?episode={episode_id}")
    assert status == 200 and listed["entries"][0]["returned_at"] is not None, listed
    # Writable again, and offered again.
    status, offer = await hackney.call(
        "POST",
        f"/episodes/{episode_id}/transfer",
        json={"to": CAMDEN, "lead_contact_id": hackney.lead},
    )
    assert status == 201, offer
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={})
    assert status == 200
    sent = await hackney.engine_rows(
        select(outbox.c.recipient).where(outbox.c.kind == "consent_withdrawn")
    )
    assert sent == []


# --- 2. consent, and the sharing register ----------------------------------------------------------


async def test_a_transfer_is_refused_when_consent_is_withdrawn_or_excludes_the_borough(
    federation: dict[str, Node],
) -> None:
    hackney = federation[HACKNEY]
    move = {"to": ISLINGTON, "lead_contact_id": hackney.lead}

    withdrawn = (await seed(hackney))["episode_id"]
    status, _ = await hackney.call("POST", f"/episodes/{withdrawn}/consents/C1/withdraw", json={})
    assert status == 200
    closure = {"closed_on": london_today().isoformat(), "outcome": "consent_withdrawn"}
    status, _ = await hackney.call(
        "POST",
        f"/episodes/{withdrawn}/events",
        json={"event": {"type": "closure", "closure": closure}},
    )
    assert status == 200
    status, refused = await hackney.call("POST", f"/episodes/{withdrawn}/transfer", json=move)
    assert (status, refused["error"]) == (403, "consent_withdrawn"), refused

    excluded = (await seed(hackney))["episode_id"]
    statement = {
        "consent_id": "C-NO-ISL",
        "given_by": [{"role": "parent_carer", "name": "A Parent"}],
        "given_on": london_today().isoformat(),
        "method": "written",
        "storage_agreed": True,
        "excluded": [{"authority": ISLINGTON}],
    }
    status, answer = await hackney.call("POST", f"/episodes/{excluded}/consents", json=statement)
    assert status == 201, answer
    status, refused = await hackney.call("POST", f"/episodes/{excluded}/transfer", json=move)
    assert (status, refused["error"]) == (403, "consent_excluded"), refused

    audited = await _audited(hackney, "transfer.offer")
    assert [(a.outcome, a.reason, a.subject, json.loads(a.details)["rule"]) for a in audited] == [
        ("refused", "consent_withdrawn", withdrawn, "3.5.closure.consent_withdrawn"),
        ("refused", "consent_excluded", excluded, "3.5.exclusion"),
    ]
    status, ours = await hackney.call("GET", "/transfers?direction=out")
    assert ours["transfers"] == []


async def test_an_exclusion_by_name_stops_a_transfer_only_when_it_names_the_receiving_service(
    federation: dict[str, Node],
) -> None:
    """The receiving borough's early help goes by its borough's name in the metadata
    ("Islington early help"): a family's "not St Mary's Hospital" or "not the Hackney Early Help
    Hub" lets the child's CAF move to Islington; "not Islington" does not."""
    hackney = federation[HACKNEY]
    move = {"to": ISLINGTON, "lead_contact_id": hackney.lead}

    async def excluding(*names: dict[str, str]) -> str:
        episode_id = str((await seed(hackney))["episode_id"])
        statement = {
            "consent_id": "C-NAMED",
            "given_by": [{"role": "parent_carer", "name": "A Parent"}],
            "given_on": london_today().isoformat(),
            "method": "written",
            "storage_agreed": True,
            "excluded": list(names),
        }
        status, answer = await hackney.call(
            "POST", f"/episodes/{episode_id}/consents", json=statement
        )
        assert status == 201, answer
        return episode_id

    others = await excluding(
        {"name": "St Mary's Hospital"},
        {"agency_type": "early_help", "name": "Hackney Early Help Hub"},
    )
    status, offer = await hackney.call("POST", f"/episodes/{others}/transfer", json=move)
    assert status == 201, offer
    ours = await excluding({"name": "Islington"})
    status, refused = await hackney.call("POST", f"/episodes/{ours}/transfer", json=move)
    assert (status, refused["error"]) == (403, "consent_excluded"), refused


async def test_consent_withdrawn_after_the_offer_stops_the_commit(
    federation: dict[str, Node],
) -> None:
    """Consent is decided again when the acceptance comes: withdrawn since the offer, nothing
    moves, the offer is withdrawn on both sides with the engine's code, and Hackney keeps its
    copy, writable."""
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    offer_id = await _offer(hackney, islington, episode_id)
    status, _ = await hackney.call("POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={})
    assert status == 200
    status, _ = await islington.call(
        "POST", f"/transfers/{offer_id}/accept", json=_acceptance(islington)
    )
    assert status == 200

    async def withdrawn() -> bool:
        return bool((await _listed(islington, offer_id))["state"] == "withdrawn")

    await eventually(withdrawn)
    assert (await _listed(islington, offer_id))["reason"] == "consent_withdrawn"
    assert (await _listed(hackney, offer_id, "out"))["state"] == "withdrawn"
    status, copy = await hackney.call("GET", f"/episodes/{episode_id}")
    assert copy["state"] == episode["state"]
    [commit] = await _audited(hackney, "transfer.commit")
    assert (commit.outcome, commit.reason, json.loads(commit.details)["rule"]) == (
        "refused",
        "consent_withdrawn",
        "3.5.withdrawn",
    )
    status, _ = await islington.call("GET", f"/episodes/{episode_id}")
    assert status == 404


async def test_a_committed_transfer_is_in_the_register_on_both_sides(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)

    status, sent = await hackney.call("GET", f"/register?episode={episode_id}")
    assert status == 200, sent
    [ours] = sent["entries"]
    assert (ours["direction"], ours["counterpart"], ours["basis"], ours["override"]) == (
        "sent",
        ISLINGTON,
        "C1",
        False,
    )
    assert (ours["requested_by"], ours["holder_approved_by"]) == (islington.lead, hackney.lead)
    assert "assessments" in ours["sections"] and "child" in ours["sections"]

    async def registered() -> bool:
        status, got = await islington.call("GET", f"/register?episode={episode_id}")
        return status == 200 and bool(got["entries"])

    await eventually(registered)
    status, got = await islington.call("GET", f"/register?episode={episode_id}")
    [theirs] = got["entries"]
    assert (theirs["direction"], theirs["counterpart"], theirs["basis"]) == (
        "received",
        HACKNEY,
        "C1",
    )
    assert theirs["sections"] == ours["sections"]
    assert theirs["holder_approved_by"] == hackney.lead
    [receive] = await _audited(islington, "transfer.receive")
    details = json.loads(receive.details)
    assert (details["register"], details["receipt"]) == (theirs["id"], "verified")


# --- 3. the team hears of the new lead professional ------------------------------------------------


async def test_the_team_is_told_of_the_lead_professional_a_transfer_names(
    federation: dict[str, Node],
) -> None:
    """Camden's practitioner is the lead professional when Hackney moves the episode to Islington,
    which names its own: Islington tells Camden (the replaced lead's borough) of the new lead,
    with the custody step that shows it holds the episode now (before: nobody was told)."""
    camden, hackney, islington = federation[CAMDEN], federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    await _change_lead(hackney, episode_id, "Lead in Camden", CAMDEN)
    await _told(camden, episode_id, 1)
    await _accept(islington, await _offer(hackney, islington, episode_id), episode_id)

    told = await _told(camden, episode_id, 2)
    newest = told[-1]
    assert (newest["from"], newest["practitioner"]["name"], newest["superseded"]) == (
        ISLINGTON,
        "Lead in Islington",
        False,
    )
    assert newest["holder_verified"] is True
    [receive] = await _audited(islington, "transfer.receive")
    assert json.loads(receive.details)["told"] == "2"  # Camden, and Hackney's TAC member's borough


# --- 4. who may offer --------------------------------------------------------------------------


async def test_only_a_lead_contact_offers_an_episode(federation: dict[str, Node]) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    path = f"/episodes/{episode_id}/transfer"

    status, refused = await hackney.call(
        "POST", path, json={"to": ISLINGTON, "lead_contact_id": "not-a-lead-contact"}
    )
    assert status == 403, refused
    status, refused = await hackney.call("POST", path, json={"to": ISLINGTON})
    assert status == 422, refused  # who decides is part of the offer

    status, offer = await hackney.call(
        "POST", path, json={"to": ISLINGTON, "lead_contact_id": hackney.lead}
    )
    assert status == 201, offer
    await offer_arrives(islington, offer["offer_id"])
    audited = await _audited(hackney, "transfer.offer")
    assert [(a.outcome, a.subject) for a in audited] == [
        ("refused", episode_id),
        ("success", episode_id),
    ]
    assert json.loads(audited[1].details)["lead"] == hackney.lead

    # A borough system that may write episodes but not decide requests cannot offer one.
    await login(hackney, ["episodes:read", "episodes:write"], name="school-mis")
    other = (await seed(hackney))["episode_id"]
    status, refused = await hackney.call(
        "POST",
        f"/episodes/{other}/transfer",
        json={"to": ISLINGTON, "lead_contact_id": hackney.lead},
    )
    assert (status, refused["error"]) == (403, "insufficient_scope"), refused


# --- 5. refusals audited with the offer and its episode -----------------------------------------


async def test_a_refused_acceptance_is_audited_with_its_offer_and_episode(
    federation: dict[str, Node],
) -> None:
    hackney, islington = federation[HACKNEY], federation[ISLINGTON]
    episode_id = (await seed(hackney))["episode_id"]
    offer_id = await _offer(hackney, islington, episode_id)
    await _accept(islington, offer_id, episode_id)
    status, again = await islington.call(
        "POST", f"/transfers/{offer_id}/accept", json=_acceptance(islington)
    )
    assert status == 409, again
    refused = [a for a in await _audited(islington, "transfer.accept") if a.outcome == "refused"]
    assert [(a.reason, a.subject, json.loads(a.details)["offer"]) for a in refused] == [
        ("conflict", episode_id, offer_id)
    ]
