"""Signing and verifying federation metadata (DESIGN 3.1) as a compact JWS (RFC 7515 7.1).

A node accepts a metadata document only when, in this order:
1. the JWS verifies against the operator key the node PINNED (never a key named by the token: the
   algorithm is fixed by the pinned key's type, RFC 8725 3.1), and its `typ` is ours, so no other JWS
   the operator signs can pass as metadata (RFC 8725 3.11);
2. the payload is a well-formed `FederationMetadata` (parsed only after the signature held);
3. its `version` is not lower than the last one accepted (rollback: an attacker replaying an older,
   validly signed copy to revive a suspended member or a retired key). An equal version is the same
   document fetched again;
4. `issued_at` is not in the future (allowing a small clock skew) and `expires_at` has not passed.

Algorithms are the RFC 9864 fully specified names: `Ed25519` for OKP keys and `ES256` for P-256 keys;
the deprecated polymorphic `EdDSA` is neither produced nor accepted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, UnsupportedAlgorithmError
from pydantic import ValidationError

from ._models import ALGORITHMS, FederationMetadata, PublicKey

__all__ = [
    "METADATA_TYPE",
    "MetadataError",
    "MetadataErrorCode",
    "read_metadata",
    "sign_metadata",
    "verify_metadata",
]

METADATA_TYPE = "caf-federation-metadata+jwt"
MAX_TOKEN_CHARS = 4 * 1024 * 1024
DEFAULT_LEEWAY = timedelta(seconds=60)

MetadataErrorCode = Literal[
    "signature_invalid", "expired", "not_yet_valid", "rollback", "malformed", "unavailable"
]


class MetadataError(Exception):
    """Metadata refused. `code` is stable; the message names the rule, never the document's content.

    `unavailable` is for a copy that could not be fetched at all (see `MetadataSource`)."""

    def __init__(self, code: MetadataErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: MetadataErrorCode = code
        self.message = message


def _algorithm(key: PublicKey) -> str:
    try:
        return ALGORITHMS[(key.key_type, key.curve_name)]
    except KeyError:
        raise ValueError("federation metadata is signed with an Ed25519 or a P-256 key") from None


def sign_metadata(metadata: FederationMetadata, operator_key: PublicKey) -> str:
    """The operator's compact JWS over the metadata's JSON (keys sorted, no insignificant space)."""
    if not operator_key.is_private:
        raise ValueError("signing needs the operator's private key")
    algorithm = _algorithm(operator_key)
    header: dict[str, Any] = {"alg": algorithm, "typ": METADATA_TYPE}
    if operator_key.kid is not None:
        header["kid"] = operator_key.kid
    document = metadata.model_dump(mode="json", exclude_none=True)
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return jws.serialize_compact(header, payload.encode(), operator_key, algorithms=[algorithm])


def verify_metadata(
    token: str,
    operator_public_key: PublicKey,
    *,
    now: datetime,
    last_version: int | None,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> FederationMetadata:
    """The metadata inside `token`, or `MetadataError` saying which rule refused it (module doc).

    `now` must be timezone-aware. `leeway` only forgives an `issued_at` slightly ahead of this
    node's clock; expiry is never stretched, since after it a node must fail closed."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    metadata = read_metadata(token, operator_public_key, last_version=last_version)
    if metadata.issued_at > now + leeway:
        raise MetadataError("not_yet_valid", "issued_at is in the future")
    if now >= metadata.expires_at:
        raise MetadataError("expired", "expires_at has passed")
    return metadata


def read_metadata(
    token: str, operator_public_key: PublicKey, *, last_version: int | None
) -> FederationMetadata:
    """Steps 1-3 of the module doc without the clock: for reading the version of a kept copy that
    may have expired (a rollback floor must survive a restart). Never use it to accept metadata."""
    algorithm = _algorithm(operator_public_key)
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise MetadataError("malformed", "the metadata is larger than allowed")
    try:
        verified = jws.deserialize_compact(token, operator_public_key, algorithms=[algorithm])
    except (BadSignatureError, UnsupportedAlgorithmError):
        raise MetadataError(
            "signature_invalid", "the signature does not verify with the operator key"
        ) from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise MetadataError("malformed", "not a compact JWS") from None
    if verified.headers().get("typ") != METADATA_TYPE:
        raise MetadataError("malformed", f"the JWS is not of type {METADATA_TYPE}")
    try:
        metadata = FederationMetadata.model_validate_json(verified.payload)
    except ValidationError as exc:
        where = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise MetadataError("malformed", f"invalid fields: {', '.join(where[:5])}") from None
    if last_version is not None and metadata.version < last_version:
        raise MetadataError(
            "rollback", f"version {metadata.version} is older than version {last_version}"
        )
    return metadata
