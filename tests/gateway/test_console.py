"""The lead CAF contact console over HTTP, against a real node (Camden, in a federation with signed
metadata) on SQLite and PostgreSQL: sign-in through the built-in OpenID provider, who gets in, the
session cookie and its fixation, the sealed sign-in cookie, ID token checks, idle timeout, sign-out,
every route behind sign-in and every POST behind CSRF, security headers, the audit page's check."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey
from sqlalchemy import func, insert, select, update

from gateway.console import _console_app
from gateway.console._oidc import OidcClient
from gateway.console._sessions import COOKIE, SIGN_IN_COOKIE
from gateway.console._web import lead_contact_for
from gateway.console.dev_provider import DEV_PROVIDER
from gateway.demo import DEMO_BOROUGHS, DEMO_PASSWORD, NodePlan, plan_federation
from gateway.errors import PeerUnavailable, Unauthorised
from gateway.federation.outbox import Message
from gateway.federation.practitioner import RequestInput
from gateway.keys import CONSOLE_OIDC, ENGINE, EPISODES, MEMBERS, METRICS, REQUESTS, TRANSFERS
from gateway.runner import start
from gateway.storage._tables import (
    audit_entries,
    console_sessions,
    inbox,
    outbox,
    register,
    transfers,
)
from schemas import Practitioner

from ..conftest import Database
from .console_client import ConsoleClient
from .test_timeliness import episode

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

    async def audit_count(self) -> int:
        async with self.app[ENGINE].connect() as connection:
            return int(
                (
                    await connection.execute(select(func.count(audit_entries.c.sequence)))
                ).scalar_one()
            )

    def anonymous_refusals(self, reason: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(
            "cafx_console_anonymous_refusals_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture
async def camden(database: Database, tmp_path: Path) -> AsyncIterator[Node]:
    async with _camden(database, tmp_path) as node:
        yield node


@contextlib.asynccontextmanager
async def _camden(database: Database, tmp_path: Path, **settings: Any) -> AsyncIterator[Node]:
    plans = plan_federation(tmp_path, database=lambda _b, _f: (database.url, database.schema))
    plan = NodePlan(
        plans[0].borough, plans[0].folder, plans[0].settings.model_copy(update=settings)
    )
    runner = await start(plan.settings)
    try:
        yield Node(plan, runner)
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


async def _sessions_stored(node: Node) -> list[str]:
    async with node.app[ENGINE].connect() as connection:
        return [r.id_hash for r in (await connection.execute(select(console_sessions))).all()]


async def test_a_lead_contact_signs_in_and_gets_a_new_secure_session(
    camden: Node, browser: ConsoleClient
) -> None:
    status, page, reply = await browser.get("/console/queue")
    assert str(reply.url).endswith("/console/sign-in?signed-out=1") and status == 200
    assert "Sign in with your borough account" in page

    # Session fixation: an id planted in the browser before sign-in is replaced by a new one.
    planted = "planted-by-someone-else"
    browser.set_cookie(planted)
    await browser.begin()
    assert browser.cookie == planted and browser.sign_in_cookie is not None
    assert await _sessions_stored(camden) == []  # starting a sign-in stores nothing
    status, page = await browser.sign_in(CAMDEN.lead_contacts()[0])
    assert status == 200 and "<h1>Requests to verify</h1>" in page
    assert "Signed in as Lead CAF contact 1, Camden" in page
    after = browser.cookie
    assert after is not None and after != planted
    assert browser.sign_in_cookie is None  # used once

    # Signing in again (another tab, say) replaces the session: the old id is worth nothing.
    status, _ = await browser.sign_in(CAMDEN.lead_contacts()[0])
    again = browser.cookie
    assert status == 200 and again is not None and again != after
    for stale in (planted, after):
        intruder = ConsoleClient(camden.plan.api_url)
        try:
            intruder.set_cookie(stale)
            status, page, reply = await intruder.get("/console/queue")
            assert reply.url.path == "/console/sign-in" and "Requests to verify" not in page
        finally:
            await intruder.close()

    stored = await _sessions_stored(camden)
    assert again not in stored and len(stored) == 1  # hashes only, and only the live one
    assert (
        await camden.audit_rows("console.sign_in")
        == [(f"lead:{CAMDEN.lead_contacts()[0]}", "success", None)] * 2
    )


async def test_starting_a_sign_in_writes_nothing_and_signs_nobody_out(
    camden: Node, browser: ConsoleClient
) -> None:
    """A link to /console/auth/start on another site costs the node nothing and ends no session."""
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    session = browser.cookie
    entries, stored = await camden.audit_count(), await _sessions_stored(camden)
    anonymous = ConsoleClient(camden.plan.api_url)
    try:
        for _ in range(5):
            await anonymous.begin()
            await browser.begin()
    finally:
        await anonymous.close()
    assert await camden.audit_count() == entries and await _sessions_stored(camden) == stored
    assert browser.cookie == session
    status, page, reply = await browser.get("/console/overrides")
    assert status == 200 and reply.url.path == "/console/overrides"


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
        assert cookie.startswith(f"{SIGN_IN_COOKIE}=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure", "Max-Age=600"):
            assert attribute in cookie
        assert "Domain" not in cookie
        # Sealed: the state, nonce and PKCE verifier cannot be read from it.
        sealed = client.sign_in_cookie
        assert sealed is not None
        query = dict(re.findall(r"[?&]([a-z_]+)=([^&]+)", reply.headers["Location"]))
        assert query["state"] not in sealed and query["nonce"] not in sealed

        async with client.http.post(
            camden.plan.api_url + "/dev-idp/authorize",
            data={
                **query,
                "client_id": camden.plan.settings.console_client_id,
                "redirect_uri": camden.plan.api_url + "/console/auth/callback",
                "username": CAMDEN.lead_contacts()[0],
                "password": DEMO_PASSWORD,
            },
            allow_redirects=False,
        ) as answer:
            callback = answer.headers["Location"]
        async with client.http.get(callback, allow_redirects=False) as reply:
            assert reply.status == 303
            cookies = reply.headers.getall("Set-Cookie")
        session = next(c for c in cookies if c.startswith(f"{COOKIE}="))
        for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure"):
            assert attribute in session
        assert "Domain" not in session and "Max-Age" not in session
        assert any(c.startswith(f'{SIGN_IN_COOKIE}=""') for c in cookies)  # used once

        status, _, reply = await client.get("/console/queue")
        assert status == 200
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
    for password in ("guess", "l\u00f6ndon-caf-demo", "\u00e9"):  # non-ASCII: refused, not a 500
        status, page = await browser.sign_in(CAMDEN.lead_contacts()[0], password=password)
        assert status == 401 and "do not match" in page
    status, _, reply = await browser.get("/console/queue")
    assert reply.url.path == "/console/sign-in"


async def test_a_callback_without_its_sign_in_is_refused_and_counted_not_audited(
    camden: Node, browser: ConsoleClient
) -> None:
    entries = await camden.audit_count()
    for _ in range(3):  # no sign-in cookie at all
        status, page, _ = await browser.get("/console/auth/callback?code=x&state=forged")
        assert status == 400 and "not started here" in page
    await browser.begin()
    for state in ("forged", "%C3%A9", "%E2%82%AC" * 20):  # a wrong one, non-ASCII ones
        status, page, _ = await browser.get(f"/console/auth/callback?code=x&state={state}")
        assert status == 400 and "not started here" in page
    # A sign-in cookie that was tampered with, or sealed by another node, opens to nothing.
    await browser.begin()
    sealed = browser.sign_in_cookie
    assert sealed is not None
    browser.set_cookie(
        sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB"), SIGN_IN_COOKIE
    )
    status, _, _ = await browser.get("/console/auth/callback?code=x&state=anything")
    assert status == 400
    assert camden.anonymous_refusals("state_mismatch") == 7
    assert await camden.audit_count() == entries  # nothing written by anyone who is nobody
    assert await camden.audit_rows("console.sign_in") == []


async def test_a_made_up_code_or_the_providers_refusal_is_counted_not_audited(
    camden: Node, browser: ConsoleClient
) -> None:
    entries = await camden.audit_count()
    page = await browser.begin()
    state = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))[
        "state"
    ]
    status, _, _ = await browser.get(f"/console/auth/callback?state={state}&code=made-up")
    assert status == 401
    page = await browser.begin()
    state = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))[
        "state"
    ]
    status, _, _ = await browser.get(f"/console/auth/callback?state={state}&error=access_denied")
    assert status == 401
    assert camden.anonymous_refusals("invalid_grant") == 1
    assert camden.anonymous_refusals("provider_refused") == 1
    assert await camden.audit_count() == entries


# --- the ID token: minted with the built-in provider's own key, one claim wrong at a time ---------

_NONCE = "nonce-of-this-sign-in"


def _claims(node: Node, **changes: Any) -> dict[str, Any]:
    provider = node.app[DEV_PROVIDER]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": CAMDEN.lead_contacts()[0],
        "aud": provider.client_id,
        "iat": now,
        "exp": now + 300,
        "nonce": _NONCE,
        **changes,
    }
    return {name: value for name, value in claims.items() if value is not None}


def _mint(node: Node, alg: str = "Ed25519", key: Any = None, **changes: Any) -> str:
    provider = node.app[DEV_PROVIDER]
    key = key if key is not None else provider.key
    header = {"alg": alg, "kid": provider.key.kid}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA" is deprecated by RFC 9864
        return jwt.encode(header, _claims(node, **changes), key, algorithms=[alg])


def _unsigned(node: Node) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(_claims(node))}."


async def test_a_genuine_id_token_names_its_subject_with_either_ed25519_algorithm_name(
    camden: Node,
) -> None:
    client: OidcClient = camden.app[CONSOLE_OIDC]
    for alg in ("Ed25519", "EdDSA"):
        identity = await client.validate(_mint(camden, alg), _NONCE)
        assert identity.subject == CAMDEN.lead_contacts()[0]
    # Several audiences: accepted when azp says it was issued to us.
    client_id = camden.plan.settings.console_client_id
    several = _mint(camden, aud=[client_id, "another-client"], azp=client_id)
    assert (await client.validate(several, _NONCE)).claims["azp"] == client_id


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda n: _mint(n, nonce="another sign-in's nonce"), id="nonce"),
        pytest.param(lambda n: _mint(n, nonce=None), id="no-nonce"),
        pytest.param(lambda n: _mint(n, iss="https://idp.example"), id="iss"),
        pytest.param(lambda n: _mint(n, aud="another-client"), id="aud"),
        pytest.param(lambda n: _mint(n, exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda n: _mint(n, iat=None), id="no-iat"),
        pytest.param(lambda n: _mint(n, sub=None), id="no-sub"),
        pytest.param(
            lambda n: _mint(n, aud=[n.plan.settings.console_client_id, "other"]), id="no-azp"
        ),
        pytest.param(
            lambda n: _mint(n, aud=[n.plan.settings.console_client_id, "other"], azp="other"),
            id="azp-other",
        ),
        pytest.param(lambda n: _mint(n, azp="other"), id="azp-single-aud"),
        pytest.param(
            lambda n: _mint(n, key=OKPKey.generate_key("Ed25519", private=True)), id="other-key"
        ),
        pytest.param(lambda n: _mint(n, "HS256", key=OctKey.import_key(b"k" * 32)), id="hmac"),
        pytest.param(
            lambda n: _mint(n, "ES256", key=ECKey.generate_key("P-256", private=True)),
            id="es256-unknown-key",
        ),
        pytest.param(_unsigned, id="alg-none"),
        pytest.param(lambda n: "e30.e30.e30", id="garbage"),
    ],
)
async def test_an_id_token_wrong_in_any_way_is_refused(
    camden: Node, forge: Callable[[Node], str]
) -> None:
    client: OidcClient = camden.app[CONSOLE_OIDC]
    with pytest.raises(Unauthorised) as refused:
        await client.validate(forge(camden), _NONCE)
    assert refused.value.wire_code == "invalid_token"


async def test_the_providers_addresses_must_be_https(camden: Node) -> None:
    """Only the built-in development provider may be plain http (it is on the node's own origin)."""
    dev = camden.app[CONSOLE_OIDC]
    async with aiohttp.ClientSession() as session:
        strict = OidcClient(
            session,
            issuer=dev.issuer,
            client_id=dev.client_id,
            client_secret=dev.client_secret,
            redirect_url=dev.redirect_url,
        )
        with pytest.raises(PeerUnavailable, match="https"):
            await strict.start()
        assert (await dev.start()).url.startswith(dev.issuer + "/authorize?")


async def test_a_discovery_document_without_its_addresses_is_refused(unused_tcp_port: int) -> None:
    issuer = f"http://127.0.0.1:{unused_tcp_port}"

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer, "authorization_endpoint": f"{issuer}/a"})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            client = OidcClient(
                session,
                issuer=issuer,
                client_id="c",
                client_secret=None,
                redirect_url="https://node.example/console/auth/callback",
                allow_http=True,
            )
            with pytest.raises(PeerUnavailable, match="token or JWKS address"):
                await client.start()
    finally:
        await runner.cleanup()


# --- who the token names: one configured claim ------------------------------------------------------


async def test_one_configured_claim_names_the_lead_contact(camden: Node) -> None:
    directory = camden.app[MEMBERS]()
    first, second = directory.lead_contacts(CAMDEN.gss)[:2]
    gss = CAMDEN.gss

    def who(claim: str, **claims: Any) -> str | None:
        found = lead_contact_for(directory, gss, claim, claims)
        return found.id if found is not None else None

    # "sub" (the default): the contact's id, and the e-mail address plays no part.
    assert who("sub", sub=first.id, email=second.email, email_verified=True) == first.id
    assert who("sub", sub="idp-guid-1234", email=first.email, email_verified=True) is None
    # "email": a verified address only, whatever the sub, even one that is another contact's id.
    assert who("email", sub=second.id, email=first.email.upper(), email_verified=True) == first.id
    assert who("email", sub=first.id, email=first.email, email_verified=False) is None
    assert who("email", sub=first.id, email="someone@example.org", email_verified=True) is None
    # Any other claim: the contact's id.
    assert who("preferred_username", sub="x", preferred_username=second.id) == second.id
    assert who("preferred_username", sub=first.id) is None
    assert who("sub", sub=["a", first.id]) is None  # not a string: names nobody


async def test_signing_in_by_e_mail_address(database: Database, tmp_path: Path) -> None:
    async with _camden(database, tmp_path, console_identity_claim="email") as node:
        client = ConsoleClient(node.plan.api_url)
        try:
            status, page = await client.sign_in(CAMDEN.lead_contacts()[1])
            assert status == 200 and "Signed in as Lead CAF contact 2, Camden" in page
        finally:
            await client.close()


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
        {"decision": "reject", "csrf_token": "\u00e9"},  # not ASCII: refused, not a 500
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
    assert len(await camden.audit_rows("console.csrf")) == 4

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


async def test_a_busy_session_ends_a_working_day_after_sign_in(
    camden: Node, browser: ConsoleClient
) -> None:
    """A stolen cookie kept alive by replaying it works no longer than that."""
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    lifetime = dt.timedelta(hours=camden.plan.settings.console_session_hours, seconds=5)
    async with camden.app[ENGINE].begin() as connection:
        await connection.execute(
            update(console_sessions).values(created_at=dt.datetime.now(dt.UTC) - lifetime)
        )
    status, page, reply = await browser.get("/console/queue")  # seen a moment ago: not idle
    assert reply.url.path == "/console/sign-in"
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
    assert "Nobody Known, born 2015-01-01" in page  # whom it is about
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
    views = await camden.audit_rows("console.view")
    lead = f"lead:{CAMDEN.lead_contacts()[0]}"
    assert views == [(lead, "success", None)] * 6  # queue twice, overrides, federation, audit twice


async def _hackneys_offer_lands(camden: Node) -> str:
    """Hackney's transfer offer, applied as its message lands at Camden; the offer's id."""
    offer_id = str(uuid.uuid4())
    async with camden.app[ENGINE].begin() as connection:
        await camden.app[TRANSFERS].apply(
            connection,
            HACKNEY.gss,
            Message(
                str(uuid.uuid4()),
                "transfer_offer",
                {"offer_id": offer_id, "episode_ref": str(uuid.uuid4())},
            ),
        )
    return offer_id


async def test_the_federation_page_flags_an_escalated_transfer_offer(
    camden: Node, browser: ConsoleClient
) -> None:
    offer_id, workflow = await _hackneys_offer_lands(camden), camden.app[TRANSFERS]
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/federation")
    assert offer_id in page and "escalated" not in page
    later = dt.date.today() + dt.timedelta(days=30)
    assert await workflow.escalate(later) == [offer_id]
    status, page, _ = await browser.get("/console/federation")
    row = page[page.index(offer_id) :].split("</tr>")[0]
    assert HACKNEY.gss in row and "escalated" in row


async def test_the_federation_page_shows_the_last_exchange_with_each_member(
    camden: Node, browser: ConsoleClient
) -> None:
    """The latest message from, or disclosure with, each member (read by index, per member)."""
    islington = DEMO_BOROUGHS[2].gss
    at = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)
    async with camden.app[ENGINE].begin() as connection:
        for minutes in (0, 45, 20):  # Hackney's messages: the latest is at 10:15
            await connection.execute(
                insert(inbox).values(
                    sender=HACKNEY.gss,
                    message_id=str(uuid.uuid4()),
                    received_at=at + dt.timedelta(minutes=minutes),
                )
            )
        await connection.execute(  # Hackney's disclosure is older than its latest message
            insert(register).values(
                id=str(uuid.uuid4()),
                episode_id=str(uuid.uuid4()),
                direction="sent",
                counterpart=HACKNEY.gss,
                requested_by="p-1",
                sections=["assessments"],
                basis="C1",
                override=False,
                disclosed_at=at - dt.timedelta(days=1),
            )
        )
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/federation")
    assert status == 200

    members = page[page.index("<h2>Members</h2>") :].split("</table>")[0]

    def row(member: str) -> str:
        return members[members.index(f"({member})") :].split("</tr>")[0]

    assert "03 Nov 2026 10:15 UTC" in row(HACKNEY.gss)
    assert "none yet" in row(islington)


async def test_the_register_names_everyone_who_approved_a_disclosure(
    camden: Node, browser: ConsoleClient
) -> None:
    episode_id = str(uuid.uuid4())
    async with camden.app[ENGINE].begin() as connection:
        await connection.execute(
            insert(register).values(
                id=str(uuid.uuid4()),
                episode_id=episode_id,
                direction="sent",
                counterpart=HACKNEY.gss,
                requested_by="p-1",
                approved_by="hackney-lead-1",
                second_approved_by="hackney-lead-2",
                holder_approved_by="camden-lead-1",
                sections=["child"],
                basis="OV-1",
                override=True,
                disclosed_at=dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC),
            )
        )
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get(f"/console/episodes/{episode_id}/register.csv")
    assert status == 200
    assert "hackney-lead-1, hackney-lead-2 (second), camden-lead-1 (holder)" in page


async def test_the_child_view_names_the_member_a_transferred_episode_went_to(
    camden: Node, browser: ConsoleClient
) -> None:
    """Our copy keeps the home authority of its form; who holds it now is the transfer's."""
    islington = DEMO_BOROUGHS[2]
    moved = episode(state="transferred")
    now = dt.datetime.now(dt.UTC)
    async with camden.app[ENGINE].begin() as connection:
        await camden.app[EPISODES].add(connection, moved)
        await connection.execute(
            insert(transfers).values(
                id=str(uuid.uuid4()),
                direction="out",
                episode_id=str(moved.episode_id),
                counterpart=islington.gss,
                state="committed",
                created_at=now,
                updated_at=now,
            )
        )
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get(f"/console/episodes/{moved.episode_id}")
    assert status == 200
    assert f"held by {islington.name} ({islington.gss}), as this node last heard" in page
    assert f"({moved.home_authority})" in page  # the form's, named beside


async def test_a_lead_contact_declines_an_offer_from_the_federation_page(
    camden: Node, browser: ConsoleClient
) -> None:
    offer_id, workflow = await _hackneys_offer_lands(camden), camden.app[TRANSFERS]
    lead = CAMDEN.lead_contacts()[0]
    await browser.sign_in(lead)
    status, page, _ = await browser.get("/console/federation")
    assert f'Decline<span class="visually-hidden"> offer {offer_id}' in page
    token = browser.csrf(page)
    path = f"/console/federation/transfers/{offer_id}/close"
    status, page, _ = await browser.post(
        path, {"csrf_token": token, "direction": "in", "reason": "whatever I like"}
    )
    assert status == 422, page  # only the listed reasons: a code, never free text
    status, page, _ = await browser.post(
        path, {"csrf_token": token, "direction": "in", "reason": "not_resident"}
    )
    assert status == 200 and "The transfer offer was closed" in page, page[:300]
    assert offer_id not in page  # no longer under way
    async with camden.app[ENGINE].connect() as connection:
        [listed] = await workflow.listed(connection, "in")
        [sent] = (await connection.execute(select(outbox.c.recipient, outbox.c.kind))).all()
    assert (listed["state"], listed["reason"]) == ("declined", "not_resident")
    assert tuple(sent) == (HACKNEY.gss, "transfer_decline")
    status, page, _ = await browser.post(
        path, {"csrf_token": token, "direction": "in", "reason": "not_resident"}
    )
    assert status == 409, page  # closed once
    decisions = await camden.audit_rows("transfer.decline")
    assert decisions == [
        (f"lead:{lead}", "refused", "schema_violation"),
        (f"lead:{lead}", "success", "not_resident"),
        (f"lead:{lead}", "refused", "conflict"),
    ]


async def test_a_lead_contact_releases_an_accepted_offer_past_due_from_the_federation_page(
    camden: Node, browser: ConsoleClient
) -> None:
    offer_id, workflow = await _hackneys_offer_lands(camden), camden.app[TRANSFERS]
    lead = Practitioner.model_validate(
        {"name": "Lead in Camden", "organisation": "Family Hub", "agency_type": "early_help"}
    )
    async with camden.app[ENGINE].begin() as connection:
        await workflow.accept(connection, offer_id, lead)
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/federation")
    assert (
        offer_id in page and f'Release<span class="visually-hidden"> offer {offer_id}' not in page
    )
    status, _, _ = await browser.post(  # the form is not offered yet; posted anyway, refused
        f"/console/federation/transfers/{offer_id}/close",
        {"csrf_token": browser.csrf(page), "direction": "in", "reason": "not_resident"},
    )
    assert status == 409
    lead_id = CAMDEN.lead_contacts()[0]
    assert await camden.audit_rows("transfer.release") == [
        (f"lead:{lead_id}", "refused", "conflict")
    ]
    assert await workflow.escalate(dt.date.today() + dt.timedelta(days=30)) == [offer_id]
    status, page, _ = await browser.get("/console/federation")
    assert f'Release<span class="visually-hidden"> offer {offer_id}' in page
    status, page, _ = await browser.post(
        f"/console/federation/transfers/{offer_id}/close",
        {"csrf_token": browser.csrf(page), "direction": "in", "reason": "not_resident"},
    )
    assert status == 200 and "The transfer offer was closed" in page, page[:300]
    assert offer_id not in page
    async with camden.app[ENGINE].connect() as connection:
        [listed] = await workflow.listed(connection, "in")
    assert (listed["state"], listed["reason"]) == ("released", "not_resident")
    assert await camden.audit_rows("transfer.release") == [
        (f"lead:{lead_id}", "refused", "conflict"),
        (f"lead:{lead_id}", "success", "not_resident"),
    ]


def _console_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the console, read from its router: a route added later is covered."""
    found = []
    for route in _console_app().router.routes():
        resource = route.resource
        if route.method not in ("GET", "POST") or resource is None:
            continue
        path = re.sub(r"\{format\}", "csv", resource.canonical)
        path = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        found.append((route.method, "/console" + path.rstrip("/") + ("/" if path == "/" else "")))
    return found


_PUBLIC = {
    ("GET", "/console/sign-in"),
    ("GET", "/console/auth/start"),
    ("GET", "/console/auth/callback"),
    ("GET", "/console/static"),
}


async def test_every_console_route_needs_a_session_and_every_post_a_csrf_token(
    camden: Node, browser: ConsoleClient
) -> None:
    routes = _console_routes()
    assert _PUBLIC <= set(routes) and len(routes) > len(_PUBLIC) + 10
    guarded = [route for route in routes if route not in _PUBLIC]
    async with aiohttp.ClientSession() as anonymous:
        for method, path in guarded:
            async with anonymous.request(
                method, camden.plan.api_url + path, data={}, allow_redirects=False
            ) as reply:
                assert reply.status == 303, (method, path)
                assert reply.headers["Location"] == "/console/sign-in?signed-out=1", path
    entries = await camden.audit_count()

    await browser.sign_in(CAMDEN.lead_contacts()[0])
    posts = [path for method, path in guarded if method == "POST"]
    assert "/console/sign-out" in posts and len(posts) >= 5
    for path in posts:
        for form in ({}, {"csrf_token": "0" * 64}):
            status, page, _ = await browser.post(path, {"decision": "approve", **form})
            assert status == 403 and "csrf_failed" in page, path
    assert len(await camden.audit_rows("console.csrf")) == 2 * len(posts)
    # Without a session, a POST to a public address is refused, counted, and audited by nobody.
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.post(camden.plan.api_url + "/console/auth/start", data={}) as reply:
            assert reply.status == 403 and "csrf_failed" in await reply.text()
    assert camden.anonymous_refusals("csrf_failed") == 1
    # The sign-in, the queue it lands on, the lead contact's refused forms: nothing else.
    assert await camden.audit_count() == entries + 2 + 2 * len(posts)


async def test_the_first_approver_of_an_override_cannot_give_the_second(
    camden: Node, browser: ConsoleClient
) -> None:
    lead = CAMDEN.lead_contacts()[0]
    record = await camden.app[REQUESTS].create(
        "case-system",
        RequestInput.model_validate(
            {
                "kind": "disclosure",
                "practitioner": {
                    "id": "camden-pc-1",
                    "name": "A Police Officer",
                    "role": "Police officer",
                    "agency": "Met",
                    "agency_type": "police",
                },
                "purpose": "safeguarding",
                "reason": "immediate risk of significant harm",
                "target_authority": HACKNEY.gss,
                "episode_ref": str(uuid.uuid4()),
                "sections": ["child"],
                "override": {
                    "justification": "Safeguarding concern tonight; consent cannot be sought.",
                    "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat(),
                },
            }
        ),
        "test",
    )
    await browser.sign_in(lead)
    status, page, _ = await browser.get("/console/queue")
    path = f"/console/requests/{record.id}/decision"
    token = browser.csrf(page)
    status, page, _ = await browser.post(path, {"decision": "approve", "csrf_token": token})
    assert status == 200 and 'data-state="awaiting_second_approval"' in page

    status, page, _ = await browser.get("/console/overrides")
    assert "You gave the first approval" in page and path not in page  # no form offered
    status, page, _ = await browser.post(
        path, {"decision": "approve", "back": "overrides", "csrf_token": token}
    )
    assert status == 403 and "self_approval" in page  # the domain refuses a hand-made POST too
    stored = await camden.app[REQUESTS].get(record.id)
    assert stored.state == "awaiting_second_approval"
    assert [d["by"] for d in stored.document["decisions"]] == [lead]
    assert await camden.audit_rows("console.decide") == [
        (f"lead:{lead}", "refused", "self_approval")
    ]


async def test_decision_forms_are_read_by_the_domains_model(
    camden: Node, browser: ConsoleClient
) -> None:
    request_id = await _waiting_request(camden)
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/queue")
    token = browser.csrf(page)
    for path in (
        f"/console/requests/{request_id}/decision",
        f"/console/disclosures/{uuid.uuid4()}/decision",
    ):
        for form in ({"decision": "maybe"}, {"decision": "approve", "note": "x" * 2001}):
            status, page, _ = await browser.post(path, {**form, "csrf_token": token})
            assert status == 422 and "a note is at most 2000 characters" in page, (path, form)
    assert (await camden.app[REQUESTS].get(request_id)).state == "awaiting_verification"


async def test_the_queue_shows_no_outcome_it_did_not_look_up(
    camden: Node, browser: ConsoleClient
) -> None:
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    for made_up in ("sent:Call 0800 000 000 to confirm", str(uuid.uuid4()), "%C3%A9"):
        status, page, _ = await browser.get(f"/console/queue?disclosure={made_up}")
        assert status == 200 and "Decision recorded" not in page and "0800" not in page


async def test_the_audit_page_checks_from_the_latest_checkpoint(
    database: Database, tmp_path: Path
) -> None:
    async with _camden(database, tmp_path, audit_checkpoint_every=5) as node:
        client = ConsoleClient(node.plan.api_url)
        try:
            await client.sign_in(CAMDEN.lead_contacts()[0])
            for _ in range(12):
                await client.get("/console/overrides")
            status, page, _ = await client.get("/console/audit")
            total = await node.audit_count()
            found = re.search(r"since its latest signed checkpoint: entries (\d+) to (\d+)", page)
            assert status == 200 and found is not None, page
            since, last = int(found.group(1)), int(found.group(2))
            assert since % 5 == 0 and last == total - 1 and last - since < 5  # the tail only
            assert "Verify the whole chain" in page

            status, page, _ = await client.post("/console/audit", {"csrf_token": client.csrf(page)})
            assert status == 200 and f"all {total} entries checked" in page

            # An entry before the checkpoint altered: only the whole-chain verification reads it.
            async with node.app[ENGINE].begin() as connection:
                await connection.execute(
                    update(audit_entries)
                    .where(audit_entries.c.sequence == 2)
                    .values(action="console.altered")
                )
            status, page, _ = await client.get("/console/audit")
            assert "since its latest signed checkpoint" in page
            status, page, _ = await client.post("/console/audit", {"csrf_token": client.csrf(page)})
            assert "does NOT verify: hash mismatch at entry 2" in page

            # The head (never before the latest checkpoint) altered: the everyday check falls back
            # to the whole chain, which names the first problem.
            head = await node.audit_count()
            async with node.app[ENGINE].begin() as connection:
                await connection.execute(
                    update(audit_entries)
                    .where(audit_entries.c.sequence == head)
                    .values(action="console.altered")
                )
            status, page, _ = await client.get("/console/audit")
            assert "does NOT verify: hash mismatch at entry 2" in page
        finally:
            await client.close()


async def test_a_lead_contact_finds_a_childs_episodes_for_a_subject_access_request(
    camden: Node, browser: ConsoleClient
) -> None:
    held = episode()
    async with camden.app[ENGINE].begin() as connection:
        await camden.app[EPISODES].add(connection, held)
        await connection.execute(
            insert(register).values(
                id=str(uuid.uuid4()),
                episode_id=str(held.episode_id),
                direction="sent",
                counterpart=HACKNEY.gss,
                requested_by="p-1",
                sections=["child"],
                basis="C1",
                override=False,
                disclosed_at=dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC),
            )
        )
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get("/console/episodes")
    token = browser.csrf(page)
    child = held.child
    by_names = {
        "csrf_token": token,
        "given_name": child.given_names,
        "family_name": child.family_name,
        "date_of_birth": str(child.date_of_birth),
    }
    status, page, _ = await browser.post("/console/episodes", by_names)
    assert status == 200, page
    found = page[page.index('id="child-episodes"') :].split("</table>")[0]
    assert found.count("<tr>") == 2  # the heading and the one episode
    assert f'href="/console/episodes/{held.episode_id}#register"' in found
    assert "<td>held</td>" in found and "<td>1</td>" in found  # one register entry

    status, page, _ = await browser.post(
        "/console/episodes", {**by_names, "date_of_birth": "2001-01-01", "given_name": "Other"}
    )
    assert status == 200 and "No episode of this child is held or was received here" in page

    status, page, _ = await browser.post(
        "/console/episodes", {"csrf_token": token, "family_name": child.family_name}
    )
    assert status == 422 and "search by nhs_number, upn" in page
    status, page, _ = await browser.post(
        "/console/episodes", {"csrf_token": token, "nhs_number": "9434765918"}
    )
    assert status == 422 and "check digit does not match" in page
    assert 'value="9434765918"' in page  # given back to be corrected, on this page only

    async with camden.app[ENGINE].connect() as connection:
        rows = await connection.execute(
            select(audit_entries.c.action, audit_entries.c.outcome, audit_entries.c.details)
            .where(audit_entries.c.action.in_(["console.view", "console.search"]))
            .order_by(audit_entries.c.sequence)
        )
        said = [(r.action, r.outcome, json.loads(r.details)) for r in rows]
    searches = [s for s in said if s[2].get("page") == "child_search" or s[0] == "console.search"]
    assert searches == [
        (
            "console.view",
            "success",
            {
                "page": "child_search",
                "keys": ["date_of_birth"],
                "found": 1,
                "episodes": [str(held.episode_id)],
            },
        ),
        (
            "console.view",
            "success",
            {"page": "child_search", "keys": ["date_of_birth"], "found": 0, "episodes": []},
        ),
        ("console.search", "refused", {"keys": ["family_name"], "rule": "bad_request"}),
        ("console.search", "refused", {"keys": ["nhs_number"], "rule": "nhs_number.checksum"}),
    ]
    assert child.family_name not in json.dumps(said)
