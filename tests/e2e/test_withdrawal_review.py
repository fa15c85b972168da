"""Consent review fixes between real nodes (Camden asks, Hackney holds): a closure because consent was
withdrawn is pushed like a withdrawal, a withdrawal dated ahead stops sharing at once, an unusable
attested purpose or agency is a recorded refusal, and a found existence check names its episode in
the holder's audit."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.storage._tables import audit_entries, received_copies, register
from schemas import london_today

from .nodes import (
    CAMDEN,
    HACKNEY,
    PRACTITIONER,
    Node,
    ask,
    disclosure,
    eventually,
    existence_check,
    running,
    seed,
)


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path, auto_approve_roles=("Health visitor",))) as nodes:
        yield nodes


async def test_closing_because_consent_was_withdrawn_tells_the_recipients(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"
    closure = {"closed_on": london_today().isoformat(), "outcome": "consent_withdrawn"}
    status, closed = await hackney.call(
        "POST",
        f"/episodes/{episode['episode_id']}/events",
        json={"event": {"type": "closure", "closure": closure}},
    )
    assert status == 200, closed
    sent = await hackney.engine_rows(select(register.c.direction, register.c.withdrawn_at))
    assert [(r.direction, r.withdrawn_at is not None) for r in sent] == [("sent", True)]

    async def marked() -> bool:
        copies = await camden.engine_rows(select(received_copies.c.withdrawn_at))
        return len(copies) == 1 and copies[0].withdrawn_at is not None

    await eventually(marked)
    events = await hackney.engine_rows(
        select(audit_entries.c.details).where(audit_entries.c.action == "episode.event")
    )
    assert [json.loads(e.details)["pushed"] for e in events] == [1]


async def test_a_withdrawal_dated_ahead_stops_a_disclosure_at_once(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    ahead = (london_today() + dt.timedelta(days=365)).isoformat()
    later = {**episode, "episode_id": str(uuid.uuid4())}
    later["consents"] = [{**c, "withdrawn_on": ahead} for c in episode["consents"]]
    status, answer = await hackney.call(
        "POST", "/forms", json=later, headers={"Content-Type": "application/json"}
    )
    assert status == 201, answer
    refused = await ask(camden, disclosure(later))
    assert (refused["state"], refused["error"]) == ("refused", "consent_withdrawn"), refused


async def test_an_unusable_attested_purpose_or_agency_is_a_recorded_refusal(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    for changes in (
        {"purpose": "-"},
        {"practitioner": {**PRACTITIONER, "agency": " "}},
    ):
        refused = await ask(camden, disclosure(episode, **changes))
        assert refused["error"] == "attestation_invalid", refused
    rows = await hackney.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.reason, audit_entries.c.subject).where(
            audit_entries.c.action == "federation.disclosure"
        )
    )
    assert [tuple(r) for r in rows] == [
        ("refused", "attestation_invalid", episode["episode_id"])
    ] * 2


async def test_a_found_existence_check_names_its_episode_in_the_holders_audit(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    checked = await ask(camden, existence_check(episode))
    assert checked["answer"]["outcome"] == "found", checked
    rows = await hackney.engine_rows(
        select(audit_entries.c.subject, audit_entries.c.details).where(
            audit_entries.c.action == "federation.existence_check"
        )
    )
    assert [(r.subject, json.loads(r.details)["answer"]) for r in rows] == [
        (episode["episode_id"], "found")
    ]
