"""RFC 9421 HTTP Message Signatures for the London protocol (DESIGN 3.2), with RFC 9530 digests.

A request is signed by its sender's member key (an Ed25519 OKP or P-256 EC JWK; the key says its
algorithm, the message never does) over

    "@method" "@target-uri" "content-digest" "caf-sender" "caf-recipient" ["caf-attestation"]
    ;created=<unix time>;keyid="<kid>";nonce="<random>"

under the label `sig1`. A response is signed by the responder the same way over `"@status"`, its own
`content-digest`, `caf-sender`, `caf-recipient` and `"signature";req;key="sig1"`: the request's
signature itself (RFC 9421 §2.4, supported by the library), so a response cannot be replayed onto
another request, whose signature differs by at least its nonce.

`verify_request` refuses with the stable wire codes of `FederationRefused`: `invalid_signature` (no,
stripped, malformed or forged signature, wrong key, missing covered component, digest mismatch, TLS
certificate naming another member than `caf-sender`), `unknown_member` / `member_suspended` (raised
by the key lookup), `stale_request` (`created` more than 300 s away, either way), `wrong_recipient`,
`replayed_request`. The checks that need no key run first; the recipient and the nonce are judged only
once the signature has verified, so an unsigned claim can neither steer a refusal nor fill the nonce
store.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from http_message_signatures import HTTPMessageSignaturesException, VerifyResult
from multidict import CIMultiDict

from gateway.errors import FederationRefused

from ._rfc9421 import (
    LABEL,
    Key,
    ParsedSignature,
    RequestParts,
    ResponseView,
    component_id,
    has_signature,
    parse_signature,
    sign_message,
    verify_message,
)
from .digest import check_content_digest, content_digest
from .replay import MAX_SKEW, ReplayStore

__all__ = [
    "REQUEST_COMPONENTS",
    "RESPONSE_COMPONENTS",
    "Headers",
    "Key",
    "KeyLookup",
    "RequestParts",
    "VerifiedRequest",
    "VerifiedResponse",
    "new_nonce",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_response",
]

REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest", "caf-sender", "caf-recipient")
ATTESTATION = "caf-attestation"
_REQUEST_SIGNATURE = f'"signature";req;key="{LABEL}"'
RESPONSE_COMPONENTS = (
    "@status",
    "content-digest",
    "caf-sender",
    "caf-recipient",
    _REQUEST_SIGNATURE,
)
_OWN_HEADERS = ("CAF-Sender", "CAF-Recipient", "Content-Digest", "Signature-Input", "Signature")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # bounded: it is a key in the nonce store
_PARAMS = frozenset({"created", "keyid", "nonce", "alg"})

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
KeyLookup = Callable[[str, str, dt.datetime], Key | Awaitable[Key]]
"""`(sender, keyid, at) -> public key`. Raises `FederationRefused` with `unknown_member`,
`member_suspended`, or `invalid_signature` (unknown keyid, key outside its validity window at `at`).
`at` is the verifier's clock: a key past `not_after` is refused even for a request created before."""


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature, digest, sender, recipient, freshness and nonce all checked out."""

    sender: str
    keyid: str
    signature_value: bytes
    created: dt.datetime
    nonce: str
    attestation: str | None = None  # the CAF-Attestation header, covered by the signature


@dataclass(frozen=True)
class VerifiedResponse:
    """A response signed by the member called, over this very request's signature."""

    sender: str
    keyid: str
    signature_value: bytes
    created: dt.datetime
    nonce: str
    status: int


def new_nonce() -> str:
    """144 random bits, base64url: unique per request across the federation."""
    return secrets.token_urlsafe(18)


def _refuse(message: str, code: str = "invalid_signature") -> FederationRefused:
    return FederationRefused(message, code=code)


def _own_headers(
    headers: Headers | None, sender: str, recipient: str, body: bytes
) -> CIMultiDict[str]:
    fields: CIMultiDict[str] = CIMultiDict(headers or {})
    for name in _OWN_HEADERS:
        fields.popall(name, None)
    fields["CAF-Sender"] = sender
    fields["CAF-Recipient"] = recipient
    fields["Content-Digest"] = content_digest(body)
    return fields


def sign_request(
    method: str,
    url: str,
    body: bytes,
    *,
    sender: str,
    recipient: str,
    key: Key,
    keyid: str,
    now: dt.datetime,
    headers: Headers | None = None,
    nonce: str | None = None,
) -> RequestParts:
    """Sign a request from `sender` to `recipient`: returns the request with `CAF-Sender`,
    `CAF-Recipient`, `Content-Digest`, `Signature-Input` and `Signature` added to `headers` (a
    `CAF-Attestation` among them is covered too). `url` is the encoded absolute URL as sent."""
    parts = RequestParts(method.upper(), url, _own_headers(headers, sender, recipient, body))
    components = REQUEST_COMPONENTS + ((ATTESTATION,) if ATTESTATION in parts.headers else ())
    sign_message(
        parts,
        key=key,
        keyid=keyid,
        components=components,
        created=int(now.timestamp()),
        nonce=nonce or new_nonce(),
        body=body,
    )
    return parts


def sign_response(
    status: int,
    body: bytes,
    *,
    request: RequestParts,
    sender: str,
    recipient: str,
    key: Key,
    keyid: str,
    now: dt.datetime,
    nonce: str | None = None,
) -> CIMultiDict[str]:
    """The headers that sign a response to `request`: `CAF-Sender`, `CAF-Recipient`,
    `Content-Digest`, `Signature-Input`, `Signature`. They cover the request's signature when it
    has one; a request without a readable signature gets a response that no client of ours will
    accept as an answer to a signed request (it was refused anyway)."""
    view = ResponseView(status, _own_headers(None, sender, recipient, body), request)
    bound = has_signature(request.headers)
    components = RESPONSE_COMPONENTS if bound else RESPONSE_COMPONENTS[:-1]
    created, nonce = int(now.timestamp()), nonce or new_nonce()

    def sign(components: Sequence[str]) -> None:
        sign_message(
            view,
            key=key,
            keyid=keyid,
            components=components,
            created=created,
            nonce=nonce,
            body=body,
        )

    try:
        sign(components)
    except HTTPMessageSignaturesException:
        if not bound:
            raise
        # The request's signature is there but the request itself cannot be resolved (a target
        # URI or method the library refuses): answer unbound rather than not at all.
        sign(RESPONSE_COMPONENTS[:-1])
    return view.headers


def _single(headers: CIMultiDict[str], name: str) -> str:
    values = headers.getall(name, [])
    if len(values) != 1:
        raise _refuse(f"the message needs exactly one {name} field")
    return values[0]


def _parse(headers: CIMultiDict[str], required: Sequence[str]) -> ParsedSignature:
    try:
        parsed = parse_signature(headers)
    except LookupError as exc:
        raise _refuse("the message is not signed") from exc
    except (ValueError, UnicodeError) as exc:
        raise _refuse("the message signature fields are malformed") from exc
    covered = {component_id(*_split(name)) for name in required}
    if not covered <= parsed.components:
        raise _refuse("the signature does not cover the required components")
    if not set(parsed.params) <= _PARAMS:
        raise _refuse("the signature has unexpected parameters")
    created, keyid, nonce = (parsed.params.get(name) for name in ("created", "keyid", "nonce"))
    if type(created) is not int or not isinstance(keyid, str) or not isinstance(nonce, str):
        raise _refuse("the signature needs created, keyid and nonce parameters")
    if not _NONCE.fullmatch(nonce):
        raise _refuse("the signature nonce is not 16 to 128 base64url characters")
    return parsed


def _split(serialized: str) -> tuple[str, dict[str, Any]]:
    if serialized == _REQUEST_SIGNATURE:
        return "signature", {"req": True, "key": LABEL}
    return serialized, {}


def _fresh(parsed: ParsedSignature, now: dt.datetime, max_skew: dt.timedelta) -> dt.datetime:
    created: int = parsed.params["created"]
    if abs(created - now.timestamp()) > max_skew.total_seconds():
        raise _refuse("the signature was created too far from this node's clock", "stale_request")
    return dt.datetime.fromtimestamp(created, dt.UTC)


async def _key(lookup: KeyLookup, sender: str, keyid: str, at: dt.datetime) -> Key:
    key = lookup(sender, keyid, at)
    return await key if inspect.isawaitable(key) else key


def _verify(
    message: RequestParts | ResponseView, key: Key, keyid: str, required: Sequence[str]
) -> VerifyResult:
    try:
        return verify_message(message, key=key, keyid=keyid, components=required)
    except (HTTPMessageSignaturesException, ValueError, TypeError, UnicodeError) as exc:
        raise _refuse("the message signature does not verify") from exc


async def verify_request(
    *,
    method: str,
    url: str,
    headers: Headers,
    body: bytes,
    peer: str | None,
    me: str,
    key_lookup: KeyLookup,
    replay_store: ReplayStore,
    now: dt.datetime,
    max_skew: dt.timedelta = MAX_SKEW,
) -> VerifiedRequest:
    """Check a federation request (DESIGN 3.2) as received: `url` is the `@target-uri` this node
    was addressed at, `peer` the member named by the verified TLS client certificate (`peer_member`).
    Raises `FederationRefused` with the codes listed in this module's docstring."""
    fields: CIMultiDict[str] = CIMultiDict(headers)
    required = REQUEST_COMPONENTS + ((ATTESTATION,) if ATTESTATION in fields else ())
    parsed = _parse(fields, required)
    sender = _single(fields, "caf-sender")
    if peer is None:
        raise _refuse("federation requests need a federation client certificate")
    if peer != sender:
        raise _refuse("the TLS client certificate names another member than caf-sender")
    created = _fresh(parsed, now, max_skew)
    keyid, nonce = parsed.params["keyid"], parsed.params["nonce"]
    key = await _key(key_lookup, sender, keyid, now)
    result = _verify(RequestParts(method, url, fields), key, keyid, required)
    check_content_digest(result.covered_components['"content-digest"'], body)
    if result.covered_components['"caf-recipient"'] != me:
        raise _refuse("caf-recipient is not this node", "wrong_recipient")
    if not await replay_store.remember(sender, nonce, now):
        raise _refuse("this nonce was already used by the sender", "replayed_request")
    attestation = result.covered_components.get(f'"{ATTESTATION}"')
    return VerifiedRequest(sender, keyid, parsed.value, created, nonce, attestation)


async def verify_response(
    *,
    status: int,
    headers: Headers,
    body: bytes,
    request: RequestParts,
    peer: str | None,
    me: str,
    responder: str,
    key_lookup: KeyLookup,
    now: dt.datetime,
    max_skew: dt.timedelta = MAX_SKEW,
) -> VerifiedResponse:
    """Check that a response to the signed `request` comes from `responder` (the member called, also
    named by the TLS server certificate `peer`), is addressed to `me`, is fresh, matches its body, and
    covers `request`'s signature. No nonce store is needed: the binding to the request does that."""
    fields: CIMultiDict[str] = CIMultiDict(headers)
    parsed = _parse(fields, RESPONSE_COMPONENTS)
    sender = _single(fields, "caf-sender")
    if peer != responder or sender != responder:
        raise _refuse("the response does not come from the member called")
    created = _fresh(parsed, now, max_skew)
    keyid, nonce = parsed.params["keyid"], parsed.params["nonce"]
    key = await _key(key_lookup, sender, keyid, now)
    result = _verify(ResponseView(status, fields, request), key, keyid, RESPONSE_COMPONENTS)
    check_content_digest(result.covered_components['"content-digest"'], body)
    if result.covered_components['"caf-recipient"'] != me:
        raise _refuse("the response is addressed to another member")
    return VerifiedResponse(sender, keyid, parsed.value, created, nonce, status)
