"""Storage review fixes at the edge, on SQLite and PostgreSQL: values kept in plain columns are
bounded and free of control characters (a 422 naming the rule, never a PostgreSQL 500), a form's
duplicate-id check works for any number of ids and a form holds a bounded number of episodes, a
client's override time limit is stored as the instant it names, and SQLite acknowledges a commit
only once it is on disk."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, insert, select, text

from gateway.api._forms import MAX_EPISODES_PER_FORM, _any_stored
from gateway.app import create_app
from gateway.demo import plan_federation
from gateway.keys import ENGINE
from gateway.storage import aware_utc, create_engine, upgrade
from gateway.storage._tables import audit_entries, episodes, overrides

from ..conftest import Database
from ..e2e.nodes import CAMDEN, HACKNEY, ask, disclosure, login, running, seed
from .node import node_settings, register_system

SCOPES = ["episodes:read", "episodes:write", "consents:write"]
VALID = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "national" / "valid-episode.json").read_text()
)
# What an ANSI escape and a NUL look like in an id: PostgreSQL refused the NUL with a 500.
CONTROLS = ["C\u0000", "C\u001b[31m", "C\u007f", "C\u0085", "C-1\n", "\tC"]


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, SCOPES)
    return http, {"Authorization": f"Bearer {await system.token(http)}"}


def _episode(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(VALID)
    document["episode_id"] = str(uuid.uuid4())
    document.update(changes)
    return document


async def _national(
    http: TestClient[Any, Any], auth: dict[str, str], document: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    response = await http.post(
        "/api/v1/forms?format=national-json", data=json.dumps(document).encode(), headers=auth
    )
    return response.status, await response.json()


def _rules(answer: dict[str, Any]) -> set[tuple[str, str]]:
    """(location, rule) of every problem, in the error body or in the answer's rejected records."""
    found = {(p["location"], p["rule"]) for p in answer.get("problems", [])}
    for rejected in answer.get("rejected", []):
        found |= {(p["location"], p["rule"]) for p in rejected["problems"]}
    return found


async def _stored_episodes(http: TestClient[Any, Any]) -> int:
    async with http.app[ENGINE].connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(episodes)) or 0)


# --- finding 1: source.format -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("x" * 33, "string_too_long"),
        ("a\u0000b", "text.control_characters"),  # refused as the JSON is read
        ("a\u2028b", "text.not_printable"),
    ],
    ids=["33-characters", "nul", "line-separator"],
)
async def test_a_source_format_the_column_cannot_hold_is_a_located_422(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, value: str, rule: str
) -> None:
    """A 500 on PostgreSQL (StringDataRightTruncation, or NUL), stored as sent on SQLite."""
    http, auth = await _node(aiohttp_client, database, tmp_path)
    received = VALID["source"]["received_at"]
    status, answer = await _national(
        http, auth, _episode(source={"format": value, "received_at": received})
    )
    assert status == 422, answer
    assert any(location.endswith("/source/format") and r == rule for location, r in _rules(answer))
    assert await _stored_episodes(http) == 0
    status, answer = await _national(
        http, auth, _episode(source={"format": "y" * 32, "received_at": received})
    )
    assert status == 201, answer  # 32 printable characters fit the column


# --- finding 4: consent ids ---------------------------------------------------------------------


async def test_a_consent_id_with_control_characters_or_too_long_is_refused_at_the_edge(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """`C\\x00\\x1b[31m` was recorded (201) and withdrawn (200); on PostgreSQL the register and
    received_withdrawals inserts that name it then failed on every retry."""
    http, auth = await _node(aiohttp_client, database, tmp_path)
    status, answer = await _national(http, auth, _episode())
    assert status == 201, answer
    url = f"/api/v1/episodes/{answer['episode_ids'][0]}/consents"
    statement = {
        "given_by": [{"role": "parent_carer", "name": "A Parent"}],
        "given_on": "2026-04-01",
        "method": "written",
        "storage_agreed": True,
    }
    for consent_id, rule in [
        *((c, "text.control_characters") for c in CONTROLS),
        ("C" * 65, "string_too_long"),
    ]:
        refused = await http.post(url, json={**statement, "consent_id": consent_id}, headers=auth)
        body = await refused.json()
        assert refused.status == 422, body
        assert [(p["location"], p["rule"]) for p in body["problems"]] == [("/consent_id", rule)]
        assert consent_id not in await refused.text()
    # Ids of any other character still work, a comma and non-ASCII letters included.
    for consent_id in ("C-2026.04, verbal", "Zoë’s consent", "C" * 64):
        recorded = await http.post(url, json={**statement, "consent_id": consent_id}, headers=auth)
        assert recorded.status == 201, await recorded.text()
        withdrawn = await http.post(f"{url}/{consent_id}/withdraw", json={}, headers=auth)
        assert withdrawn.status == 200, await withdrawn.text()


async def test_a_national_document_with_such_a_consent_id_is_refused_where_it_stands(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, auth = await _node(aiohttp_client, database, tmp_path)
    for consent_id, rule in [
        *((c, "text.control_characters") for c in CONTROLS),
        ("C" * 201, "string_too_long"),
    ]:
        consents = [{**VALID["consents"][0], "consent_id": consent_id}]
        status, answer = await _national(http, auth, _episode(consents=consents))
        assert status == 422, answer
        assert any(
            location.endswith("/consents/0/consent_id") and r == rule
            for location, r in _rules(answer)
        ), answer
    assert await _stored_episodes(http) == 0
    consents = [{**VALID["consents"][0], "consent_id": "C" * 200}]
    status, answer = await _national(http, auth, _episode(consents=consents))
    assert status == 201, answer


# --- finding 2: the duplicate check and the size of a form -----------------------------------


async def test_the_duplicate_check_takes_more_ids_than_one_postgresql_statement(
    database: Database,
) -> None:
    """One `IN (...)` with a parameter per episode: asyncpg refuses more than 32,767 (a 500)."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        now = dt.datetime.now(dt.UTC)
        stored = str(uuid.uuid4())
        async with engine.begin() as connection:
            await connection.execute(
                insert(episodes).values(
                    id=stored,
                    home_authority="E09000007",
                    state="open",
                    source_format="national-json",
                    revision=1,
                    created_at=now,
                    updated_at=now,
                    key_id="k1",
                    document=b"sealed",
                )
            )
        others = [str(uuid.uuid4()) for _ in range(40_000)]
        async with engine.connect() as connection:
            assert await _any_stored(connection, others) is False
            assert await _any_stored(connection, [*others, stored]) is True  # in the last chunk
            assert await _any_stored(connection, []) is False
    finally:
        await engine.dispose()


REGISTER_HEADER = (
    "caf_ref,la_code,child_forename,child_surname,dob,gender,postcode,nhs_number,upn,"
    "initiating_agency,agency_type,assessment_completed,lead_practitioner,lp_agency,lp_phone,"
    "status,closed_date,closure_outcome\n"
)


def _register(rows: int) -> bytes:
    lines = [f"C{n},211,A,B,29/05/2021,Male,,,,X,social_care,,,,,Open,," for n in range(rows)]
    return (REGISTER_HEADER + "\n".join(lines) + "\n").encode()


async def test_a_form_over_the_episode_limit_is_413_and_keeps_nothing(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """34,000 register rows held SQLite's one writer for 37 s (and were a 500 on PostgreSQL)."""
    http, auth = await _node(aiohttp_client, database, tmp_path)
    response = await http.post(
        "/api/v1/forms?format=caf-register-csv",
        data=_register(MAX_EPISODES_PER_FORM + 1),
        headers=auth,
    )
    body = await response.json()
    assert response.status == 413, body
    assert body["error"] == "payload_too_large"
    assert [(p["location"], p["rule"]) for p in body["problems"]] == [
        ("/", "form.too_many_episodes")
    ]
    assert await _stored_episodes(http) == 0
    async with http.app[ENGINE].connect() as connection:
        audited = (
            await connection.execute(
                select(audit_entries.c.outcome, audit_entries.c.reason).where(
                    audit_entries.c.action == "form.submit"
                )
            )
        ).all()
    assert [tuple(a) for a in audited] == [("failed", "payload_too_large")]
    small = await http.post(
        "/api/v1/forms?format=caf-register-csv", data=_register(3), headers=auth
    )
    assert small.status == 201, await small.text()


# --- finding 6: an override's time limit ----------------------------------------------------


async def test_an_override_time_limit_with_an_offset_is_stored_as_that_instant(
    tmp_path: Path,
) -> None:
    """SQLite kept the wall time of `12:00+01:00` and dropped the offset: read back as 12:00 UTC,
    an hour late (PostgreSQL stored 11:00 UTC)."""
    plans = plan_federation(tmp_path, auto_approve_roles=("Health visitor",))
    async with running(plans) as federation:
        camden, hackney = federation[CAMDEN], federation[HACKNEY]
        episode = await seed(hackney)
        plus_one = dt.timezone(dt.timedelta(hours=1))
        limit = (dt.datetime.now(plus_one) + dt.timedelta(days=2)).replace(microsecond=0)
        override = {
            "justification": "Safeguarding concern reported tonight; consent cannot be sought.",
            "expires_at": limit.isoformat(),
        }
        raised = await ask(camden, disclosure(episode, override=override))
        assert raised["state"] == "awaiting_second_approval", raised
        await login(camden, name="second-lead-system")
        second = camden.plan.borough.lead_contacts()[1]
        status, done = await camden.call(
            "POST",
            f"/requests/{raised['request_id']}/decision",
            json={"decision": "approve", "lead_contact_id": second},
        )
        assert status == 200, done
        [stored] = await camden.engine_rows(select(overrides.c.expires_at))
    assert aware_utc(stored.expires_at) == limit


# --- finding 7: durable commits on SQLite -------------------------------------------------------


async def test_sqlite_syncs_every_commit(tmp_path: Path) -> None:
    """`synchronous=NORMAL` in WAL mode syncs at checkpoints only: a power cut could undo a commit
    already acknowledged (a 201, a federation message acked as applied exactly once)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'node.sqlite3'}")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA synchronous")) == 2  # FULL
    finally:
        await engine.dispose()
