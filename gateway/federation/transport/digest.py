"""RFC 9530 `Content-Digest`: the body's SHA-256 as a Structured Field Dictionary,
`sha-256=:<base64>:`.

The message signature covers this header, not the body (RFC 9421 signs fields, not content), so the
digest is what binds the body to the signature (DESIGN 3.2). The protocol sends `sha-256`; a receiver
also checks `sha-512` when present (both are "Active" in the RFC 9530 registry) and needs at least one
digest it knows. An algorithm it does not know is ignored, as RFC 9530 §2 asks, but never counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import http_sf
from multidict import CIMultiDictProxy

from gateway.errors import FederationRefused

__all__ = ["DIGEST_ALGORITHM", "as_sent", "check_content_digest", "content_digest"]

DIGEST_ALGORITHM = "sha-256"
_KNOWN: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}


def as_sent(headers: CIMultiDictProxy[str]) -> bool:
    """Is the body in no content coding (every `Content-Encoding` line, every value in it,
    `identity`)? The digest covers the bytes as sent, so nothing is unpacked first. Every line
    counts: aiohttp's parser unpacks by the last one, `headers.get` gives the first."""
    return all(
        coding.strip().lower() == "identity"
        for line in headers.getall("Content-Encoding", ())
        for coding in line.split(",")
    )


def content_digest(body: bytes) -> str:
    """The `Content-Digest` field value for `body` (including the empty body)."""
    encoded = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    return f"{DIGEST_ALGORITHM}=:{encoded}:"


def _refuse(message: str) -> FederationRefused:
    return FederationRefused(message, code="invalid_signature")


def check_content_digest(field_value: str, body: bytes) -> None:
    """Raise `FederationRefused(invalid_signature)` unless `field_value` is a well-formed
    `Content-Digest` whose every known digest matches `body`."""
    try:
        parsed = http_sf.parse(field_value.encode("ascii"), tltype="dictionary")
    except (ValueError, UnicodeError) as exc:
        raise _refuse("the Content-Digest field is malformed") from exc
    if not isinstance(parsed, dict):  # pragma: no cover - tltype="dictionary" returns a dict
        raise _refuse("the Content-Digest field is malformed")
    checked = 0
    for algorithm, member in parsed.items():
        value = member[0] if isinstance(member, tuple) else None
        hasher = _KNOWN.get(algorithm)
        if hasher is None:
            continue
        if not isinstance(value, bytes):
            raise _refuse("a Content-Digest value is not a byte sequence")
        if not hmac.compare_digest(value, hasher(body).digest()):
            raise _refuse("the body does not match its Content-Digest")
        checked += 1
    if checked == 0:
        raise _refuse("the Content-Digest field has no sha-256 or sha-512 digest")
