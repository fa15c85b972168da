"""Console and token endpoint findings of the review, against a real node (SQLite and PostgreSQL):
the consent table read as the consent engine reads it, pages opened by another website, identity
providers whose issuer ends in "/", bodies and credentials that are no form or no UTF-8, a failed
sign-in used once, client secrets checked only where allowed, and the queue's views audited with the
requests they show."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OKPKey
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.console._oidc import OidcClient
from gateway.console._sessions import SIGN_IN_COOKIE
from gateway.demo import DEMO_PASSWORD
from gateway.errors import Unauthorised
from gateway.keys import ENGINE, SETTINGS
from gateway.oauth import register_client
from gateway.oauth._clients import load_client
from gateway.settings import Settings
from gateway.storage._tables import audit_entries, console_sessions

from ..conftest import Database
from .console_client import ConsoleClient
from .node import BoroughSystem, node_settings, register_system
from .test_console import CAMDEN, Node, _camden, _waiting_request

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "national"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')


@pytest.fixture
async def camden(database: Database, tmp_path: Path) -> AsyncIterator[Node]:
    async with _camden(database, tmp_path) as node:
        yield node


@pytest.fixture
async def browser(camden: Node) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(camden.plan.api_url)
    yield client
    await client.close()


async def _details(node: Node, action: str) -> list[tuple[str | None, dict[str, Any]]]:
    async with node.app[ENGINE].connect() as connection:
        rows = await connection.execute(
            select(audit_entries.c.subject, audit_entries.c.details)
            .where(audit_entries.c.action == action)
            .order_by(audit_entries.c.sequence)
        )
        return [(row.subject, json.loads(row.details)) for row in rows.all()]


async def _episode_with(node: Node, *consents: dict[str, Any]) -> str:
    """An episode of the national fixture with these consent statements, sent through the API."""
    key = ECKey.generate_key("P-256", parameters={"kid": f"k{time.time_ns()}"}, private=True)
    client = await register_client(
        node.app[ENGINE],
        f"eCAF-{uuid.uuid4().hex[:6]}",
        ["episodes:write"],
        jwks={"keys": [key.as_dict(private=False)]},
    )
    assertion = private_key_jwt_sign(
        key.as_dict(private=True),
        client.client_id,
        node.plan.settings.token_endpoint,
        alg="ES256",
    )
    document = json.loads((FIXTURES / "valid-episode.json").read_text())
    document.update(
        episode_id=str(uuid.uuid4()),
        local_ref=f"CAF-{uuid.uuid4().hex[:8]}",
        consents=list(consents),
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(
            node.plan.api_url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": str(assertion),
            },
        ) as reply:
            token = (await reply.json())["access_token"]
        async with http.post(
            node.plan.api_url + "/api/v1/forms",
            data=json.dumps(document),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as reply:
            body = await reply.json()
            assert reply.status == 201, body
    return str(body["episode_ids"][0])


def _consent(consent_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "given_by": [{"role": "parent_carer", "name": "Alex Testparent"}],
        "given_on": "2026-02-20",
        "method": "written",
        "storage_agreed": True,
        "purposes": ["early_help"],
        **changes,
    }


def _consent_rows(page: str) -> dict[str, list[str]]:
    """The consent table's cells, by statement id."""
    table = page[page.index('<h2 id="consent">') :].split("</table>")[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        rows[cells[0]] = cells
    return rows


# --- 1. the consent table says what the consent engine decides ------------------------------------


async def test_the_consent_table_reads_recipients_and_sections_as_the_engine_does(
    camden: Node, browser: ConsoleClient
) -> None:
    episode_id = await _episode_with(
        camden,
        _consent("C-ANYONE", share_with=[]),  # no recipient named: no limit on recipients
        _consent("C-NONE", share_with=[{"agency_type": "health"}], sections=[]),  # no section
        _consent("C-CHILD", share_with=[{"agency_type": "health"}], sections=["child"]),
        _consent("C-AHEAD", withdrawn_on="2099-01-01"),  # the engine counts it from today
    )
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.get(f"/console/episodes/{episode_id}")
    assert status == 200
    rows = _consent_rows(page)
    share_with, sections = 4, 6  # the columns
    assert rows["C-ANYONE"][share_with] == "anyone not excluded (no limit)"
    assert rows["C-ANYONE"][sections] == "all"
    assert rows["C-NONE"][share_with] == "health"
    assert rows["C-NONE"][sections] == "none"
    assert rows["C-CHILD"][sections] == "child"
    assert rows["C-AHEAD"][1].startswith("withdrawn") and rows["C-ANYONE"][1] == "in force"


# --- 2. another website cannot open console pages (and write audit entries) in a lead's name ------


async def test_a_page_another_site_opens_writes_nothing_and_offers_a_link_from_here(
    camden: Node, browser: ConsoleClient
) -> None:
    episode_id = await _episode_with(camden, _consent("C1", share_with=[]))
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    entries = await camden.audit_count()
    child = f"/console/episodes/{episode_id}"
    other_site = {"Sec-Fetch-Site": "cross-site"}
    for path in (
        f"{child}?agency_type=police&purpose=early_help",
        f"{child}/register.csv",
        f"{child}/register.pdf",
        "/console/queue",
        "/console/",
    ):
        status, page, reply = await browser.get(path, headers=other_site, allow_redirects=False)
        assert status == 403 and "You followed a link from another website" in page, path
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "Testparent" not in page and "Statement" not in page  # nothing of the child
        # The link opens the address without the query the other site chose.
        assert f'<a href="{path.split("?")[0]}">Open the page from the console</a>' in page
    assert await camden.audit_count() == entries  # no view, no consent check, no export
    assert camden.anonymous_refusals("cross_site") == 5

    # Followed from the console itself (or from a browser that sends no Fetch Metadata): opened.
    for same in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        status, page, _ = await browser.get(child, headers=same)
        assert status == 200 and "<h1>Child view" in page
    assert [s for s, _ in await _details(camden, "console.view") if s == episode_id] == [
        episode_id
    ] * 3

    # A form posted from another site is refused, however good its token.
    status, page, _ = await browser.get("/console/queue")
    status, page, _ = await browser.post(
        "/console/audit", {"csrf_token": browser.csrf(page)}, headers=other_site
    )
    assert status == 403 and "csrf_failed" in page


async def test_signing_in_through_a_provider_on_another_site_lands_on_the_queue(
    camden: Node, browser: ConsoleClient
) -> None:
    """The provider's redirect to the callback is a cross-site navigation: the callback is let in,
    and moves on to the queue by a page of ours, so that the queue is not held back."""
    page = await browser.begin()
    form = dict(_HIDDEN.findall(page))
    form.update(username=CAMDEN.lead_contacts()[0], password=DEMO_PASSWORD)
    async with browser.http.post(
        browser.base + "/dev-idp/authorize", data=form, allow_redirects=False
    ) as reply:
        callback = reply.headers["Location"]
    async with browser.http.get(
        callback, headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False
    ) as reply:
        assert reply.status == 200
        page = await reply.text()
    assert '<meta http-equiv="refresh" content="0; url=/console/queue">' in page
    assert browser.cookie is not None and browser.sign_in_cookie is None
    status, page, _ = await browser.get("/console/queue", headers={"Sec-Fetch-Site": "same-origin"})
    assert status == 200 and "<h1>Requests to verify</h1>" in page


# --- 3. an issuer that ends in "/" -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _provider(port: int, issuer: str, key: OKPKey) -> AsyncIterator[None]:
    """A provider's discovery document and JWKS, naming `issuer` exactly as given."""
    base = f"http://127.0.0.1:{port}"

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
            }
        )

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [key.as_dict(private=False)]})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def _id_token(key: OKPKey, issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": "cafx-console",
        "sub": "lead-1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n",
    }
    return jwt.encode({"alg": "Ed25519", "kid": "k1"}, claims, key, algorithms=["Ed25519"])


@pytest.mark.parametrize("configured", ["with-slash", "without-slash"])
async def test_an_issuer_that_ends_in_a_slash_signs_people_in(
    unused_tcp_port: int, configured: str
) -> None:
    issuer = f"http://127.0.0.1:{unused_tcp_port}/"  # as Auth0 spells its issuers
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"}, private=True)
    async with _provider(unused_tcp_port, issuer, key), aiohttp.ClientSession() as session:
        client = OidcClient(
            session,
            issuer=issuer if configured == "with-slash" else issuer.rstrip("/"),
            client_id="cafx-console",
            client_secret=None,
            redirect_url="https://node.example/console/auth/callback",
            allow_http=True,
        )
        assert (await client.validate(_id_token(key, issuer), "n")).subject == "lead-1"
        # Exactly as the provider spells it: another spelling is another issuer.
        with pytest.raises(Unauthorised):
            await client.validate(_id_token(key, issuer.rstrip("/")), "n")


# --- 4. bodies and credentials that are no form, or no UTF-8 --------------------------------------

_BROKEN_MULTIPART = {"Content-Type": "multipart/form-data"}  # no boundary


async def test_a_body_that_is_no_form_is_refused_as_a_page_not_a_500(
    camden: Node, browser: ConsoleClient
) -> None:
    async with aiohttp.ClientSession() as anonymous:  # a public address, nobody signed in
        async with anonymous.post(
            camden.plan.api_url + "/console/auth/start", data=b"x", headers=_BROKEN_MULTIPART
        ) as reply:
            assert reply.status == 403 and "csrf_failed" in await reply.text()
            assert "Content-Security-Policy" in reply.headers
    assert camden.anonymous_refusals("csrf_failed") == 1
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    async with browser.http.post(
        browser.base + "/console/audit", data=b"x", headers=_BROKEN_MULTIPART
    ) as reply:
        assert reply.status == 403 and "csrf_failed" in await reply.text()
        assert reply.headers["Cache-Control"] == "no-store"
    assert await camden.audit_rows("console.csrf") == [
        (f"lead:{CAMDEN.lead_contacts()[0]}", "refused", "csrf_failed")
    ]


async def test_a_decided_id_that_is_no_uuid_names_nothing(
    camden: Node, browser: ConsoleClient
) -> None:
    """On PostgreSQL a NUL in the address reached the database and answered 500."""
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    for made_up in ("%00abc", "%ED%A0%80", "not-a-uuid"):
        for page in ("queue", "overrides"):
            status, text, _ = await browser.get(f"/console/{page}?decided={made_up}")
            assert status == 200 and "Decision recorded" not in text, (page, made_up)


async def test_the_token_endpoint_refuses_what_is_no_form_or_no_utf8(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path, allow_client_secret_basic=True)
    http = await aiohttp_client(create_app(settings))
    response = await http.post("/oauth/token", data=b"x", headers=_BROKEN_MULTIPART)
    assert response.status == 400 and (await response.json())["error"] == "invalid_request"
    undecodable = "Basic " + base64.b64encode(b"\xff\xfe:x").decode()
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": undecodable},
    )
    assert response.status == 401 and (await response.json())["error"] == "invalid_client"


def _escaped_assertion(system: BoroughSystem, **claims: Any) -> str:
    """A client assertion signed as `private_key_jwt_sign` signs one, its claims as ASCII JSON."""
    client_id, now = system.client.client_id, int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": system.token_endpoint,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    header = {"alg": "ES256", "typ": "JWT"}
    return jws.serialize_compact(header, json.dumps(payload).encode(), system.key)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"jti": "a" * 257}, id="jti-too-long"),
        pytest.param({"jti": "x\x00y"}, id="jti-nul"),
        pytest.param({"sub": "cafx-\x00"}, id="sub-nul"),
    ],
)
async def test_an_assertion_whose_ids_no_column_can_hold_is_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, claims: dict[str, str]
) -> None:
    """Validly signed: on PostgreSQL these reached the database and answered 500."""
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": system.assertion(**claims),
        },
    )
    assert response.status in (400, 401)
    assert (await response.json())["error"] == "invalid_client"
    # A lone surrogate, escaped in the JSON (no encoder writes one raw): no more storable.
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _escaped_assertion(system, jti="x\ud800y"),
        },
    )
    assert response.status == 400 and (await response.json())["error"] == "invalid_client"
    # 256 printable characters fit: accepted.
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": system.assertion(jti="j" * 256),
        },
    )
    assert response.status == 200, await response.text()


# --- 5. a sign-in whose code exchange failed is used up -------------------------------------------


async def test_a_failed_code_exchange_uses_the_sign_in_up(
    camden: Node, browser: ConsoleClient
) -> None:
    page = await browser.begin()
    state = dict(_HIDDEN.findall(page))["state"]
    assert browser.sign_in_cookie is not None
    async with browser.http.get(
        browser.base + f"/console/auth/callback?state={state}&code=made-up", allow_redirects=False
    ) as reply:
        assert reply.status == 401 and "invalid_grant" in await reply.text()
        assert "Content-Security-Policy" in reply.headers
        assert any(c.startswith(f'{SIGN_IN_COOKIE}=""') for c in reply.headers.getall("Set-Cookie"))
    assert browser.sign_in_cookie is None
    status, page, _ = await browser.get(f"/console/auth/callback?state={state}&code=again")
    assert status == 400 and "not started here" in page  # the same state is no good twice
    assert camden.anonymous_refusals("invalid_grant") == 1
    assert camden.anonymous_refusals("state_mismatch") == 1


# --- 6. client secrets: checked only where allowed, the same way for every client id --------------


@contextlib.contextmanager
def _scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Every scrypt the node runs, as whether it ran on the event loop's thread."""
    calls: list[bool] = []
    real = hashlib.scrypt
    loop_thread = threading.get_ident()

    def spy(*args: Any, **kwargs: Any) -> bytes:
        calls.append(threading.get_ident() == loop_thread)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    yield calls
    monkeypatch.setattr(hashlib, "scrypt", real)


_SECRET = "s3cret-for-development-0123456789"  # noqa: S105 - a test's, 32 characters or more


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_a_client_secret_is_never_checked_where_secrets_are_not_allowed(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = node_settings(database, tmp_path, allow_client_secret_basic=False)
    http = await aiohttp_client(create_app(settings))
    engine = http.app[ENGINE]
    registered = await register_client(engine, "dev", ["episodes:read"], secret=_SECRET)
    loaded = await load_client(engine, registered.client_id, allow_secret=False)
    assert loaded is not None and loaded.secret_hash is not None
    with _scrypt_calls(monkeypatch) as calls:
        assert loaded.check_client_secret(_SECRET) is False
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(registered.client_id, _SECRET),
        )
        assert response.status == 401
        assert calls == []  # not one scrypt: the secret was never looked at


async def test_a_client_secret_is_checked_off_the_event_loop_whether_the_id_exists_or_not(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = node_settings(database, tmp_path, allow_client_secret_basic=True)
    http = await aiohttp_client(create_app(settings))
    registered = await register_client(http.app[ENGINE], "dev", ["episodes:read"], secret=_SECRET)
    keys_only = await register_system(http, settings, ["episodes:read"])
    answers = []
    with _scrypt_calls(monkeypatch) as calls:
        for client_id in (
            registered.client_id,
            "cafx-0000000000000000",
            keys_only.client.client_id,
        ):
            response = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=_basic(client_id, "wrong"),
            )
            answers.append((response.status, await response.json()))
        # One check for each, none of them on the event loop's thread.
        assert calls == [False, False, False]
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=_basic(registered.client_id, _SECRET),
        )
        assert response.status == 200
        assert calls == [False] * 4
    # The same answer whichever id: none says which ids exist.
    assert answers[0][0] == 401 and answers[0][1]["error"] == "invalid_client"
    assert answers[1] == answers[0] and answers[2] == answers[0]


# --- 7. the queue's views name the requests they show ---------------------------------------------


async def test_queue_and_overrides_views_name_the_requests_shown(
    camden: Node, browser: ConsoleClient
) -> None:
    first, second = await _waiting_request(camden), await _waiting_request(camden, "camden-t-8")
    await browser.sign_in(CAMDEN.lead_contacts()[0])  # lands on the queue
    await browser.get("/console/overrides")
    views = await _details(camden, "console.view")
    queue = [d for _, d in views if d["page"] == "queue"]
    overrides = [d for _, d in views if d["page"] == "overrides"]
    assert sorted(queue[-1]["requests"]) == sorted([first, second])
    assert queue[-1]["results"] == 2 and queue[-1]["episodes"] == []
    assert overrides[-1]["requests"] == [] and overrides[-1]["results"] == 0

    status, page, _ = await browser.get("/console/queue")
    await browser.post(
        f"/console/requests/{first}/decision",
        {"decision": "reject", "csrf_token": browser.csrf(page)},
    )  # lands on the queue, which shows the decided request (and lists it among the recent)
    views = await _details(camden, "console.view")
    latest = [d for _, d in views if d["page"] == "queue"][-1]
    assert sorted(latest["requests"]) == sorted([first, second])  # each once


# --- fifth pass: a long queue, a sibling site, refused decisions ------------------------------------


async def test_a_long_queue_is_shown_and_every_request_in_it_named(
    camden: Node, browser: ConsoleClient
) -> None:
    """An audit entry's details hold at most 64 items and 2 KiB: 60 waiting requests made the
    queue (where sign-in lands) a 500. The ids are now spread over as many entries as they need."""
    waiting = [await _waiting_request(camden, f"camden-t-{n}") for n in range(60)]
    status, _page = await browser.sign_in(CAMDEN.lead_contacts()[0])  # lands on the queue
    assert status == 200
    views = [d for _, d in await _details(camden, "console.view") if d["page"] == "queue"]
    assert views[0]["results"] == 60 and "part" not in views[0]
    assert [d.get("part") for d in views[1:]] == [2]
    assert sorted(r for d in views for r in d["requests"]) == sorted(waiting)


async def _last_seen(node: Node) -> list[Any]:
    async with node.app[ENGINE].connect() as connection:
        return list((await connection.execute(select(console_sessions.c.last_seen_at))).scalars())


async def test_a_page_a_sibling_site_opens_writes_nothing(
    camden: Node, browser: ConsoleClient
) -> None:
    """An image on another host of the same site (SameSite=Lax sends the cookie along) must not
    open a child view, write audit entries in the lead contact's name, or keep the session alive."""
    episode_id = await _episode_with(camden, _consent("C1", share_with=[]))
    await browser.sign_in(CAMDEN.lead_contacts()[0])
    entries = await camden.audit_count()
    seen = await _last_seen(camden)
    status, page, _ = await browser.get(
        f"/console/episodes/{episode_id}?agency_type=health&purpose=early_help",
        headers={"Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image"},
        allow_redirects=False,
    )
    assert status == 403 and "You followed a link from another website" in page
    assert await camden.audit_count() == entries
    assert await _last_seen(camden) == seen


async def test_a_decision_the_console_cannot_take_is_audited(
    camden: Node, browser: ConsoleClient
) -> None:
    request_id = await _waiting_request(camden)
    status, page = await browser.sign_in(CAMDEN.lead_contacts()[0])
    status, page, _ = await browser.post(
        f"/console/requests/{request_id}/decision",
        {"decision": "reject", "note": "", "csrf_token": browser.csrf(page)},
    )
    assert status == 422, page
    refused = await _details(camden, "console.decide")
    assert [subject for subject, _ in refused] == [request_id]


def test_the_built_in_identity_provider_is_refused_on_a_reachable_node(tmp_path: Path) -> None:
    """Its one shared password signs anyone in as any lead contact: development on this machine
    only."""
    settings = Settings(
        member_id=CAMDEN.gss,
        federation_metadata=str(tmp_path / "metadata.jws"),
        console_dev_provider=True,
        console_dev_password="demo",
        public_url="https://caf-exchange.camden.example",
    )
    with pytest.raises(RuntimeError, match="loopback"):
        create_app(settings)
    for loopback in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        create_app(settings.model_copy(update={"public_url": loopback}))
    listening = settings.model_copy(
        update={"public_url": "http://localhost:8080", "host": "0.0.0.0"}  # noqa: S104 - the point
    )
    with pytest.raises(RuntimeError, match="loopback"):  # reachable from the network all the same
        create_app(listening)


async def test_the_origin_is_compared_as_scheme_host_and_port(
    camden: Node, browser: ConsoleClient
) -> None:
    """`public_url` and a browser's `Origin` may spell one origin differently (case, a default
    port); a form from another port is still refused."""
    status, page = await browser.sign_in(CAMDEN.lead_contacts()[0])
    public = yarl.URL(camden.app[SETTINGS].public_url)
    assert public.port is not None
    for origin, accepted in (
        (f"HTTP://{public.host}:{public.port}", True),
        (f"{public.scheme}://{public.host}:{public.port + 1}", False),
    ):
        status, answer, _ = await browser.post(
            "/console/audit", {"csrf_token": browser.csrf(page)}, headers={"Origin": origin}
        )
        assert (status == 200) is accepted, (origin, status)
