"""The protocol's story, told against running nodes through their `/api/v1` (what `cafx demo scenario`
runs, and what the end-to-end test runs too):

    check -> verify -> found -> disclosure refused for an excluded agency -> permitted for a consented
    one -> consent withdrawn and pushed -> transfer refused until the family consents -> transfer
    to another borough
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from schemas import london_today

__all__ = ["DemoNode", "ScenarioFailed", "run_scenario"]

Echo = Callable[[str], None]


class ScenarioFailed(RuntimeError):
    """A step of the story did not turn out as the protocol says it must."""


@dataclass
class DemoNode:
    gss: str
    name: str
    api_url: str  # .../api/v1
    token: str
    lead_contacts: list[str]

    async def call(
        self, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with session.request(method, self.api_url + path, headers=headers, **kwargs) as reply:
            return reply.status, await reply.json()


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ScenarioFailed(what)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise ScenarioFailed(f"timed out waiting: {what}")
        await asyncio.sleep(0.3)


async def run_scenario(
    home: DemoNode, holder: DemoNode, receiver: DemoNode, form: bytes, echo: Echo
) -> None:
    """Run the story; `form` is the holder's local CAF form for the child (eCAF XML)."""
    async with aiohttp.ClientSession() as session:
        status, answer = await holder.call(session, "POST", "/forms", data=form)
        _expect(status == 201, f"{holder.name} did not take the form ({status})")
        episode_id = answer["episode_ids"][0]
        status, episode = await holder.call(session, "GET", f"/episodes/{episode_id}")
        child = episode["child"]
        echo(f"1. {holder.name} holds an episode for a child (from its eCAF export): {episode_id}")

        practitioner = {
            "id": f"{home.gss}-hv-1",
            "name": "Demo Health Visitor",
            "role": "Health visitor",
            "agency": f"{home.name} health visiting",
            "agency_type": "health",
        }
        status, request = await home.call(
            session,
            "POST",
            "/requests",
            json={
                "kind": "existence_check",
                "practitioner": practitioner,
                "purpose": "early_help",
                "reason": "the family has moved into our area",
                "target_authority": holder.gss,
                "child": {
                    "given_names": child["given_names"],
                    "family_name": child["family_name"],
                    "date_of_birth": child["date_of_birth"],
                },
            },
        )
        _expect(status == 201, f"the existence check was not accepted ({status})")
        echo(
            f"2. A {home.name} health visitor asks whether a CAF exists in {holder.name}: {request['state']}"
        )

        async def decide(request_id: str, lead: str) -> dict[str, Any]:
            status, record = await home.call(
                session,
                "POST",
                f"/requests/{request_id}/decision",
                json={"decision": "approve", "lead_contact_id": lead, "note": "verified by phone"},
            )
            _expect(status == 200, f"the lead contact's decision failed ({status})")
            return dict(record)

        record = await decide(request["request_id"], home.lead_contacts[0])
        _expect(record["state"] == "answered", f"no answer: {record.get('error')}")
        found = record["answer"]
        _expect(found["outcome"] == "found", f"expected found, got {found['outcome']}")
        echo(
            f"3. {home.name}'s lead CAF contact verifies the request; {holder.name} answers: found "
            f"(state {found['state']}, lead professional {found['lead_professional']['name']})"
        )

        async def disclosure(agency_type: str, role: str) -> dict[str, Any]:
            asker = {
                **practitioner,
                "id": f"{home.gss}-{agency_type}",
                "role": role,
                "agency_type": agency_type,
            }
            status, request = await home.call(
                session,
                "POST",
                "/requests",
                json={
                    "kind": "disclosure",
                    "practitioner": asker,
                    "purpose": "early_help",
                    "reason": "to join the Team Around the Child",
                    "target_authority": holder.gss,
                    "episode_ref": found["episode_ref"],
                    "sections": ["assessments", "delivery_plan"],
                },
            )
            _expect(status == 201, f"the disclosure request was not accepted ({status})")
            return await decide(request["request_id"], home.lead_contacts[0])

        refused = await disclosure("youth_justice", "Youth justice worker")
        _expect(refused["state"] == "refused", "an excluded agency was not refused")
        echo(
            f"4. Disclosure to youth justice (excluded by the family): refused, {refused['error']}"
        )
        permitted = await disclosure("health", "Health visitor")
        _expect(permitted["state"] == "answered", "a consented agency was refused")
        sections = ", ".join(permitted["answer"]["sections"])
        echo(f"5. Disclosure to health (consented): permitted, sections {sections}, receipt signed")

        status, withdrawn = await holder.call(
            session, "POST", f"/episodes/{episode_id}/consents/C1/withdraw", json={}
        )
        _expect(status == 200 and withdrawn["changed"], "consent was not withdrawn")

        async def marked() -> bool:
            status, register = await home.call(session, "GET", f"/register?episode={episode_id}")
            return status == 200 and all(e["withdrawn_at"] for e in register["entries"])

        await _until(marked, "the withdrawal to reach the recipient")
        echo(
            f"6. The family withdraws consent in {holder.name}; {home.name}'s copy is marked withdrawn"
        )

        move = {"to": receiver.gss, "lead_contact_id": holder.lead_contacts[0]}
        status, refused = await holder.call(
            session, "POST", f"/episodes/{episode_id}/transfer", json=move
        )
        _expect(
            (status, refused.get("error")) == (403, "consent_withdrawn"),
            f"a transfer went ahead without consent ({status})",
        )
        status, _ = await holder.call(
            session,
            "POST",
            f"/episodes/{episode_id}/consents",
            json={
                "consent_id": "C2",
                "given_by": [{"role": "parent_carer", "name": "Demo Parent"}],
                "given_on": str(london_today()),
                "method": "written",
                "storage_agreed": True,
                "purposes": ["early_help"],
                "share_with": [{"agency_type": "early_help", "authority": receiver.gss}],
            },
        )
        _expect(status == 201, f"the family's consent to the move was not recorded ({status})")
        echo(
            f"7. The family moves to {receiver.name}: the transfer is refused, consent_withdrawn, "
            f"until the family consents to {receiver.name}'s early help service taking the episode"
        )

        status, offer = await holder.call(
            session, "POST", f"/episodes/{episode_id}/transfer", json=move
        )
        _expect(status == 201, f"the transfer was not offered ({status})")

        async def offered() -> bool:
            status, incoming = await receiver.call(session, "GET", "/transfers")
            return any(t["offer_id"] == offer["offer_id"] for t in incoming["transfers"])

        await _until(offered, "the transfer offer to arrive")
        lead = {
            "name": "Demo Lead Professional",
            "organisation": f"{receiver.name} Family Hub",
            "agency_type": "early_help",
            "authority": receiver.gss,
        }
        status, _ = await receiver.call(
            session,
            "POST",
            f"/transfers/{offer['offer_id']}/accept",
            json={"lead_contact_id": receiver.lead_contacts[0], "lead_professional": lead},
        )
        _expect(status == 200, f"the transfer was not accepted ({status})")

        async def moved() -> bool:
            status, _ = await receiver.call(session, "GET", f"/episodes/{episode_id}")
            return status == 200

        await _until(moved, "the episode to arrive")
        status, old = await holder.call(session, "GET", f"/episodes/{episode_id}")
        _expect(old["state"] == "transferred", "the old copy is not read-only")
        echo(
            f"8. The child moves: {holder.name} offers, {receiver.name} accepts with a new lead "
            f"professional, the episode moves with its history; {holder.name}'s copy is read-only"
        )

        # Subject access (DESIGN 3.8): the family asks each borough who has seen the child's data.
        keys = {
            "given_name": child["given_names"],
            "family_name": child["family_name"],
            "date_of_birth": child["date_of_birth"],
        }
        names = {node.gss: node.name for node in (home, holder, receiver)}

        async def registered(node: DemoNode) -> dict[str, Any]:
            status, found = await node.call(session, "GET", "/register", params=keys)
            _expect(status == 200, f"{node.name}'s register per child failed ({status})")
            this = [m for m in found["matches"] if m["episode_id"] == episode_id]
            _expect(len(this) == 1, f"{node.name}'s register does not find the child's episode")
            return dict(this[0])

        received, sent = await registered(home), await registered(holder)
        _expect(
            not received["held"] and [e["direction"] for e in received["entries"]] == ["received"],
            f"{home.name}'s register per child does not list what it received",
        )
        _expect(received["entries"][0]["withdrawn_at"] is not None, "the withdrawal is not shown")
        to = ", ".join(names.get(e["counterpart"], e["counterpart"]) for e in sent["entries"])
        echo(
            f"9. Subject access: asked by the child's name and date of birth, {home.name}'s "
            f"register lists the disclosure it received from {holder.name} (consent since "
            f"withdrawn); {holder.name}'s lists what it sent, to {to}"
        )
