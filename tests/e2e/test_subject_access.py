"""Subject access between real nodes: the sharing register of one child, found by the child's match
keys on the holder's side (the episodes it holds) and on the requester's side (the episodes other
members answered its requests with), DESIGN 3.8."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from gateway.keys import ENGINE
from gateway.storage._tables import audit_entries, practitioner_requests, requested_children

from .nodes import (
    CAMDEN,
    HACKNEY,
    Node,
    ask,
    disclosure,
    existence_check,
    federation_on,
    match_keys,
    seed,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def federation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, Node]]:
    async with federation_on(
        request.param, tmp_path, auto_approve_roles=("Health visitor",)
    ) as nodes:
        yield nodes


def _by_names(episode: dict[str, Any]) -> dict[str, str]:
    keys = match_keys(episode)
    return {
        "given_name": keys["given_names"],
        "family_name": keys["family_name"],
        "date_of_birth": keys["date_of_birth"],
    }


async def _child_register(node: Node, **keys: str) -> dict[str, Any]:
    status, body = await node.call("GET", "/register", params=keys)
    assert status == 200, body
    return dict(body)


async def test_one_childs_register_on_the_holders_side_and_the_requesters(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    nhs_number = episode["child"]["identifiers"]["nhs_number"]
    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"

    held = await _child_register(hackney, **_by_names(episode))
    assert [(m["episode_id"], m["held"], m["basis"]) for m in held["matches"]] == [
        (episode_id, True, "name+dob exact")
    ]
    assert [(e["direction"], e["counterpart"]) for e in held["entries"]] == [("sent", CAMDEN)]

    received = await _child_register(camden, **_by_names(episode))
    assert [(m["episode_id"], m["held"]) for m in received["matches"]] == [(episode_id, False)]
    assert [(e["direction"], e["counterpart"], e["episode_id"]) for e in received["entries"]] == [
        ("received", HACKNEY, episode_id)
    ]
    assert received["entries"][0]["sections"] == ["assessments", "delivery_plan"]

    # The practitioner asked by names and date of birth, and the child section was not disclosed:
    # nothing here knows the NHS number yet. A disclosure of the child section tells it.
    assert (await _child_register(camden, nhs_number=nhs_number))["matches"] == []
    child_section = disclosure(episode, sections=["child"], reason="contact details")
    assert (await ask(camden, child_section))["state"] == "answered"
    by_number = await _child_register(camden, nhs_number=nhs_number)
    assert [(m["episode_id"], m["basis"]) for m in by_number["matches"]] == [
        (episode_id, "nhs_number")
    ]
    assert [e["sections"] for e in by_number["entries"]] == [
        ["assessments", "delivery_plan"],
        ["child"],
    ]

    # Another child: nothing on either side.
    other = {**_by_names(episode), "date_of_birth": "2011-01-01", "given_name": "Someone"}
    for node in (camden, hackney):
        assert await _child_register(node, **other) == {
            "episode_id": None,
            "practitioner": None,
            "matches": [],
            "entries": [],
        }

    # Each read is audited with the names of the keys it was given, never their values.
    reads = await camden.engine_rows(
        select(audit_entries.c.details, audit_entries.c.outcome)
        .where(audit_entries.c.action == "register.read")
        .order_by(audit_entries.c.sequence)
    )
    details = [json.loads(r.details) for r in reads]
    assert details[0] == {"keys": ["date_of_birth"], "episodes": 1, "results": 1}
    assert details[1] == {"keys": ["nhs_number"], "episodes": 0, "results": 0}
    said = json.dumps(details)
    assert nhs_number not in said and episode["child"]["family_name"] not in said


async def test_a_request_answered_without_an_episode_indexes_no_child(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    unknown = existence_check(episode, child={**match_keys(episode), "date_of_birth": "2012-02-02"})
    assert (await ask(camden, unknown))["answer"]["outcome"] == "not_found"
    assert await camden.engine_rows(select(requested_children)) == []

    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    [(request_id, indexed)] = await camden.engine_rows(
        select(requested_children.c.request_id, func.count()).group_by(
            requested_children.c.request_id
        )
    )
    assert indexed > 0
    # The index goes with its request (retention deletes requests so).
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        await connection.execute(
            delete(practitioner_requests).where(practitioner_requests.c.id == request_id)
        )
    assert await camden.engine_rows(select(requested_children)) == []
    assert (await _child_register(camden, **_by_names(episode)))["matches"] == []


async def test_a_register_query_names_one_thing_and_a_bad_one_is_recorded(
    federation: dict[str, Node],
) -> None:
    camden = federation[CAMDEN]
    status, body = await camden.call(
        "GET", "/register", params={"practitioner": "p-1", "nhs_number": "9434765919"}
    )
    assert status == 400, body
    status, body = await camden.call(
        "GET",
        "/register",
        params={"given_name": "Ann", "family_name": "Smith", "date_of_birth": "2015-13-01"},
    )
    assert status == 422 and body["problems"][0]["rule"] == "date.format", body
    status, body = await camden.call("GET", "/register", params={"nhs_number": "9434765918"})
    assert status == 422 and body["problems"][0]["rule"] == "nhs_number.checksum", body
    refused = await camden.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.reason, audit_entries.c.details).where(
            audit_entries.c.action == "register.read"
        )
    )
    assert [(r.outcome, r.reason) for r in refused] == [
        ("refused", "schema_violation"),
        ("refused", "schema_violation"),
    ]
    assert "9434765918" not in json.dumps([r.details for r in refused])
