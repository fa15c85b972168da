"""The federation transport (DESIGN 3.1, 3.2): real nodes (aiohttp apps) on 127.0.0.1 over mutual TLS 1.3
with certificates from a throwaway federation CA, requests and responses signed with RFC 9421 (Ed25519
and P-256 keys), and every refusal the receiver must make, each with its stable wire code."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import gzip
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, OKPKey
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpServer
from sqlalchemy.exc import TimeoutError as PoolTimeout
from yarl import URL

from gateway.errors import (
    ConsentRefused,
    FederationRefused,
    PeerUnavailable,
    RateLimited,
    error_middleware,
)
from gateway.federation.transport import (
    MAX_RESPONSE_BYTES,
    REQUEST_COMPONENTS,
    FederationClient,
    Key,
    MemoryReplayStore,
    ReplayStore,
    RequestParts,
    ServerTransport,
    SqlReplayStore,
    check_content_digest,
    client_context,
    content_digest,
    federation_middleware,
    federation_session,
    peer_member,
    server_context,
    sign_request,
    verified_json,
    verified_request,
    verify_request,
    verify_response,
)
from gateway.storage import create_engine, upgrade

from ..conftest import Database
from .federation_pki import FederationCA, MemberCredentials

CAMDEN, HACKNEY, ISLINGTON, TOWER_HAMLETS = "E09000007", "E09000012", "E09000019", "E09000030"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def public(key: Key) -> Key:
    return type(key).import_key(key.as_dict(private=False))


@functools.cache
def member_key(gss: str, kind: str = "OKP") -> Key:
    """Ed25519 for most members; P-256 where `kind` says EC (both algorithms travel the wire)."""
    if kind == "EC":
        return ECKey.generate_key(
            "P-256", parameters={"kid": f"{gss}-ec", "alg": "ES256"}, private=True
        )
    return OKPKey.generate_key(
        "Ed25519", parameters={"kid": f"{gss}-ed", "alg": "Ed25519"}, private=True
    )


# --- the member directory, as the metadata cache will answer key look-ups ------------------------


@dataclass
class Entry:
    status: str = "active"
    keys: dict[str, tuple[Key, dt.datetime, dt.datetime]] = field(default_factory=dict)


class Directory:
    """Key look-up with the contract of `KeyLookup`: unknown_member, member_suspended, and
    invalid_signature for an unknown keyid or a key outside its window."""

    def __init__(self) -> None:
        self.members: dict[str, Entry] = {}

    def add(self, gss: str, key: Key, *, valid: tuple[int, int] = (-3600, 3600)) -> None:
        now = utc_now()
        window = (now + dt.timedelta(seconds=valid[0]), now + dt.timedelta(seconds=valid[1]))
        entry = self.members.setdefault(gss, Entry())
        entry.keys[str(key.kid)] = (public(key), *window)

    def lookup(self, sender: str, keyid: str, at: dt.datetime) -> Key:
        entry = self.members.get(sender)
        if entry is None:
            raise FederationRefused("the sender is not a federation member", code="unknown_member")
        if entry.status != "active":
            raise FederationRefused("the sender is suspended", code="member_suspended")
        if keyid not in entry.keys:
            raise FederationRefused("unknown key for the sender", code="invalid_signature")
        key, not_before, not_after = entry.keys[keyid]
        if not not_before <= at <= not_after:
            raise FederationRefused(
                "the key is outside its validity window", code="invalid_signature"
            )
        return key


# --- nodes: real aiohttp apps with the federation sub-app -------------------------------------------

CLIENT: web.AppKey[FederationClient] = web.AppKey("test_federation_client", FederationClient)


async def echo(request: web.Request) -> web.Response:
    verified = verified_request(request)
    return web.json_response(
        {
            "sender": verified.sender,
            "keyid": verified.keyid,
            "tls_peer": peer_member(request),
            "attestation": verified.attestation,
            "received": await verified_json(request),
        }
    )


async def hello(request: web.Request) -> web.Response:
    return web.json_response(
        {"query": dict(request.query), "sender": verified_request(request).sender}
    )


async def refuse(_: web.Request) -> web.Response:
    raise ConsentRefused("no consent covers this purpose", code="consent_missing")


async def boom(_: web.Request) -> web.Response:
    raise RuntimeError("a bug with a child's name in it")


async def busy(_: web.Request) -> web.Response:
    raise PoolTimeout("QueuePool limit of size 1 overflow 0 reached")  # what SQLAlchemy raises


async def relay(request: web.Request) -> web.Response:
    """Node-to-node inside a node: forward the body to the member named in it."""
    body = await verified_json(request)
    status, answer, verified = await request.config_dict[CLIENT].post(body["to"], "/echo", body)
    return web.json_response({"status": status, "answer": answer, "signed_by": verified.sender})


@dataclass
class Node:
    gss: str
    key: Key
    credentials: MemberCredentials

    @property
    def keyid(self) -> str:
        return str(self.key.kid)


def node_app(
    node: Node,
    federation: Federation,
    *,
    replay_store: ReplayStore | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> web.Application:
    transport = ServerTransport(
        me=node.gss,
        signing_key=node.key,
        keyid=node.keyid,
        key_lookup=federation.directory.lookup,
        replay_store=replay_store or MemoryReplayStore(),
        clock=clock,
    )
    sub = web.Application(middlewares=[federation_middleware(transport)])
    sub.router.add_post("/echo", echo)
    sub.router.add_get("/hello", hello)
    sub.router.add_post("/refuse", refuse)
    sub.router.add_post("/boom", boom)
    sub.router.add_post("/busy", busy)
    sub.router.add_post("/relay", relay)

    async def client(app: web.Application) -> AsyncIterator[None]:
        async with federation_session(client_context(*federation.files(node))) as session:
            app[CLIENT] = federation.client_for(node, session)
            yield

    app = web.Application(middlewares=[error_middleware])
    app.cleanup_ctx.append(client)
    app.add_subapp("/federation/v1", sub)
    return app


@dataclass
class Federation:
    ca: FederationCA
    directory: Directory
    nodes: dict[str, Node]
    endpoints: dict[str, str] = field(default_factory=dict)
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    def files(self, node: Node) -> tuple[Path, Path, Path]:
        c = node.credentials
        return c.cert_file, c.key_file, c.ca_file

    def client_for(
        self,
        node: Node,
        session: aiohttp.ClientSession,
        *,
        endpoints: Mapping[str, str] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> FederationClient:
        return FederationClient(
            session,
            me=node.gss,
            signing_key=node.key,
            keyid=node.keyid,
            endpoints=(endpoints or self.endpoints).__getitem__,
            response_keys=self.directory.lookup,
            clock=clock,
            max_response_bytes=max_response_bytes,
        )

    def session(self, context: ssl.SSLContext, *, checked: bool = False) -> aiohttp.ClientSession:
        """A raw session, or (`checked`) one from `federation_session` for a `FederationClient`."""
        if checked:
            session = federation_session(context)
        else:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        self.sessions.append(session)
        return session

    def client(self, gss: str, **kwargs: Any) -> FederationClient:
        node = self.nodes[gss]
        context = client_context(*self.files(node))
        return self.client_for(node, self.session(context, checked=True), **kwargs)

    async def serve(self, server: AiohttpServer, gss: str, app: web.Application) -> str:
        node = self.nodes[gss]
        running = await server(app, ssl=server_context(*self.files(node)))
        url = f"https://127.0.0.1:{running.port}/federation/v1"
        self.endpoints[gss] = url
        return url


@pytest.fixture
async def federation(tmp_path: Path, aiohttp_server: AiohttpServer) -> AsyncIterator[Federation]:
    """Camden (Ed25519) calling; Hackney (P-256) and Islington (Ed25519) serving; Tower Hamlets has
    a federation certificate but is not in the directory."""
    ca = FederationCA(tmp_path / "pki")
    nodes = {
        gss: Node(gss, member_key(gss, "EC" if gss == HACKNEY else "OKP"), ca.issue(gss))
        for gss in (CAMDEN, HACKNEY, ISLINGTON, TOWER_HAMLETS)
    }
    directory = Directory()
    for gss in (CAMDEN, HACKNEY, ISLINGTON):
        directory.add(gss, nodes[gss].key)
    fed = Federation(ca, directory, nodes)
    for gss in (HACKNEY, ISLINGTON):
        await fed.serve(aiohttp_server, gss, node_app(nodes[gss], fed))
    yield fed
    for session in fed.sessions:
        await session.close()


# --- a signed request by hand (synapse's make_signed_request) ---------------------------------------


def make_signed_request(
    fed: Federation,
    sender: str,
    recipient: str,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    now: dt.datetime | None = None,
    key: Key | None = None,
    keyid: str | None = None,
    headers: Mapping[str, str] | None = None,
    nonce: str | None = None,
    to: str | None = None,
) -> tuple[RequestParts, bytes]:
    """A request signed as `sender` for `recipient`, addressed to `to`'s endpoint (default the
    recipient's): the parts to send and the body bytes."""
    raw = b"" if body is None else json.dumps(body).encode()
    node = fed.nodes[sender]
    parts = sign_request(
        method,
        fed.endpoints[to or recipient] + path,
        raw,
        sender=sender,
        recipient=recipient,
        key=key or node.key,
        keyid=keyid or node.keyid,
        now=now or utc_now(),
        headers={"Content-Type": "application/json", **(headers or {})},
        nonce=nonce,
    )
    return parts, raw


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]
    raw: bytes

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


async def send(session: aiohttp.ClientSession, parts: RequestParts, body: bytes) -> Answer:
    async with session.request(
        parts.method, URL(parts.url, encoded=True), data=body or None, headers=parts.headers
    ) as response:
        raw = await response.read()
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
        )
        return Answer(response.status, json.loads(raw) if raw else None, headers, raw)


def as_member(fed: Federation, gss: str) -> aiohttp.ClientSession:
    """A raw session presenting `gss`'s federation client certificate."""
    return fed.session(client_context(*fed.files(fed.nodes[gss])))


async def signed_by(
    fed: Federation, answer: Answer, parts: RequestParts, responder: str, me: str | None = None
) -> bool:
    """Whether `answer` verifies as `responder`'s signed response to `parts`, addressed to `me`
    (default: the request's sender)."""
    try:
        await verify_response(
            status=answer.status,
            headers=answer.headers,
            body=answer.raw,
            request=parts,
            peer=responder,
            me=me or parts.headers["CAF-Sender"],
            responder=responder,
            key_lookup=fed.directory.lookup,
            now=utc_now(),
        )
    except FederationRefused:
        return False
    return True


# --- the good path ----------------------------------------------------------------------------------


async def test_signed_round_trip_over_mutual_tls(federation: Federation) -> None:
    client = federation.client(CAMDEN)
    status, body, verified = await client.post(HACKNEY, "/echo", {"question": "exists?"})
    assert status == 200
    # The server saw Camden's certificate and Camden's verified signature (Ed25519) ...
    assert body == {
        "sender": CAMDEN,
        "keyid": federation.nodes[CAMDEN].keyid,
        "tls_peer": CAMDEN,
        "attestation": None,
        "received": {"question": "exists?"},
    }
    # ... and the client checked Hackney's certificate and Hackney's P-256 response signature.
    assert verified.sender == HACKNEY
    assert verified.keyid == federation.nodes[HACKNEY].keyid
    assert verified.status == 200
    assert abs((verified.created - utc_now()).total_seconds()) < 5

    status, body, _ = await client.get(HACKNEY, "/hello", params={"q": "a b/c"})
    assert (status, body) == (200, {"query": {"q": "a b/c"}, "sender": CAMDEN})


async def test_attestation_header_is_covered_and_handed_to_the_handler(
    federation: Federation,
) -> None:
    client = federation.client(CAMDEN)
    _, body, _ = await client.post(ISLINGTON, "/echo", {}, headers={"CAF-Attestation": "a.b.c"})
    assert body["attestation"] == "a.b.c"

    # Added after signing, the attestation is not covered: refused.
    parts, raw = make_signed_request(federation, CAMDEN, ISLINGTON, "/echo", {})
    parts.headers["CAF-Attestation"] = "a.b.c"
    answer = await send(as_member(federation, CAMDEN), parts, raw)
    assert (answer.status, answer.error) == (403, "invalid_signature")


async def test_three_nodes_one_relaying_to_another(
    federation: Federation, aiohttp_server: AiohttpServer
) -> None:
    await federation.serve(aiohttp_server, CAMDEN, node_app(federation.nodes[CAMDEN], federation))
    client = federation.client(ISLINGTON)
    status, body, verified = await client.post(CAMDEN, "/relay", {"to": HACKNEY, "n": 1})
    assert (status, verified.sender) == (200, CAMDEN)
    assert body["signed_by"] == HACKNEY
    assert body["answer"]["sender"] == CAMDEN
    assert body["answer"]["received"] == {"to": HACKNEY, "n": 1}


async def test_refusals_and_errors_are_signed_answers(federation: Federation) -> None:
    client = federation.client(CAMDEN)
    status, body, verified = await client.post(HACKNEY, "/refuse", {})
    assert (status, body["error"], verified.status) == (403, "consent_missing", 403)

    status, body, _ = await client.post(HACKNEY, "/boom", {})
    assert (status, body["error"]) == (500, "internal_error")
    assert "name" not in body["message"]

    # No database connection came free in time: the node is full, not broken (a signed 503).
    status, body, verified = await client.post(HACKNEY, "/busy", {})
    assert (status, body["error"], verified.status) == (503, "busy", 503)

    status, body, _ = await client.post(HACKNEY, "/no-such-route", {})
    assert (status, body["error"]) == (404, "not_found")


# --- the receiver's refusals ------------------------------------------------------------------------


async def refused(
    fed: Federation,
    parts: RequestParts,
    raw: bytes,
    *,
    as_gss: str = CAMDEN,
    responder: str = HACKNEY,
) -> str | None:
    """Send as `as_gss` (its TLS certificate), check that the refusal is a signed answer to the
    request addressed to that TLS peer, and return its code."""
    answer = await send(as_member(fed, as_gss), parts, raw)
    assert answer.status == 403, answer.body
    if "Signature" in parts.headers:
        assert await signed_by(fed, answer, parts, responder, me=as_gss)
    return answer.error


async def test_forged_signature_is_refused(federation: Federation) -> None:
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"a": 1})
    forged = base64.b64encode(bytes(64)).decode()
    parts.headers["Signature"] = f"sig1=:{forged}:"
    assert await refused(federation, parts, raw) == "invalid_signature"


@pytest.mark.parametrize(
    "stripped", [("Signature",), ("Signature-Input",), ("Signature", "Signature-Input")]
)
async def test_stripped_signature_is_refused(
    federation: Federation, stripped: tuple[str, ...]
) -> None:
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"a": 1})
    for name in stripped:
        del parts.headers[name]
    answer = await send(as_member(federation, CAMDEN), parts, raw)
    assert (answer.status, answer.error) == (403, "invalid_signature")
    # Signed, but over no request signature: no client could take it for an answer.
    assert not await signed_by(federation, answer, parts, HACKNEY)
    assert "Signature" in answer.headers


async def test_signature_by_another_members_key_is_refused(federation: Federation) -> None:
    parts, raw = make_signed_request(
        federation,
        CAMDEN,
        HACKNEY,
        "/echo",
        {"a": 1},
        key=federation.nodes[ISLINGTON].key,
        keyid=federation.nodes[CAMDEN].keyid,
    )
    assert await refused(federation, parts, raw) == "invalid_signature"


async def test_key_unknown_or_outside_its_window_is_refused(federation: Federation) -> None:
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {}, keyid="not-a-key")
    assert await refused(federation, parts, raw) == "invalid_signature"

    retired = OKPKey.generate_key("Ed25519", parameters={"kid": "retired"}, private=True)
    federation.directory.add(CAMDEN, retired, valid=(-7200, -60))
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {}, key=retired)
    assert await refused(federation, parts, raw) == "invalid_signature"


async def test_suspended_member_is_refused(federation: Federation) -> None:
    federation.directory.members[CAMDEN].status = "suspended"
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {})
    assert await refused(federation, parts, raw) == "member_suspended"


async def test_unknown_member_is_refused(federation: Federation) -> None:
    """Tower Hamlets holds a federation certificate but is not (or no longer) in the metadata."""
    parts, raw = make_signed_request(federation, TOWER_HAMLETS, HACKNEY, "/echo", {})
    assert await refused(federation, parts, raw, as_gss=TOWER_HAMLETS) == "unknown_member"


async def test_request_for_another_recipient_is_refused(federation: Federation) -> None:
    parts, raw = make_signed_request(federation, CAMDEN, ISLINGTON, "/echo", {}, to=HACKNEY)
    assert await refused(federation, parts, raw) == "wrong_recipient"


async def test_a_request_held_open_while_uploading_is_judged_when_it_is_in(
    federation: Federation, aiohttp_server: AiohttpServer
) -> None:
    """The clock is read once the body has arrived: a signed request whose upload is held open
    past the window is stale, not judged at the moment its headers came (and its nonce kept from
    then, which would let a copy held open longer than the nonce retention be replayed)."""
    later = dt.timedelta(0)
    await federation.serve(
        aiohttp_server,
        ISLINGTON,
        node_app(federation.nodes[ISLINGTON], federation, clock=lambda: utc_now() + later),
    )
    parts, raw = make_signed_request(federation, CAMDEN, ISLINGTON, "/echo", {"x": "y" * 100})

    async def slowly() -> AsyncIterator[bytes]:
        nonlocal later
        yield raw[:10]
        await asyncio.sleep(0.2)  # the headers are in; the server waits for the rest
        later = dt.timedelta(seconds=301)
        yield raw[10:]

    session = as_member(federation, CAMDEN)
    async with session.post(
        URL(parts.url, encoded=True), data=slowly(), headers=parts.headers
    ) as response:
        assert response.status in (401, 403)
        assert (await response.json())["error"] == "stale_request"


@pytest.mark.parametrize("skew", [-301, 301])
async def test_stale_request_is_refused(federation: Federation, skew: int) -> None:
    created = utc_now() + dt.timedelta(seconds=skew)
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {}, now=created)
    assert await refused(federation, parts, raw) == "stale_request"


@pytest.mark.parametrize("skew", [-295, 295])
async def test_request_inside_the_window_is_accepted(federation: Federation, skew: int) -> None:
    created = utc_now() + dt.timedelta(seconds=skew)
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {}, now=created)
    answer = await send(as_member(federation, CAMDEN), parts, raw)
    assert answer.status == 200, answer.body


async def test_replayed_nonce_is_refused(federation: Federation) -> None:
    nonce = "replayed-nonce-0123456789"
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"n": 1}, nonce=nonce)
    first = await send(as_member(federation, CAMDEN), parts, raw)
    assert first.status == 200
    assert await refused(federation, parts, raw) == "replayed_request"

    # The same nonce in a new, freshly signed request is still that sender's used nonce ...
    again, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"n": 2}, nonce=nonce)
    assert await refused(federation, again, raw) == "replayed_request"
    # ... but another sender's nonces are its own.
    other, raw = make_signed_request(federation, ISLINGTON, HACKNEY, "/echo", {}, nonce=nonce)
    assert (await send(as_member(federation, ISLINGTON), other, raw)).status == 200


async def test_body_changed_after_signing_is_refused(federation: Federation) -> None:
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"amount": 1})
    assert await refused(federation, parts, raw.replace(b"1", b"2")) == "invalid_signature"


async def test_signature_not_covering_a_required_component_is_refused(
    federation: Federation,
) -> None:
    """A genuine signature by the right key that leaves caf-recipient out (RFC 9421 lets the signer
    choose; the protocol does not)."""
    node = federation.nodes[CAMDEN]
    raw = b"{}"
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "Content-Type": "application/json",
            "CAF-Sender": CAMDEN,
            "CAF-Recipient": HACKNEY,
            "Content-Digest": content_digest(raw),
        }
    )
    parts = RequestParts("POST", federation.endpoints[HACKNEY] + "/echo", headers)
    private = node.key.private_key
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={node.keyid: private}),
    )
    signer.sign(
        parts,
        key_id=node.keyid,
        nonce="n" * 22,
        label="sig1",
        include_alg=False,
        covered_component_ids=[c for c in REQUEST_COMPONENTS if c != "caf-recipient"],
        use_existing_digest=True,
    )
    assert await refused(federation, parts, raw) == "invalid_signature"


async def test_tls_certificate_of_another_member_than_the_sender_is_refused(
    federation: Federation,
) -> None:
    """Islington's certificate, Camden's caf-sender and Camden's (stolen) signing key."""
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {})
    assert await refused(federation, parts, raw, as_gss=ISLINGTON) == "invalid_signature"
    # The refusal goes to the member the TLS certificate names; it is no answer for Camden.
    answer = await send(as_member(federation, ISLINGTON), parts, raw)
    assert not await signed_by(federation, answer, parts, HACKNEY, me=CAMDEN)


async def test_certificate_naming_no_single_member_is_refused(federation: Federation) -> None:
    odd = federation.ca.issue(CAMDEN, uris=("urn:caf:member:E09000007", "urn:caf:member:E09000019"))
    session = federation.session(client_context(odd.cert_file, odd.key_file, odd.ca_file))
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {})
    answer = await send(session, parts, raw)
    assert (answer.status, answer.error) == (403, "invalid_signature")


async def test_client_certificate_from_another_ca_fails_the_handshake(
    federation: Federation, tmp_path: Path
) -> None:
    rogue_ca = FederationCA(tmp_path / "rogue", label="rogue")
    rogue = rogue_ca.issue(CAMDEN)
    # Trusts the real federation CA (to get that far) but presents the rogue CA's certificate.
    session = federation.session(
        client_context(rogue.cert_file, rogue.key_file, federation.ca.ca_file)
    )
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {})
    with pytest.raises(aiohttp.ClientError):
        await send(session, parts, raw)

    checked = federation.session(
        client_context(rogue.cert_file, rogue.key_file, federation.ca.ca_file), checked=True
    )
    client = federation.client_for(federation.nodes[CAMDEN], checked)
    with pytest.raises(PeerUnavailable) as caught:
        await client.post(HACKNEY, "/echo", {})
    assert caught.value.wire_code == "peer_unavailable"


async def test_no_client_certificate_fails_the_handshake(federation: Federation) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=federation.ca.ca_file)
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {})
    with pytest.raises(aiohttp.ClientError):
        await send(federation.session(context), parts, raw)


async def test_server_certificate_from_another_ca_is_not_trusted(
    federation: Federation, tmp_path: Path, aiohttp_server: AiohttpServer
) -> None:
    rogue = FederationCA(tmp_path / "rogue", label="rogue").issue(HACKNEY)
    app = node_app(federation.nodes[HACKNEY], federation)
    running = await aiohttp_server(
        app, ssl=server_context(rogue.cert_file, rogue.key_file, federation.ca.ca_file)
    )
    endpoints = {HACKNEY: f"https://127.0.0.1:{running.port}/federation/v1"}
    client = federation.client(CAMDEN, endpoints=endpoints)
    with pytest.raises(PeerUnavailable):
        await client.post(HACKNEY, "/echo", {})


# --- the client's refusals --------------------------------------------------------------------------


async def test_without_a_client_certificate_nothing_is_read(
    federation: Federation, aiohttp_server: AiohttpServer
) -> None:
    """The federation app behind a plain port (a node's API port serves it too): a caller with no
    certificate is refused at once, before its body is read or waited for."""
    running = await aiohttp_server(node_app(federation.nodes[HACKNEY], federation))
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(
            b"POST /federation/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line
    assert b"\r\nsignature:" in head.lower()  # signed, as every answer


async def test_a_request_with_a_content_coding_is_refused(federation: Federation) -> None:
    """A gzip body, signed and digested as sent: refused rather than unpacked before checking."""
    packed = gzip.compress(json.dumps({"q": 1}).encode())
    parts = sign_request(
        "POST",
        federation.endpoints[HACKNEY] + "/echo",
        packed,
        sender=CAMDEN,
        recipient=HACKNEY,
        key=federation.nodes[CAMDEN].key,
        keyid=federation.nodes[CAMDEN].keyid,
        now=utc_now(),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    answer = await send(as_member(federation, CAMDEN), parts, packed)
    assert (answer.status, answer.error) == (403, "invalid_signature")
    assert "content coding" in answer.body["message"]


async def test_a_content_coding_on_a_second_header_line_is_refused(federation: Federation) -> None:
    """`identity` on the first line, `gzip` on the second (which aiohttp's parser unpacks by),
    the digest over the unpacked body: refused, every line counts."""
    plain = json.dumps({"q": 1}).encode()
    parts = sign_request(
        "POST",
        federation.endpoints[HACKNEY] + "/echo",
        plain,
        sender=CAMDEN,
        recipient=HACKNEY,
        key=federation.nodes[CAMDEN].key,
        keyid=federation.nodes[CAMDEN].keyid,
        now=utc_now(),
        headers={"Content-Type": "application/json"},
    )
    parts.headers.add("Content-Encoding", "identity")
    parts.headers.add("Content-Encoding", "gzip")
    answer = await send(as_member(federation, CAMDEN), parts, gzip.compress(plain))
    assert (answer.status, answer.error) == (403, "invalid_signature")
    assert "content coding" in answer.body["message"]


async def test_response_replayed_onto_another_request_is_refused(
    federation: Federation, aiohttp_server: AiohttpServer
) -> None:
    """Someone holding Hackney's TLS key (not its signing key) replays a genuine signed answer."""
    parts, raw = make_signed_request(federation, CAMDEN, HACKNEY, "/echo", {"q": 1})
    genuine = await send(as_member(federation, CAMDEN), parts, raw)
    assert genuine.status == 200 and await signed_by(federation, genuine, parts, HACKNEY)

    async def replay(_: web.Request) -> web.Response:
        keep = (
            "Content-Type",
            "CAF-Sender",
            "CAF-Recipient",
            "Content-Digest",
            "Signature-Input",
            "Signature",
        )
        headers = {name: genuine.headers[name] for name in keep}
        return web.Response(status=genuine.status, body=genuine.raw, headers=headers)

    rogue = web.Application()
    rogue.router.add_post("/federation/v1/echo", replay)
    hackney = federation.nodes[HACKNEY]
    running = await aiohttp_server(rogue, ssl=server_context(*federation.files(hackney)))
    client = federation.client(
        CAMDEN, endpoints={HACKNEY: f"https://127.0.0.1:{running.port}/federation/v1"}
    )
    with pytest.raises(FederationRefused) as caught:
        await client.post(HACKNEY, "/echo", {"q": 1})
    assert caught.value.wire_code == "invalid_signature"


@pytest.mark.parametrize("answer", ["gzip", "large", "large-chunked"])
async def test_an_answer_is_neither_unpacked_nor_read_past_the_limit(
    federation: Federation, aiohttp_server: AiohttpServer, answer: str
) -> None:
    """A member node (or whoever holds its TLS key) answers with a small gzip that would unpack to
    32 MiB, or with more bytes than any answer may have: refused before anything is checked."""
    bomb = gzip.compress(b"0" * (32 * 1024 * 1024))

    async def rogue_answer(request: web.Request) -> web.StreamResponse:
        if answer == "gzip":
            return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})
        if answer == "large":
            return web.Response(body=b"0" * 5000)
        streamed = web.StreamResponse()  # no Content-Length: chunked
        await streamed.prepare(request)
        for _ in range(5):
            await streamed.write(b"0" * 1000)
        await streamed.write_eof()
        return streamed

    rogue = web.Application()
    rogue.router.add_post("/federation/v1/echo", rogue_answer)
    hackney = federation.nodes[HACKNEY]
    running = await aiohttp_server(rogue, ssl=server_context(*federation.files(hackney)))
    client = federation.client(
        CAMDEN,
        endpoints={HACKNEY: f"https://127.0.0.1:{running.port}/federation/v1"},
        max_response_bytes=4096,  # a small limit keeps the test quick
    )
    with pytest.raises(FederationRefused) as caught:
        await client.post(HACKNEY, "/echo", {"q": 1})
    expected = "content coding" if answer == "gzip" else "too large"
    assert expected in caught.value.message


async def test_answer_from_a_server_certificate_of_another_member_is_refused(
    federation: Federation,
) -> None:
    """The URL for Hackney leads to Islington's node: its certificate (valid, from the federation CA)
    does not name Hackney, so the request is not even sent."""
    client = federation.client(CAMDEN, endpoints={HACKNEY: federation.endpoints[ISLINGTON]})
    with pytest.raises(FederationRefused) as caught:
        await client.post(HACKNEY, "/echo", {})
    assert caught.value.wire_code == "invalid_signature"
    assert "TLS server certificate" in caught.value.message


async def test_stale_answer_is_refused(
    federation: Federation, aiohttp_server: AiohttpServer
) -> None:
    def ahead() -> dt.datetime:
        return utc_now() + dt.timedelta(seconds=400)

    app = node_app(federation.nodes[HACKNEY], federation, clock=ahead)
    running = await aiohttp_server(
        app, ssl=server_context(*federation.files(federation.nodes[HACKNEY]))
    )
    client = federation.client(
        CAMDEN, endpoints={HACKNEY: f"https://127.0.0.1:{running.port}/federation/v1"}
    )
    with pytest.raises(FederationRefused) as caught:
        await client.post(HACKNEY, "/echo", {})
    assert caught.value.wire_code == "stale_request"


async def test_unreachable_peer_is_peer_unavailable(federation: Federation) -> None:
    client = federation.client(CAMDEN, endpoints={HACKNEY: "https://127.0.0.1:9/federation/v1"})
    with pytest.raises(PeerUnavailable):
        await client.post(HACKNEY, "/echo", {})


# --- contexts, digests, nonce stores ----------------------------------------------------------------


def test_contexts_are_tls13_only_and_require_certificates(tmp_path: Path) -> None:
    credentials = FederationCA(tmp_path).issue(CAMDEN)
    files = (credentials.cert_file, credentials.key_file, credentials.ca_file)
    for context in (server_context(*files), client_context(*files)):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.maximum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert len(context.get_ca_certs()) == 1  # the federation CA only, no system store
    assert client_context(*files).check_hostname


def test_content_digest_create_and_check() -> None:
    body = b'{"hello": "world"}'  # the request body of RFC 9421 appendix B.2
    assert content_digest(body) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    check_content_digest(content_digest(body), body)
    # RFC 9421 B.2's sha-512 field, and RFC 9530 section 2's (its body ends with a newline).
    rfc9421 = (
        "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="
    )
    check_content_digest(f"sha-512=:{rfc9421}:", body)
    rfc9530 = (
        "YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg=="
    )
    check_content_digest(f"sha-512=:{rfc9530}:, md5=:AAAA:", body + b"\n")  # md5 is ignored
    for bad in ("md5=:AAAA:", "sha-256=:@@:", "sha-256=1", "", content_digest(b"other")):
        with pytest.raises(FederationRefused) as caught:
            check_content_digest(bad, body)
        assert caught.value.wire_code == "invalid_signature"


async def test_memory_replay_store_forgets_after_the_window_and_is_bounded() -> None:
    store = MemoryReplayStore(retention=dt.timedelta(seconds=600), max_entries=2)
    t0 = utc_now()
    assert await store.remember(CAMDEN, "n1", t0)
    assert not await store.remember(CAMDEN, "n1", t0 + dt.timedelta(seconds=599))
    assert await store.remember(HACKNEY, "n1", t0)  # nonces are per sender
    with pytest.raises(RateLimited):  # full of live nonces: refuse rather than forget one early
        await store.remember(CAMDEN, "n2", t0 + dt.timedelta(seconds=1))
    # At exactly 600 s a replay could still pass the created check (bounds included): kept.
    assert not await store.remember(CAMDEN, "n1", t0 + dt.timedelta(seconds=600))
    assert await store.remember(CAMDEN, "n1", t0 + dt.timedelta(seconds=600, microseconds=1))
    assert len(store) <= 2


async def test_sql_replay_store_is_shared_atomic_and_expires(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        replicas = [SqlReplayStore(engine, purge_every=1000) for _ in range(2)]
        t0 = utc_now()
        # The same nonce reaching two replicas at once: exactly one accepts it.
        outcomes = await asyncio.gather(
            *(replicas[i % 2].remember(CAMDEN, "nonce-a", t0) for i in range(8))
        )
        assert sorted(outcomes) == [False] * 7 + [True]
        assert await replicas[0].remember(HACKNEY, "nonce-a", t0)  # per sender
        for later in (599, 600):  # the window's last instant included
            at = t0 + dt.timedelta(seconds=later)
            assert not await replicas[1].remember(CAMDEN, "nonce-a", at)
        # Past the retention window the old sighting no longer counts, and can be purged.
        expired = t0 + dt.timedelta(seconds=601)
        assert await replicas[1].remember(CAMDEN, "nonce-a", expired)
        assert await replicas[0].purge(expired) == 1  # Hackney's; Camden's was re-armed
        assert not await replicas[0].remember(CAMDEN, "nonce-a", expired)
    finally:
        await engine.dispose()


# --- the property: any single change after signing is refused ---------------------------------------

PROPERTY_URL = "https://127.0.0.1:8443/federation/v1/existence-checks?x=1"
PROPERTY_BODY = json.dumps({"names": ["A", "B"], "dob": "2015-01-01"}).encode()
TARGETS = [
    "body",
    "@method",
    "@target-uri",
    "caf-sender",
    "caf-recipient",
    "content-digest",
    "caf-attestation",
]


@functools.cache
def property_directory() -> Directory:
    directory = Directory()
    directory.add(CAMDEN, member_key(CAMDEN, "OKP"))
    directory.add(HACKNEY, member_key(HACKNEY, "EC"))
    return directory


def check(parts: RequestParts, body: bytes, sender: str, now: dt.datetime) -> None:
    asyncio.run(
        verify_request(
            method=parts.method,
            url=parts.url,
            headers=parts.headers,
            body=body,
            peer=sender,
            me=ISLINGTON,
            key_lookup=property_directory().lookup,
            replay_store=MemoryReplayStore(),
            now=now,
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    sender=st.sampled_from([(CAMDEN, "OKP"), (HACKNEY, "EC")]),
    target=st.sampled_from(TARGETS),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_any_single_byte_change_after_signing_is_refused(
    sender: tuple[str, str], target: str, position: int, byte: int
) -> None:
    gss, kind = sender
    now = utc_now()
    parts = sign_request(
        "POST",
        PROPERTY_URL,
        PROPERTY_BODY,
        sender=gss,
        recipient=ISLINGTON,
        key=member_key(gss, kind),
        keyid=f"{gss}-{'ec' if kind == 'EC' else 'ed'}",
        now=now,
        headers={"CAF-Attestation": "eyJhbGciOiJFZDI1NTE5In0.e30.c2ln"},
    )
    check(parts, PROPERTY_BODY, gss, now)  # untouched, it verifies

    body = PROPERTY_BODY
    if target == "body":
        i = position % len(body)
        new = byte if byte != body[i] else (byte + 1) % 256
        body = body[:i] + bytes([new]) + body[i + 1 :]
    else:
        value = {"@method": parts.method, "@target-uri": parts.url}.get(target) or parts.headers[
            target
        ]
        i = position % len(value)
        new_char = chr(byte) if chr(byte) != value[i] else chr((byte + 1) % 256)
        changed = value[:i] + new_char + value[i + 1 :]
        if target == "@method":
            parts.method = changed
        elif target == "@target-uri":
            parts.url = changed
        else:
            parts.headers[target] = changed
    with pytest.raises(FederationRefused) as caught:
        check(parts, body, gss, now)
    assert caught.value.wire_code == "invalid_signature"
