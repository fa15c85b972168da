"""/api/v1 end to end, as a borough system uses it, on SQLite and on PostgreSQL: register, get a
token, upload every example form, read episodes back in every format, search, record and withdraw
consent, ask for consent decisions, and check the audit chain (also after tampering)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from joserfc.jwk import OKPKey
from lxml import etree
from pytest_aiohttp import AiohttpClient
from sqlalchemy import Engine, delete, event, text, update

from adapters import get_adapter
from gateway.api import openapi_document, required_scope
from gateway.app import create_app
from gateway.audit import AuditDraft, Outcome, ProblemKind
from gateway.audit_log import AuditLog
from gateway.keys import AUDIT, ENGINE
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import audit_entries, episodes

from ..adapters.facts import EXAMPLES
from ..conftest import Database
from .node import MEMBER, BoroughSystem, node_settings, register_system

READ = AuditDraft(actor="client:a", action="episode.read", outcome=Outcome.SUCCESS)
ALL_SCOPES = ["episodes:read", "episodes:write", "consents:write", "audit:read", "register:read"]
FORMS = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and not p.name.endswith(".facts.json"))


async def _node(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    scopes: list[str] = ALL_SCOPES,
) -> tuple[TestClient[Any, Any], BoroughSystem, dict[str, str]]:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, scopes)
    token = await system.token(http)
    return http, system, {"Authorization": f"Bearer {token}"}


async def _upload(http: TestClient[Any, Any], auth: dict[str, str], form: Path) -> dict[str, Any]:
    response = await http.post("/api/v1/forms", data=form.read_bytes(), headers=auth)
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


async def test_every_example_form_in_and_back_out(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    for form in FORMS:
        answer = await _upload(http, auth, form)
        fmt = form.parent.name
        assert answer["format"] == fmt
        assert answer["episode_ids"]
        assert answer["fidelity"]["counts"]["rejected"] == 0
        for episode_id in answer["episode_ids"]:
            as_json = await http.get(f"/api/v1/episodes/{episode_id}", headers=auth)
            assert as_json.status == 200
            episode = await as_json.json()
            assert episode["episode_id"] == episode_id and episode["source"]["format"] == fmt
            as_xml = await http.get(
                f"/api/v1/episodes/{episode_id}", headers={**auth, "Accept": "application/xml"}
            )
            assert as_xml.content_type == "application/xml"
            root = etree.fromstring(await as_xml.read())
            assert root.findtext("{urn:caf:national:1}episode_id") == episode_id
            local = await http.get(f"/api/v1/episodes/{episode_id}?format={fmt}", headers=auth)
            assert local.status == 200
            assert local.content_type == get_adapter(fmt).media_type
            if len(answer["episode_ids"]) == 1:  # a child alone: its siblings are not in it
                assert local.headers["CAF-Fidelity"] == "not_carried=0, changed=0"
            # What comes back in the borough's own format reads back as the same episode.
            (again,) = get_adapter(fmt).to_national(await local.read()).episodes
            assert (
                again.child
                == get_adapter("national-json")
                .to_national(json.dumps(episode).encode())
                .episodes[0]
                .child
            )


async def test_a_format_that_cannot_hold_every_value_says_how_many_it_lost(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    url = f"/api/v1/episodes/{answer['episode_ids'][0]}"
    register = await http.get(f"{url}?format=caf-register-csv", headers=auth)
    assert register.status == 200
    said = dict(part.split("=") for part in register.headers["CAF-Fidelity"].split(", "))
    assert int(said["not_carried"]) > 50  # parents, assessments, plan...: no register column
    national = await http.get(f"{url}?format=national-xml", headers=auth)
    assert national.headers["CAF-Fidelity"] == "not_carried=0, changed=0"
    plain = await http.get(url, headers=auth)
    assert "CAF-Fidelity" not in plain.headers


async def test_idempotent_retry_and_reuse_of_a_key(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    form = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    headers = {**auth, "Idempotency-Key": "upload-42"}
    first = await http.post("/api/v1/forms", data=form.read_bytes(), headers=headers)
    retry = await http.post("/api/v1/forms", data=form.read_bytes(), headers=headers)
    assert first.status == retry.status == 201
    assert (await first.json())["episode_ids"] == (await retry.json())["episode_ids"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    async with http.app[ENGINE].connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM episodes"))).scalar_one()
    assert count == 1
    other = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml"
    reused = await http.post("/api/v1/forms", data=other.read_bytes(), headers=headers)
    assert reused.status == 409
    assert (await reused.json())["error"] == "idempotency_key_reused"


async def test_a_national_document_sent_again_is_refused_and_recorded(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Its episode_id is already stored: 409 episode_exists, not a 500; nothing more is kept."""
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    episode = get_adapter("ecaf-xml-v3").to_national(form).episodes[0]
    national = get_adapter("national-json").from_national([episode])
    first = await http.post("/api/v1/forms", data=national, headers=auth)
    assert first.status == 201, await first.json()
    again = await http.post("/api/v1/forms", data=national, headers=auth)
    assert (again.status, (await again.json())["error"]) == (409, "episode_exists")
    async with http.app[ENGINE].connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM episodes"))).scalar_one() == 1
        rows = (
            await connection.execute(
                text("SELECT action, outcome, reason FROM audit_entries ORDER BY sequence")
            )
        ).all()
    assert [tuple(r) for r in rows][-1] == ("form.submit", "refused", "episode_exists")


async def test_bad_documents_get_located_errors_and_nothing_is_stored(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    xml = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    cases = [
        ("auto", b"%PDF-1.7", 415, "unsupported_format"),
        ("ecaf-xml-v3", b"%PDF-1.7", 422, "schema_violation"),  # named XML, but not XML
        (
            "auto",
            xml.replace(b"<ecaf:Child>", b"<ecaf:Child><ecaf:Child>"),
            422,
            "schema_violation",
        ),
        ("ecaf-xml-v3", xxe, 415, "unsupported_format"),
        ("auto", b"x" * (5 * 1024 * 1024), 413, "payload_too_large"),
    ]
    for fmt, body, status, code in cases:
        response = await http.post(
            f"/api/v1/forms?format={fmt}", data=io.BytesIO(body), headers=auth
        )
        answer = await response.json()
        assert response.status == status, answer
        assert answer["error"] == code
        assert "root:" not in json.dumps(answer)
    async with http.app[ENGINE].connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM episodes"))).scalar_one() == 0


async def test_search_by_identifier_and_by_misspelt_name(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-102-0.xml")
    (episode_id,) = answer["episode_ids"]
    episode = await (await http.get(f"/api/v1/episodes/{episode_id}", headers=auth)).json()
    child = episode["child"]
    by_nhs = await http.get(
        "/api/v1/episodes", params={"nhs_number": child["identifiers"]["nhs_number"]}, headers=auth
    )
    assert [m["episode_id"] for m in (await by_nhs.json())["matches"]] == [episode_id]
    # "Zoë-Mae Ó Briain" typed without accents and apostrophes still finds her.
    fuzzy = await http.get(
        "/api/v1/episodes",
        params={
            "given_name": "Zoe Mae",
            "family_name": "O Briain",
            "date_of_birth": child["date_of_birth"],
        },
        headers=auth,
    )
    (match,) = (await fuzzy.json())["matches"]
    assert match["episode_id"] == episode_id and match["confidence"] > 0.8
    nobody = await http.get(
        "/api/v1/episodes",
        params={"given_name": "Zoe Mae", "family_name": "O Briain", "date_of_birth": "2001-01-01"},
        headers=auth,
    )
    assert (await nobody.json())["matches"] == []
    bad = await http.get("/api/v1/episodes", params={"nhs_number": "9434765918"}, headers=auth)
    assert bad.status == 422
    assert "9434765918" not in await bad.text()
    # A family name with nothing to match on (found by schemathesis: it was a 500).
    letterless = await http.get(
        "/api/v1/episodes",
        params={"given_name": "Zoe", "family_name": "_\u00b2-", "date_of_birth": "0394-10-17"},
        headers=auth,
    )
    assert letterless.status == 422
    assert (await letterless.json())["problems"][0]["location"] == "/family_name"
    # Each refused search is recorded, with the keys searched by and the rule, never a value.
    async with http.app[ENGINE].connect() as connection:
        refused = (
            await connection.execute(
                text(
                    "SELECT reason, details FROM audit_entries WHERE action = 'episode.search'"
                    " AND outcome = 'refused' ORDER BY sequence"
                )
            )
        ).all()
    assert [(r.reason, json.loads(r.details)["rule"]) for r in refused] == [
        ("schema_violation", "nhs_number.checksum"),
        ("schema_violation", "name.letters"),
    ]
    assert "9434765918" not in str(refused) and "0394" not in str(refused)
    # Nothing readable at rest: no name and no identifier in the stored row.
    async with http.app[ENGINE].connect() as connection:
        blob = (await connection.execute(episodes.select())).one().document
    for secret in (child["family_name"], child["given_names"], child["identifiers"]["nhs_number"]):
        assert secret.encode() not in blob


async def test_consent_recorded_checked_and_withdrawn(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml")
    (episode_id,) = answer["episode_ids"]
    url = f"/api/v1/episodes/{episode_id}"

    async def check(agency_type: str, purpose: str = "early_help") -> dict[str, Any]:
        response = await http.post(
            f"{url}/consent-check",
            json={"recipient": {"agency_type": agency_type}, "purpose": purpose},
            headers=auth,
        )
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body

    # The example's statement (a parent's, verbal) shares with health and excludes housing.
    permitted, excluded = await check("health"), await check("housing")
    assert permitted["decision"] == "permit" and permitted["consent_id"] == "C1"
    assert excluded["decision"] == "deny" and excluded["code"] == "consent_excluded"

    recorded = await http.post(
        f"{url}/consents",
        json={
            "given_by": [{"role": "parent_carer", "name": "A Parent"}],
            "given_on": "2026-04-01",
            "method": "written",
            "storage_agreed": True,
            "purposes": ["early_help"],
            "share_with": [{"agency_type": "education"}],
        },
        headers=auth,
    )
    assert recorded.status == 201, await recorded.text()
    consent_id = (await recorded.json())["consent_id"]
    assert (await check("education"))["decision"] == "permit"

    # A withdrawal dated ahead would keep sharing until then, and a repeat is a no-op: refused.
    ahead = await http.post(
        f"{url}/consents/{consent_id}/withdraw", json={"withdrawn_on": "2099-01-01"}, headers=auth
    )
    assert ahead.status == 422
    assert (await ahead.json())["problems"][0]["rule"] == "dates.withdrawal_in_future"
    for _ in range(2):  # withdrawing twice is harmless
        withdrawn = await http.post(f"{url}/consents/{consent_id}/withdraw", json={}, headers=auth)
        assert withdrawn.status == 200
    assert (await withdrawn.json())["changed"] is False
    after = await check("education")
    assert after["decision"] == "deny"
    assert after["code"] in {"consent_withdrawn", "consent_missing"}

    missing = await http.post(f"{url}/consents/nope/withdraw", json={}, headers=auth)
    assert missing.status == 404


async def test_events_and_closure_rules(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml")
    url = f"/api/v1/episodes/{answer['episode_ids'][0]}/events"
    review = {"type": "review", "review": {"held_on": "2026-05-01", "tac_meeting_held": True}}
    assert (await http.post(url, json={"event": review}, headers=auth)).status == 200
    lead = {
        "type": "lead_professional_changed",
        "lead_professional": {
            "name": "New Lead",
            "organisation": "Family Hub",
            "agency_type": "early_help",
        },
    }
    changed = await http.post(url, json={"event": lead}, headers=auth)
    assert (await changed.json())["lead_professional"]["name"] == "New Lead"
    versions = [a["version"] for a in (await changed.json())["assessments"]]
    reassessment = {
        "type": "assessment",
        "assessment": {
            "version": max(versions) + 1,
            "started_on": "2026-05-02",
            "completed_on": "2026-05-09",
            "assessor": lead["lead_professional"],
            "reason": "reassessment",
        },
    }
    reassessed = await http.post(url, json={"event": reassessment}, headers=auth)
    assert len((await reassessed.json())["assessments"]) == len(versions) + 1
    stale = await http.post(url, json={"event": reassessment}, headers=auth)
    assert stale.status == 422
    assert (await stale.json())["problems"][0]["rule"] == "assessment.version_not_newer"
    closure = {
        "type": "closure",
        "closure": {"closed_on": "2026-06-01", "outcome": "resolved_family"},
    }
    closed = await http.post(url, json={"event": closure}, headers=auth)
    assert (await closed.json())["state"] == "closed"
    again = await http.post(url, json={"event": closure}, headers=auth)
    assert again.status == 409
    unknown = await http.post(url, json={"event": {"type": "party"}}, headers=auth)
    assert unknown.status == 422


async def test_an_event_made_again_on_the_revision_it_read_is_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """A case system whose answer was lost sends its TAC member again, with the ETag it read."""
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml")
    url = f"/api/v1/episodes/{answer['episode_ids'][0]}"
    read = await http.get(url, headers=auth)
    members = len((await read.json())["tac_members"])
    member = {
        "type": "tac_member_added",
        "member": {"name": "Sam Okafor", "organisation": "Hub", "agency_type": "early_help"},
    }
    on_read = {**auth, "If-Match": read.headers["ETag"]}
    first = await http.post(f"{url}/events", json={"event": member}, headers=on_read)
    assert first.status == 200 and first.headers["ETag"] != read.headers["ETag"]
    again = await http.post(f"{url}/events", json={"event": member}, headers=on_read)
    assert again.status == 412
    assert (await again.json())["error"] == "precondition_failed"
    now = await (await http.get(url, headers=auth)).json()
    assert len(now["tac_members"]) == members + 1
    fresh = {**auth, "If-Match": f'"nope", {first.headers["ETag"]}'}  # any of a list
    assert (await http.post(f"{url}/events", json={"event": member}, headers=fresh)).status == 200
    anything = {**auth, "If-Match": "*"}
    assert (
        await http.post(f"{url}/events", json={"event": member}, headers=anything)
    ).status == 200
    now = await http.get(url, headers=auth)
    weak = {**auth, "If-Match": f"W/{now.headers['ETag']}"}  # RFC 9110: never matches If-Match
    assert (await http.post(f"{url}/events", json={"event": member}, headers=weak)).status == 412
    two_lines = [*auth.items(), ("If-Match", '"nope"'), ("If-Match", now.headers["ETag"])]
    split = await http.post(f"{url}/events", json={"event": member}, headers=two_lines)
    assert split.status == 200


async def test_scopes_and_tokens_are_required(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path, scopes=["episodes:read"])
    form = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    no_token = await http.post("/api/v1/forms", data=form)
    assert no_token.status == 401
    assert no_token.headers["WWW-Authenticate"] == "Bearer"
    wrong_scope = await http.post("/api/v1/forms", data=form, headers=auth)
    assert wrong_scope.status == 403
    assert (await wrong_scope.json())["error"] == "insufficient_scope"
    forged = await http.get("/api/v1/audit/verify", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status == 401


async def test_every_api_route_declares_its_scope(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, _ = await _node(aiohttp_client, database, tmp_path)
    api = next(
        resource._app
        for resource in http.app.router.resources()
        if getattr(resource, "canonical", "") == "/api/v1"
    )
    routes = [r for r in api.router.routes() if r.method != "HEAD"]
    assert len(routes) >= 10
    undeclared = [r.resource.canonical for r in routes if required_scope(r.handler) is None]
    assert undeclared == []
    public = [r.resource.canonical for r in routes if required_scope(r.handler) == "public"]
    assert public == ["/api/v1/openapi.json"]
    # ... and the OpenAPI document describes every other route, with the same scope.
    paths = openapi_document()["paths"]
    for route in routes:
        path = route.resource.canonical.removeprefix("/api/v1")
        if path == "/openapi.json":
            continue
        operation = paths[path][route.method.lower()]
        assert operation["security"] == [{"client": [required_scope(route.handler)]}], path


async def test_audit_chain_records_calls_and_detects_tampering(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    answer = await _upload(http, auth, EXAMPLES / "eha-json" / "eha-json-101-0.json")
    for episode_id in answer["episode_ids"]:
        await http.get(f"/api/v1/episodes/{episode_id}", headers=auth)
    await http.get(f"/api/v1/episodes/{answer['episode_ids'][0]}?format=nope", headers=auth)
    verified = await (await http.get("/api/v1/audit/verify", headers=auth)).json()
    assert verified["ok"] is True and verified["checked"] == 6  # 3 created, 3 read
    async with http.app[ENGINE].begin() as connection:
        rows = (await connection.execute(audit_entries.select())).all()
        assert {r.action for r in rows} == {"episode.create", "episode.read"}
        assert all(answer["episode_ids"][0] not in (r.details or "") for r in rows)
        await connection.execute(
            update(audit_entries)
            .where(audit_entries.c.sequence == 4)
            .values(actor="client:someone-else")
        )
    tampered = await (await http.get("/api/v1/audit/verify", headers=auth)).json()
    assert tampered["ok"] is False
    assert tampered["problem"]["kind"] == "hash_mismatch" and tampered["problem"]["sequence"] == 4


async def test_the_chain_is_verified_while_the_nodes_connection_is_in_use(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """A SQLite node's engine has one connection. Reading the whole chain takes seconds on a large
    log, so the check reads through a connection of its own rather than wait for (and then hold)
    the one every request uses."""
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    await _upload(http, auth, EXAMPLES / "eha-json" / "eha-json-101-0.json")
    async with http.app[ENGINE].connect() as in_use:
        await in_use.execute(text("SELECT 1"))
        result = await asyncio.wait_for(http.app[AUDIT].verify(), timeout=10)
    assert result.ok and result.checked == 3


async def test_appends_while_the_chain_is_read_raise_no_false_alarm(database: Database) -> None:
    """The check reads the chain in several statements while other writers append (a replica, or
    the node itself beside the scan's own connection). An entry and its checkpoint committed
    between those reads must look neither like a missing checkpoint nor like a truncation."""
    key = OKPKey.generate_key("Ed25519", private=True)

    async def append_one() -> None:
        engine = create_engine(database.url, schema=database.schema)
        try:
            await AuditLog(engine, key, MEMBER, every=1).record(READ)
        finally:
            await engine.dispose()

    def another_writer_appends(*_: Any) -> None:
        if threading.current_thread() is threading.main_thread():  # the check's own statements
            writer = threading.Thread(target=asyncio.run, args=(append_one(),))
            writer.start()
            writer.join()

    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        log = AuditLog(engine, key, MEMBER, every=1)  # a checkpoint after every entry
        for _ in range(3):
            await log.record(READ)
        event.listen(Engine, "before_cursor_execute", another_writer_appends)
        try:
            during = await log.verify()
        finally:
            event.remove(Engine, "before_cursor_execute", another_writer_appends)
        after = await log.verify()
        async with engine.begin() as connection:  # the tail deleted, its checkpoints left behind
            await connection.execute(delete(audit_entries).where(audit_entries.c.sequence > 2))
        truncated = await log.verify()
    finally:
        await engine.dispose()
    assert during.ok, during
    assert after.ok and after.checked > during.checked >= 3  # the others landed, and verify
    assert truncated.problem is not None and truncated.problem.kind == ProblemKind.TRUNCATED


async def test_an_append_rolled_back_is_not_the_head_a_waiting_writer_appends_to(
    database: Database,
) -> None:
    """Two transactions of one node at once (on PostgreSQL the second waits for the audit lock):
    the first appends and then fails. The second must chain onto what was committed, not onto
    the entry that was rolled back, or the log would show a gap nobody made."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        log = AuditLog(engine, OKPKey.generate_key("Ed25519", private=True), MEMBER, every=2)
        await log.record(READ)
        waiting = asyncio.Event()

        async def second() -> None:
            waiting.set()
            await log.record(READ)  # waits until the first is over

        with pytest.raises(RuntimeError, match="then failed"):
            async with log.transaction() as connection:
                other = asyncio.create_task(second())
                await waiting.wait()
                await asyncio.sleep(0.2)  # the second is now waiting for the lock
                await log.append(connection, READ)
                raise RuntimeError("appended, then failed")
        await other
        result = await log.verify()
    finally:
        await engine.dispose()
    assert result.ok and result.checked == 2, result


async def test_appending_outside_a_transaction_of_the_log_is_refused(database: Database) -> None:
    """Without the log's transaction an append would race other writers for the head."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        log = AuditLog(engine, OKPKey.generate_key("Ed25519", private=True), MEMBER, every=2)
        async with engine.begin() as connection:
            with pytest.raises(RuntimeError, match="AuditLog.transaction"):
                await log.append(connection, READ)
    finally:
        await engine.dispose()


async def test_an_in_memory_database_keeps_its_one_connection_and_verifies() -> None:
    """`sqlite:///:memory:` lives in one connection (SQLAlchemy's StaticPool): the one-connection
    pool of a SQLite file must not be forced on it, nor a scan connection of its own (another
    in-memory database, empty)."""
    engine = create_engine("sqlite:///:memory:")
    try:
        await upgrade(engine)
        log = AuditLog(engine, OKPKey.generate_key("Ed25519", private=True), MEMBER, every=2)
        for _ in range(3):
            await log.record(READ)
        result = await log.verify()
    finally:
        await engine.dispose()
    assert result.ok and result.checked == 3


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/register",
        "/api/v1/register?episode=not-a-uuid",
        f"/api/v1/register?episode={uuid.uuid4()}&practitioner=p-1",
        "/api/v1/register?practitioner=" + "p" * 201,
    ],
)
async def test_register_needs_one_episode_or_one_practitioner(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, path: str
) -> None:
    http, _, auth = await _node(aiohttp_client, database, tmp_path)
    assert (await http.get(path, headers=auth)).status == 400
