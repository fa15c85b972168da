"""Adapters between our messages and the `http-message-signatures` library (RFC 9421).

The library computes signature bases, signs and verifies; it reads messages through a small duck-typed
interface (`method`, `url`, `headers` for a request; `status_code`, `headers`, `request` for a
response), written for `requests` objects. The views here present aiohttp's requests and responses that
way, so we never build an RFC 9421 signature base by hand.

Two things stay ours: the algorithm is chosen from the key (a JWK says what it is; the message's `alg`
parameter is never trusted, DESIGN 3.2), and the `created` window is checked against the caller's
clock rather than the library's wall clock, so that it can be tested and shared with the replay window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import http_sf
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    VerifyResult,
    algorithms,
)
from joserfc.jwk import ECKey, OKPKey
from multidict import CIMultiDict

__all__ = [
    "LABEL",
    "Key",
    "ParsedSignature",
    "RequestParts",
    "ResponseView",
    "algorithm_for",
    "component_id",
    "has_signature",
    "parse_signature",
    "sign_message",
    "verify_message",
]

LABEL = "sig1"  # RFC 9421 examples' label; responses name it in `"signature";req;key="sig1"`
Key: TypeAlias = OKPKey | ECKey
Component: TypeAlias = tuple[str, frozenset[tuple[str, Any]]]


@dataclass
class RequestParts:
    """A request as the library reads it: uppercase method, encoded absolute URL (the `@target-uri`),
    and its header lines. A response's signature is computed against the request it answers."""

    method: str
    url: str
    headers: CIMultiDict[str]


@dataclass
class ResponseView:
    """A response and the request it answers (for components marked `;req`, RFC 9421 §2.4)."""

    status_code: int
    headers: CIMultiDict[str]
    request: RequestParts


class _OneKey(HTTPSignatureKeyResolver):
    """Resolves exactly the key already chosen by the member directory, under its keyid."""

    def __init__(self, keyid: str, key: object) -> None:
        self._keyid = keyid
        self._key = key

    def resolve_public_key(self, key_id: str) -> object:
        return self._key if key_id == self._keyid else None

    def resolve_private_key(self, key_id: str) -> object:
        if key_id != self._keyid:
            raise KeyError("unexpected keyid")
        return self._key


class _Verifier(HTTPMessageVerifier):
    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        """`created` was checked against the caller's clock before verification."""


def algorithm_for(key: Key) -> type[algorithms.HTTPSignatureAlgorithm]:
    """The RFC 9421 algorithm a JWK implies: Ed25519 (OKP) or ECDSA P-256 SHA-256 (EC)."""
    public = key.public_key
    if isinstance(key, OKPKey) and isinstance(public, ed25519.Ed25519PublicKey):
        if key.get("alg") not in (None, "Ed25519", "EdDSA"):
            raise ValueError("the JWK's alg does not fit an Ed25519 key")
        return algorithms.ED25519
    if (
        isinstance(key, ECKey)
        and isinstance(public, ec.EllipticCurvePublicKey)
        and isinstance(public.curve, ec.SECP256R1)
    ):
        if key.get("alg") not in (None, "ES256"):
            raise ValueError("the JWK's alg does not fit a P-256 key")
        return algorithms.ECDSA_P256_SHA256
    raise ValueError("federation keys are Ed25519 (OKP) or P-256 (EC) JWKs")


def sign_message(
    message: RequestParts | ResponseView,
    *,
    key: Key,
    keyid: str,
    components: Sequence[str],
    created: int,
    nonce: str,
    body: bytes,
) -> None:
    """Add `Signature-Input` and `Signature` (label `sig1`) to `message.headers`. The message must
    already carry the `Content-Digest` of `body`; the library re-checks it before signing."""
    if not key.is_private:
        raise ValueError("signing needs a private key")
    signer = HTTPMessageSigner(
        signature_algorithm=algorithm_for(key), key_resolver=_OneKey(keyid, key.private_key)
    )
    signer.sign(
        message,
        key_id=keyid,
        created=dt.datetime.fromtimestamp(created, dt.UTC),
        nonce=nonce,
        label=LABEL,
        include_alg=False,  # the key says its algorithm; the verifier never asks the message
        covered_component_ids=tuple(components),
        body=body,
        use_existing_digest=True,
    )


def verify_message(
    message: RequestParts | ResponseView, *, key: Key, keyid: str, components: Sequence[str]
) -> VerifyResult:
    """Verify the one signature `sig1` with `key`, requiring `components` to be covered. Raises the
    library's exceptions (and ValueError for an unusable key); the caller maps them to wire codes."""
    verifier = _Verifier(
        signature_algorithm=algorithm_for(key), key_resolver=_OneKey(keyid, key.public_key)
    )
    results = verifier.verify(message, max_age=None, require_components=tuple(components))
    if len(results) != 1 or results[0].label != LABEL:  # pragma: no cover - parse_signature checked
        raise ValueError("expected exactly one signature")
    return results[0]


@dataclass(frozen=True)
class ParsedSignature:
    """What `Signature-Input` and `Signature` claim, before anything is verified."""

    components: frozenset[Component]
    params: dict[str, Any]
    value: bytes


def _reject_duplicate(key: str, context: str) -> None:
    raise ValueError(f"duplicate {context} key")


def _dictionary(headers: CIMultiDict[str], name: str) -> dict[str, Any]:
    lines = headers.getall(name, [])
    if not lines:
        raise LookupError(f"no {name} field")
    parsed = http_sf.parse(
        ", ".join(lines).encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate
    )
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" returns a dict
        raise ValueError(f"{name} is not a dictionary")
    return parsed


def parse_signature(headers: CIMultiDict[str]) -> ParsedSignature:
    """Read the single signature labelled `sig1`. Raises LookupError when absent, ValueError (or
    UnicodeError) when malformed or when there is any other signature beside it."""
    inputs = _dictionary(headers, "Signature-Input")
    values = _dictionary(headers, "Signature")
    if set(inputs) != {LABEL} or set(values) != {LABEL}:
        raise ValueError(f"expected exactly one signature, labelled {LABEL}")
    members, params = inputs[LABEL]
    value, _ = values[LABEL]
    if not isinstance(members, list) or not isinstance(value, bytes):
        raise ValueError("malformed signature fields")
    components = frozenset(component_id(name, extra) for name, extra in members)
    return ParsedSignature(components, dict(params), value)


def component_id(name: Any, params: dict[str, Any] | None = None) -> Component:
    """A covered component's identity: its name and parameters, in any order (RFC 9421 §2)."""
    if not isinstance(name, str):
        raise ValueError("component names are strings")
    return name, frozenset((params or {}).items())


def has_signature(headers: CIMultiDict[str]) -> bool:
    """Whether the message carries a well-formed `sig1` member (used to decide whether a response
    can cover the request's signature)."""
    try:
        parse_signature(headers)
    except (LookupError, ValueError, UnicodeError):
        return False
    return True
