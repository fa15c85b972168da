"""Consent review fixes on one real node (SQLite and PostgreSQL) and in the pure engine: statement ids
are distinct, a withdrawal or a consent_withdrawn closure cannot be scheduled, a parent/carer without
parental responsibility is known however the name is written, and a withdrawal finds a basis whose
statement id holds a comma."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError
from pytest_aiohttp import AiohttpClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.consent import ConsentRequest, DenialCode, Outcome, Recipient, Rule, decide
from gateway.episodes import EventBody, apply_event
from gateway.errors import SchemaViolation
from gateway.federation.outbox import Outbox
from gateway.federation.withdrawals import (
    basis_text,
    mark_known_withdrawals,
    names_statement,
    push_withdrawal,
)
from gateway.protection import KeyRing
from gateway.storage._tables import received_copies, received_withdrawals, register
from schemas import AgencyType, Episode, london_today, problems_from

from ..conftest import Database
from .node import node_settings, register_system
from .test_consent import ask, episode, stmt

VALID = Path(__file__).resolve().parent.parent / "fixtures" / "national" / "valid-episode.json"
SCOPES = ["episodes:read", "episodes:write", "consents:write", "audit:read", "register:read"]
CAMDEN, HACKNEY = "E09000007", "E09000012"


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(VALID.read_text(encoding="utf-8"))
    document["episode_id"] = str(uuid.uuid4())
    document.update(changes)
    return document


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, SCOPES)
    return http, {"Authorization": f"Bearer {await system.token(http)}"}


# 1. A statement id names one statement ------------------------------------------------------------


def test_an_episode_with_two_statements_of_one_id_is_refused_where_the_repeat_stands() -> None:
    document = _document()
    first = document["consents"][0]
    document["consents"] = [
        first,
        {**first, "given_on": "2026-03-01"},
        {**first, "consent_id": "C2"},
    ]
    with pytest.raises(ValidationError) as caught:
        Episode.model_validate(document)
    problems = problems_from(caught.value)
    assert [(p.path, p.rule) for p in problems] == [
        (("consents", 1, "consent_id"), "consents.duplicate_id")
    ]
    assert "C1" not in str(caught.value)  # ids are free text: never echoed


async def test_a_form_repeating_a_statement_id_is_not_stored(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path)
    document = _document()
    document["consents"] = [document["consents"][0]] * 2
    response = await http.post("/api/v1/forms", json=document, headers=auth)
    answer = await response.json()
    assert (response.status, answer["error"]) == (422, "schema_violation"), answer
    assert [(p["location"], p["rule"]) for p in answer["problems"]] == [
        ("/consents/1/consent_id", "consents.duplicate_id")
    ], answer
    missing = await http.get(f"/api/v1/episodes/{document['episode_id']}", headers=auth)
    assert missing.status == 404


# 3. A family's "no" cannot be scheduled ------------------------------------------------------------


def test_a_withdrawal_or_closure_dated_ahead_counts_from_the_day_decided() -> None:
    today = london_today()
    ahead = (today + dt.timedelta(days=365)).isoformat()
    now = ConsentRequest(
        Recipient(AgencyType.HEALTH, None, HACKNEY), "early_help", None, today, today
    )
    for ep, rule in (
        (episode(stmt(given_on="2020-01-01", withdrawn_on=ahead)), Rule.WITHDRAWN),
        (
            episode(stmt(given_on="2020-01-01"), closed=(ahead, "consent_withdrawn")),
            Rule.CLOSED_CONSENT_WITHDRAWN,
        ),
    ):
        decision = decide(ep, now)
        assert (decision.outcome, decision.code, decision.rule) == (
            Outcome.DENY,
            DenialCode.CONSENT_WITHDRAWN,
            rule,
        )
        # A day before the question was asked is still answered as the dates were recorded.
        earlier = decide(ep, ask(at=(today - dt.timedelta(days=1)).isoformat()))
        assert earlier.outcome is Outcome.PERMIT


def test_a_closure_cannot_be_dated_ahead() -> None:
    tomorrow = (london_today() + dt.timedelta(days=1)).isoformat()
    body = EventBody.model_validate(
        {
            "event": {
                "type": "closure",
                "closure": {"closed_on": tomorrow, "outcome": "consent_withdrawn"},
            }
        }
    )
    with pytest.raises(SchemaViolation) as caught:
        apply_event(episode(stmt()), body.event)
    assert [(p.path, p.rule) for p in caught.value.problems] == [
        (("event", "closure", "closed_on"), "dates.closure_in_future")
    ]


async def test_an_imported_withdrawal_dated_ahead_stops_sharing_now(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path)
    document = _document()
    ahead = (london_today() + dt.timedelta(days=30)).isoformat()
    document["consents"][0]["withdrawn_on"] = ahead
    stored = await http.post("/api/v1/forms", json=document, headers=auth)
    assert stored.status == 201, await stored.text()
    url = f"/api/v1/episodes/{document['episode_id']}"
    checked = await http.post(
        f"{url}/consent-check",
        json={"recipient": {"agency_type": "health"}, "purpose": "early_help"},
        headers=auth,
    )
    answer = await checked.json()
    assert (answer["decision"], answer["code"]) == ("deny", "consent_withdrawn"), answer
    closure = {"closed_on": ahead, "outcome": "consent_withdrawn"}
    closed = await http.post(
        f"{url}/events", json={"event": {"type": "closure", "closure": closure}}, headers=auth
    )
    problem = await closed.json()
    assert closed.status == 422, problem
    assert problem["problems"][0]["location"] == "/event/closure/closed_on"


# 4. Parental responsibility whatever the spelling -------------------------------------------------

WITHOUT_PR = [
    {"name": "Testparent, Alex", "relationship": "Father", "parental_responsibility": False}
]


@pytest.mark.parametrize(
    "giver",
    [
        "Testparent, Alex",
        "Alex Testparent",
        "Mr A Testparent",
        "A. TESTPARENT",
        "Dr Alex Testparent",
    ],
)
def test_a_giver_recorded_without_parental_responsibility_is_known_however_written(
    giver: str,
) -> None:
    statement = stmt()
    statement["given_by"] = [{"role": "parent_carer", "name": giver}]
    decision = decide(episode(statement, carers=WITHOUT_PR), ask())
    assert (decision.outcome, decision.rule) == (Outcome.DENY, Rule.PARENTAL_RESPONSIBILITY)


@pytest.mark.parametrize("giver", ["Testparent", "Sam Testparent", "A T"])
def test_a_giver_who_may_be_a_carer_without_parental_responsibility_is_refused(giver: str) -> None:
    """Not the recorded carer's words, but it cannot be ruled out: fail closed."""
    statement = stmt()
    statement["given_by"] = [{"role": "parent_carer", "name": giver}]
    decision = decide(episode(statement, carers=WITHOUT_PR), ask())
    assert (decision.outcome, decision.rule) == (Outcome.DENY, Rule.PARENTAL_RESPONSIBILITY)


def test_givers_are_told_apart_from_a_carer_without_parental_responsibility() -> None:
    carers = [
        *WITHOUT_PR,
        {"name": "Alice Testparent", "relationship": "Mother", "parental_responsibility": True},
    ]
    for giver, outcome in (
        ("Alice Testparent", Outcome.PERMIT),  # recorded with it, word for word
        ("Mrs Alice TESTPARENT", Outcome.PERMIT),
        ("A Testparent", Outcome.DENY),  # may be either: fail closed
        ("Jo Bloggs", Outcome.PERMIT),  # not listed, nothing in common: taken at the form's word
    ):
        statement = stmt()
        statement["given_by"] = [{"role": "parent_carer", "name": giver}]
        assert decide(episode(statement, carers=carers), ask()).outcome is outcome, giver


# 5. A statement id with a comma --------------------------------------------------------------------


def _row(episode_id: str, counterpart: str, basis: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "episode_id": episode_id,
        "direction": "sent",
        "counterpart": counterpart,
        "requested_by": "p",
        "sections": ["assessments"],
        "basis": basis,
        "override": False,
        "disclosed_at": dt.datetime.now(dt.UTC),
    }


def test_a_basis_keeps_each_id_whole() -> None:
    assert basis_text(["C1", "C2"]) == "C1,C2"  # as the register always showed it
    kept = basis_text(["C1", "CAF/2026,1"])
    assert names_statement(kept, "CAF/2026,1") and names_statement(kept, "C1")
    assert not names_statement(kept, "CAF/2026") and not names_statement(kept, "1")
    assert names_statement("C1,CAF/2026,1", "CAF/2026,1")  # an older row, or a receiver's
    assert not names_statement("C10,C2", "C1")


async def test_withdrawing_a_statement_whose_id_holds_a_comma_reaches_its_recipients(
    engine: AsyncEngine,
) -> None:
    episode_id = str(uuid.uuid4())
    written = basis_text(sorted(["CAF/2026,1", "C2"]))
    async with engine.begin() as connection:
        await connection.execute(insert(register).values(_row(episode_id, HACKNEY, written)))
        await connection.execute(insert(register).values(_row(episode_id, CAMDEN, "C2")))
        outbox = Outbox(engine, KeyRing.generate("k1"))  # with none, nothing is marked
        told = await push_withdrawal(connection, outbox, episode_id, "CAF/2026,1")
    assert told == 1
    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(register.c.counterpart, register.c.withdrawn_at))
        ).all()
    assert {r.counterpart: r.withdrawn_at is not None for r in rows} == {
        HACKNEY: True,
        CAMDEN: False,
    }

    # The receiving side: a copy whose basis the holder wrote comma-joined is marked too.
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as connection:
        await connection.execute(
            insert(received_copies).values(
                id="c1",
                request_id="r1",
                holder=HACKNEY,
                episode_ref=episode_id,
                basis="C2,CAF/2026,1",
                received_at=now,
                key_id="k",
                sealed=b"not read",
            )
        )
        await connection.execute(
            insert(received_withdrawals).values(
                holder=HACKNEY, episode_ref=episode_id, consent_id="CAF/2026,1", received_at=now
            )
        )
        await mark_known_withdrawals(connection, HACKNEY, episode_id)
    async with engine.connect() as connection:
        marked = (await connection.execute(select(received_copies.c.withdrawn_at))).scalar_one()
    assert marked is not None
