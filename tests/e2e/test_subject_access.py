"""Subject access between real nodes: the sharing register of one child, found by the child's match
keys on the holder's side (the episodes it holds) and on the requester's side (the episodes other
members answered its requests with), DESIGN 3.8; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, select

from gateway.cli import cli
from gateway.federation.practitioner import remember_answered_children
from gateway.keys import AUDIT, ENGINE, EPISODES
from gateway.retention import apply_retention
from gateway.storage._tables import (
    audit_entries,
    practitioner_requests,
    received_child_index,
    received_children,
)
from schemas import london_today

from ..gateway.node import cli_env
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


async def _child_register(node: Node, **keys: str) -> list[dict[str, Any]]:
    status, body = await node.call("GET", "/register", params=keys)
    assert status == 200, body
    assert list(body) == ["matches"]
    return list(body["matches"])


async def _register_reads(node: Node) -> list[tuple[str, dict[str, Any]]]:
    rows = await node.engine_rows(
        select(audit_entries.c.outcome, audit_entries.c.details)
        .where(audit_entries.c.action == "register.read")
        .order_by(audit_entries.c.sequence)
    )
    return [(r.outcome, json.loads(r.details)) for r in rows]


async def test_one_childs_register_on_the_holders_side_and_the_requesters(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    episode_id = episode["episode_id"]
    nhs_number = episode["child"]["identifiers"]["nhs_number"]
    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    # A disclosure asked by episode reference alone: found through what the check told.
    assert (await ask(camden, disclosure(episode)))["state"] == "answered"

    [held] = await _child_register(hackney, **_by_names(episode))
    assert (held["episode_id"], held["held"], held["basis"]) == (
        episode_id,
        True,
        "name+dob exact",
    )
    assert [(e["direction"], e["counterpart"]) for e in held["entries"]] == [("sent", CAMDEN)]

    [received] = await _child_register(camden, **_by_names(episode))
    assert (received["episode_id"], received["held"]) == (episode_id, False)
    assert [(e["direction"], e["counterpart"], e["sections"]) for e in received["entries"]] == [
        ("received", HACKNEY, ["assessments", "delivery_plan"])
    ]

    # The practitioner asked by names and date of birth, and the child section was not disclosed:
    # nothing here knows the NHS number yet. A disclosure of the child section tells it.
    assert await _child_register(camden, nhs_number=nhs_number) == []
    child_section = disclosure(episode, sections=["child"], reason="contact details")
    assert (await ask(camden, child_section))["state"] == "answered"
    [by_number] = await _child_register(camden, nhs_number=nhs_number)
    assert (by_number["episode_id"], by_number["basis"]) == (episode_id, "nhs_number")
    assert [e["sections"] for e in by_number["entries"]] == [
        ["assessments", "delivery_plan"],
        ["child"],
    ]

    # Another child: nothing on either side.
    other = {**_by_names(episode), "date_of_birth": "2011-01-01", "given_name": "Someone"}
    for node in (camden, hackney):
        assert await _child_register(node, **other) == []

    # Each read is audited naming the episodes it showed and the keys it was given, never their
    # values.
    reads = await _register_reads(camden)
    assert reads[:2] == [
        ("success", {"keys": ["date_of_birth"], "results": 1, "episodes": [episode_id]}),
        ("success", {"keys": ["nhs_number"], "results": 0, "episodes": []}),
    ]
    said = json.dumps(reads)
    assert nhs_number not in said and episode["child"]["family_name"] not in said

    # What the requests told of the child goes 7 years after the latest of them (retention).
    assert camden.runner is not None
    app = camden.runner.app
    later = london_today() + relativedelta(years=7)
    gone = await apply_retention(app[ENGINE], app[EPISODES], app[AUDIT], later)
    assert gone.records["received_child.purge"] == 1
    assert await camden.engine_rows(select(received_children)) == []
    assert await camden.engine_rows(select(received_child_index)) == []


async def test_what_each_answered_request_tells_is_kept_per_episode(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    unknown = existence_check(episode, child={**match_keys(episode), "date_of_birth": "2012-02-02"})
    assert (await ask(camden, unknown))["answer"]["outcome"] == "not_found"
    assert await camden.engine_rows(select(received_children)) == []

    index = select(received_child_index.c.kind, received_child_index.c.value)
    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    first = sorted(await camden.engine_rows(index))
    assert first
    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    [row] = await camden.engine_rows(select(received_children))
    assert row.episode_ref == episode["episode_id"]
    assert sorted(await camden.engine_rows(index)) == first  # the same child told twice
    # The request that told it can go (retention) without taking the child with it.
    assert camden.runner is not None
    async with camden.runner.app[ENGINE].begin() as connection:
        await connection.execute(delete(practitioner_requests))
    assert len(await _child_register(camden, **_by_names(episode))) == 1


async def test_the_register_per_child_is_made_for_requests_answered_before_it(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    episode = await seed(hackney)
    assert (await ask(camden, existence_check(episode)))["answer"]["outcome"] == "found"
    assert camden.runner is not None
    app = camden.runner.app
    [made] = await camden.engine_rows(select(received_children))
    index = sorted(
        await camden.engine_rows(select(received_child_index.c.kind, received_child_index.c.value))
    )
    async with app[ENGINE].begin() as connection:  # as a node upgraded to migration 0019 has it
        await connection.execute(delete(received_children))
    assert await _child_register(camden, **_by_names(episode)) == []

    env = cli_env(camden.plan.settings)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["register", "reindex"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 answered request(s) named an episode")
    for _ in range(2):  # again changes nothing
        assert await remember_answered_children(app[ENGINE], app[EPISODES].ring) == 1
        [again] = await camden.engine_rows(select(received_children))
        assert again.episode_ref == made.episode_ref
        [asked] = await camden.engine_rows(select(practitioner_requests.c.created_at))
        assert again.updated_at == asked.created_at  # its 7 years count from the request
        assert (
            sorted(
                await camden.engine_rows(
                    select(received_child_index.c.kind, received_child_index.c.value)
                )
            )
            == index
        )
    assert len(await _child_register(camden, **_by_names(episode))) == 1


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
    reads = await _register_reads(camden)
    assert [(outcome, d["rule"]) for outcome, d in reads] == [
        ("refused", "date.format"),
        ("refused", "nhs_number.checksum"),
    ]
    assert "9434765918" not in json.dumps(reads)
