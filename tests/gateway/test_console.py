"""The lead CAF contact console over HTTP, against a real node (Camden, in a federation with signed
metadata) on SQLite and PostgreSQL: sign-in through the built-in OpenID provider, who gets in, the
session cookie and its fixation, idle timeout, sign-out, CSRF on every form, security headers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select, update

from gateway.console._oidc import OidcClient
from gateway.console._sessions import COOKIE
from gateway.demo import DEMO_BOROUGHS, NodePlan, plan_federation
from gateway.errors import Unauthorised
from gateway.federation.practitioner import RequestInput
from gateway.keys import AUDIT, CONSOLE_OIDC, ENGINE, REQUESTS
from gateway.runner import start
from gateway.storage._tables import audit_entries, console_sessions

from ..conftest import Database
from .console_client import ConsoleClient

CAMDEN, HACKNEY = DEMO_BOROUGHS[0], DEMO_BOROUGHS[1]


@dataclass
class Node:
    plan: NodePlan
    runner: web.AppRunner

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def audit_rows(self, action: str) -> list[tuple[str, str, str | None]]:
        async with self.app[ENGINE].connect() as connection:
            rows = await connection.execute(
                select(audit_entries.c.actor, audit_entries.c.outcome, audit_entries.c.reason)
                .where(audit_entries.c.action == action)
                .order_by(audit_entries.c.sequence)
            )
            return [(row.actor, row.outcome, row.reason) for row in rows.all()]


@pytest.fixture
async def camden(database: Database, tmp_path: Path) -> AsyncIterator[Node]:
    plans = plan_federation(tmp_path, database=lambda _b, _f: (database.url, database.schema))
    runner = await start(plans[0].settings)
    try:
        yield Node(plans[0], runner)
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser(camden: Node) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(camden.plan.api_url)
    yield client
    await client.close()


async def _waiting_request(node: Node, practitioner_id: str = "camden-t-9") -> str:
    record = await node.app[REQUESTS].create(
        "case-system",
        RequestInput.model_validate(
            {
                "kind": "existence_check",
                "practitioner": {
                    "id": practitioner_id,
                    "name": "A Teacher",
                    "role": "Teacher",
                    "agency": "A school",
                    "agency_type": "education",
                },
                "purpose": "early_help",
                "reason": "attendance",
                "target_authority": HACKNEY.gss,
                "child": {
                    "given_names": "Nobody",
                    "family_name": "Known",
                    "date_of_birth": "2015-01-01",
                },
            }
        ),
        "test",
    )
    return record.id


async def test_a_lead_contact_signs_in_and_gets_a_new_secure_session(
    camden: Node, browser: ConsoleClient
) -> None:
    status, page, reply = await browser.get("/console/queue")
    assert str(reply.url).endswith("/console/sign-in?signed-out=1") and status == 200
    assert "Sign in with your borough account" in page

    await browser.begin()
    before = browser.cookie
    assert before is not None  # the pre-sign-in session holds state, nonce and PKCE verifier
    status, page = await browser.sign_in(CAMDEN.lead_contacts()[0])
    assert status == 200 and "<h1>Requests to verify</h1>" in page
    assert "Signed in as Lead CAF contact 1, Camden" in page
    after = browser.cookie
    assert after is not None and after != before

    # Session fixation: the id the browser held before signing in is worth nothing now.
    intruder = ConsoleClient(camden.plan.api_url)
    try:
        intruder.set_cookie(before)
        status, page, reply = await intruder.get("/console/queue")
        assert reply.url.path == "/console/sign-in" and "Requests to verify" not in page
    finally:
        await intruder.close()

    async with camden.app[ENGINE].connect() as connection:
        stored = [r.id_hash for r in (await connection.execute(select(console_sessions))).all()]
    assert after not in stored and before not in stored and len(stored) == 1  # hashes only
    assert await camden.audit_rows("console.sign_in") == [
        (f"lead:{CAMDEN.lead_contacts()[0]}", "success", None)
    ]


async def test_the_session_cookie_and_security_headers(camden: Node) -> None:
    client = ConsoleClient(camden.plan.api_url)
    try:
        async with client.http.get(
            camden.plan.api_url + "/console/auth/start", allow_redirects=False
        ) as reply:
            assert reply.status == 303
            assert reply.headers["Location"].startswith(camden.plan.api_url + "/dev-idp/authorize?")
            assert "code_challenge_method=S256" in reply.headers["Location"]
            cookie = reply.headers["Set-Cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure"):
            assert attribute in cookie
        assert "Domain" not in cookie and "Max-Age" not in cookie
        await client.sign_in(CAMDEN.lead_contacts()[0])
        status, _, reply = await client.get("/console/queue")
        csp = reply.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp  # no script at all
        assert "default-src 'none'" in csp
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["Referrer-Policy"] == "same-origin"
    finally:
        await client.close()


@pytest.mark.parametrize("who", ["visitor-1", "hackney-lead-1"])
async def test_anyone_but_this_boroughs_lead_contacts_is_refused(
    camden: Node, browser: ConsoleClient, who: str
) -> None:
    status, page = await browser.sign_in(who)
    assert status == 403
    assert "not listed as a lead CAF contact of this borough" in page
    status, _, reply = await browser.get("/console/queue")
    assert reply.url.path == "/console/sign-in"
    refused = await camden.audit_rows("console.sign_in")
    assert refused == [("console:anonymous", "refused", "not_lead_contact")]


async def test_a_wrong_password_gets_no_code(browser: ConsoleClient) -> None:
    status, page = await browser.sign_in(CAMDEN.lead_contacts()[0], password="guess")
    assert status == 401 and "do not match" in page
    status, _, reply = await browser.get("/console/queue")
    assert reply.url.path == "/console/sign-in"


async def test_a_callback_without_its_sign_in_is_refused(
    camden: Node, browser: ConsoleClient
) -> None:
    await browser.begin()
    status, page, _ = await browser.get("/console/auth/callback?code=x&state=forged")
    assert status == 400 and "not started here" in page
    assert await camden.audit_rows("console.sign_in") == [
        ("console:anonymous", "refused", "state_mismatch")
    ]


async def test_the_id_token_must_carry_our_nonce(camden: Node) -> None:
    client: OidcClient = camden.app[CONSOLE_OIDC]
    provider_keys = await client._key_set()
    assert len(provider_keys.keys) == 1
    forged = "e30.e30.e30"  # not even a signature
    with pytest.raises(Unauthorised):
        await client.validate(forged, "nonce")


async def test_csrf_is_checked_on_every_form_and_nothing_changes_without_it(
    camden: Node, browser: ConsoleClient
) -> None:
    request_id = await _waiting_request(camden)
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/queue")
    token = browser.csrf(page)
    path = f"/console/requests/{request_id}/decision"
    attempts = [
        {"decision": "reject"},  # no token
        {"decision": "reject", "csrf_token": "0" * 64},  # a wrong one
    ]
    for form in attempts:
        status, page, _ = await browser.post(path, form)
        assert status == 403 and "csrf_failed" in page
    status, page, _ = await browser.post(
        path,
        {"decision": "reject", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert status == 403 and "csrf_failed" in page
    record = await camden.app[REQUESTS].get(request_id)
    assert record.state == "awaiting_verification" and record.document["decisions"] == []
    assert len(await camden.audit_rows("console.csrf")) == 3

    # Another session's token is no good either.
    other = ConsoleClient(camden.plan.api_url)
    try:
        await other.sign_in(CAMDEN.lead_contacts()[1])
        status, page, _ = await other.post(path, {"decision": "reject", "csrf_token": token})
        assert status == 403
    finally:
        await other.close()

    status, page, reply = await browser.post(
        path, {"decision": "reject", "note": "not known to us", "csrf_token": token}
    )
    assert status == 200 and reply.url.query["decided"] == request_id
    assert 'data-state="rejected"' in page
    record = await camden.app[REQUESTS].get(request_id)
    assert (
        record.state == "rejected" and record.document["decisions"][0]["note"] == "not known to us"
    )


async def test_idle_sessions_end(camden: Node, browser: ConsoleClient) -> None:
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, _, _ = await browser.get("/console/queue")
    assert status == 200
    idle = dt.timedelta(minutes=camden.plan.settings.console_idle_minutes, seconds=5)
    async with camden.app[ENGINE].begin() as connection:
        await connection.execute(
            update(console_sessions).values(last_seen_at=dt.datetime.now(dt.UTC) - idle)
        )
    status, page, reply = await browser.get("/console/queue")
    assert reply.url.path == "/console/sign-in" and "not used for a while" in page
    async with camden.app[ENGINE].connect() as connection:
        assert (await connection.execute(select(console_sessions))).all() == []


async def test_sign_out_ends_the_session(camden: Node, browser: ConsoleClient) -> None:
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    held = browser.cookie
    assert held is not None
    status, page, _ = await browser.get("/console/queue")
    status, page, reply = await browser.post(
        "/console/sign-out", {"csrf_token": browser.csrf(page)}
    )
    assert reply.url.path == "/console/sign-in" and "You have signed out" in page
    replay = ConsoleClient(camden.plan.api_url)
    try:
        replay.set_cookie(held)
        status, page, reply = await replay.get("/console/federation")
        assert reply.url.path == "/console/sign-in"
    finally:
        await replay.close()
    assert await camden.audit_rows("console.sign_out") == [
        (f"lead:{CAMDEN.lead_contacts()[0]}", "success", None)
    ]


async def test_the_requester_can_never_approve_their_own(
    camden: Node, browser: ConsoleClient
) -> None:
    lead = CAMDEN.lead_contacts()[0]
    request_id = await _waiting_request(camden, practitioner_id=lead)
    await browser.sign_in(lead)
    status, page, _ = await browser.get("/console/queue")
    assert "You raised this request" in page
    assert f"/console/requests/{request_id}/decision" not in page  # no form offered
    status, page, _ = await browser.post(
        f"/console/requests/{request_id}/decision",
        {"decision": "approve", "csrf_token": browser.csrf(page)},
    )
    assert status == 403 and "self_approval" in page  # the domain refuses, not only the page
    assert (await camden.app[REQUESTS].get(request_id)).state == "awaiting_verification"
    assert await camden.audit_rows("console.decide") == [
        (f"lead:{lead}", "refused", "self_approval")
    ]


async def test_every_page_answers_for_a_signed_in_lead_contact(
    camden: Node, browser: ConsoleClient
) -> None:
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    for path, heading in [
        ("/console/", "Requests to verify"),
        ("/console/overrides", "Overrides awaiting a second approver"),
        ("/console/episodes", "Find an episode"),
        ("/console/federation", "Federation"),
        ("/console/audit", "Audit"),
    ]:
        status, page, _ = await browser.get(path)
        assert status == 200 and f"<h1>{heading}</h1>" in page, path
    status, page, _ = await browser.get("/console/episodes?episode=not-an-id")
    assert status == 422 and "Enter an episode id" in page
    status, page, _ = await browser.get("/console/episodes/4b0d6c4e-0000-4000-8000-000000000000")
    assert status == 404 and "neither holds nor received" in page
    status, page, _ = await browser.get("/console/audit")
    assert "The audit chain verifies" in page
    assert camden.app[AUDIT] is not None
