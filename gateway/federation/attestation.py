"""The CAF-Attestation (DESIGN 3.3): the home borough's word that a lead CAF contact checked this
practitioner and their reason (protocol 003 §2-3). A JWT signed with the home node's key, bound to the
target member (`aud`) and to the child (`subject`: a hash of the match keys or of the episode
reference), so it cannot be replayed for another borough or another child."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from schemas import AgencyType

from ..errors import FederationRefused

__all__ = [
    "ATTESTATION_HEADER",
    "MAX_LIFETIME",
    "MAX_OVERRIDE",
    "Attestation",
    "OverrideGrant",
    "issue_attestation",
    "peek",
    "same_id",
    "subject_for_episode",
    "subject_for_match_keys",
    "verify_attestation",
]

ATTESTATION_HEADER = "CAF-Attestation"
MAX_LIFETIME = dt.timedelta(hours=24)
# A public-interest override is for an emergency, not a standing permission: it ends within 30 days of
# its approval (a longer need goes back through consent or a new override with a fresh justification).
MAX_OVERRIDE = dt.timedelta(days=30)
_TYPE = "caf-attestation+jwt"
_ALGORITHMS = {"OKP": "Ed25519", "EC": "ES256"}

KeyLookup = Callable[[str, str, dt.datetime], OKPKey | ECKey]  # (member, kid, at) -> public key
LeadContactCheck = Callable[[str, str], bool]  # (member, contact id) -> listed?


def _fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return " ".join(
        "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split()
    )


def same_id(a: str, b: str) -> bool:
    """Whether two people's ids name the same person: compared folded (`LC-1` is `lc-1`), so case
    or compatibility characters cannot make a requester their own approver."""
    return _fold(a) == _fold(b)


def subject_for_match_keys(keys: Mapping[str, str | None]) -> str:
    """A stable hash of a child's match keys (names folded, identifiers compacted)."""
    canonical = {
        k: (_fold(v) if k in ("given_names", "family_name") else v.replace(" ", "").upper())
        for k, v in sorted(keys.items())
        if v
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def subject_for_episode(episode_ref: str) -> str:
    return "sha256:" + hashlib.sha256(f"episode:{episode_ref}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OverrideGrant:
    """A public-interest override travelling with an attestation (DESIGN 3.5)."""

    override_id: str
    approved_by: str  # the second approver: a lead contact, not the requester
    expires_at: dt.datetime
    justification_sha256: str


@dataclass(frozen=True, slots=True)
class Attestation:
    issuer: str  # home member (GSS)
    audience: str  # target member (GSS)
    practitioner_id: str
    name: str
    role: str
    agency: str
    agency_type: AgencyType
    purpose: str
    reason: str
    subject: str
    approved_by: str
    approved_at: dt.datetime
    expires_at: dt.datetime
    jti: str
    override: OverrideGrant | None = None
    key_id: str | None = None  # the sender's key that signed it (checked again at a held approval)


def issue_attestation(
    key: OKPKey | ECKey,
    *,
    issuer: str,
    audience: str,
    practitioner: Mapping[str, str],
    purpose: str,
    reason: str,
    subject: str,
    approved_by: str,
    lifetime: dt.timedelta = dt.timedelta(hours=1),
    override: OverrideGrant | None = None,
    approved_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> str:
    if lifetime > MAX_LIFETIME:
        raise ValueError("an attestation lives at most 24 hours")
    moment = now or dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": practitioner["id"],
        "name": practitioner["name"],
        "role": practitioner["role"],
        "agency": practitioner["agency"],
        "agency_type": AgencyType(practitioner["agency_type"]).value,
        "purpose": purpose,
        "reason": reason,
        "subject": subject,
        "approved_by": approved_by,
        "approved_at": int((approved_at or moment).timestamp()),
        "iat": int(moment.timestamp()),
        "exp": int((moment + lifetime).timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    if override is not None:
        claims["override"] = {
            "id": override.override_id,
            "approved_by": override.approved_by,
            "expires_at": int(override.expires_at.timestamp()),
            "justification_sha256": override.justification_sha256,
        }
    algorithm = _ALGORITHMS[key.key_type]
    header = {"alg": algorithm, "typ": _TYPE, "kid": key.kid or ""}
    return jwt.encode(header, claims, key, algorithms=[algorithm])


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A compact JWS's header and JSON claims, unverified: only to find the key (and the moment)
    to check it with. Nothing read here is trusted before the signature over it verifies."""
    try:
        unverified = jws.extract_compact(token.encode())
        claims = json.loads(unverified.payload)
    except (JoseError, ValueError, RecursionError):  # RecursionError: nesting past the parser's
        return None
    return (unverified.headers(), claims) if isinstance(claims, dict) else None


def _refuse(message: str, code: str = "attestation_invalid") -> FederationRefused:
    return FederationRefused(message, code=code)


def _instant(claims: Mapping[str, Any], name: str) -> dt.datetime:
    value = claims.get(name)
    if not isinstance(value, int):
        raise _refuse(f"attestation claim {name} is missing")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999, or past what the C library takes
        raise _refuse(f"attestation claim {name} is out of range") from None


# A practitioner or override id, as this project's nodes issue them; it is kept in the register and
# the basis of a disclosure, so another release's overlong or free-text id is refused.
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _refuse(f"attestation claim {name} is missing")
    return value


def verify_attestation(
    token: str,
    *,
    sender: str,
    me: str,
    key_for: KeyLookup,
    is_lead_contact: LeadContactCheck,
    subject: str,
    now: dt.datetime | None = None,
) -> Attestation:
    """Check everything: the signer is the sender's current key, it names us, it is in date and at
    most 24 hours long, the approver is a listed lead contact of the sender, it is about this child."""
    moment = now or dt.datetime.now(dt.UTC)
    peeked = peek(token)
    if peeked is None:
        raise _refuse("the attestation is not a JWT")
    headers, unverified = peeked
    kid, algorithm = headers.get("kid"), headers.get("alg")
    if unverified.get("iss") != sender:
        raise _refuse("the attestation was issued by another member than the sender")
    if not isinstance(kid, str) or algorithm not in _ALGORITHMS.values():
        raise _refuse("the attestation names no usable key")
    key = key_for(sender, kid, moment)  # raises FederationRefused for unknown / suspended / expired
    if _ALGORITHMS[key.key_type] != algorithm:
        raise _refuse("the attestation's algorithm does not fit the key")
    try:
        decoded = jwt.decode(token, key, algorithms=[algorithm])
    except (JoseError, ValueError, RecursionError):  # RecursionError: as in `peek`, a deeper stack
        raise _refuse("the attestation signature does not verify") from None
    if decoded.header.get("typ") != _TYPE:
        raise _refuse("not a CAF-Attestation")
    claims = decoded.claims
    if claims.get("aud") != me:
        raise _refuse("the attestation names another member")
    issued, expires, approved_at = (_instant(claims, n) for n in ("iat", "exp", "approved_at"))
    if expires - issued > MAX_LIFETIME:
        raise _refuse("the attestation lives longer than 24 hours")
    if not issued - dt.timedelta(seconds=300) <= moment < expires:
        raise _refuse("the attestation is not valid now")
    if approved_at > moment + dt.timedelta(seconds=300):
        raise _refuse("the attestation was approved in the future")
    approved_by = _text(claims, "approved_by")
    practitioner_id = _text(claims, "sub")
    if not _ID.fullmatch(practitioner_id):  # as a borough system gives it: kept in plain columns
        raise _refuse("the attestation's practitioner id is not an id")
    if not is_lead_contact(sender, approved_by):
        raise _refuse("the approver is not a lead CAF contact of the sender", "not_lead_contact")
    if same_id(approved_by, practitioner_id):
        raise _refuse("the practitioner approved their own request", "self_approval")
    if claims.get("subject") != subject:
        raise _refuse("the attestation is about another child or episode")
    try:
        agency_type = AgencyType(_text(claims, "agency_type"))
    except ValueError:
        raise _refuse("the attestation's agency type is unknown") from None
    override = None
    if isinstance(claims.get("override"), dict):
        granted = claims["override"]
        second = _text(granted, "approved_by")
        if same_id(second, approved_by) or same_id(second, practitioner_id):
            raise _refuse(
                "an override needs a second approver, neither the requester nor the first",
                "self_approval",
            )
        if not is_lead_contact(sender, second):
            raise _refuse(
                "an override's second approver is not a lead CAF contact of the sender",
                "not_lead_contact",
            )
        ends = _instant(granted, "expires_at")
        if ends - issued > MAX_OVERRIDE:
            raise _refuse("the override lasts longer than 30 days")
        override_id, digest = _text(granted, "id"), _text(granted, "justification_sha256")
        if not _ID.fullmatch(override_id) or not _SHA256.fullmatch(digest):
            raise _refuse("the override's id or justification digest is malformed")
        override = OverrideGrant(
            override_id=override_id,
            approved_by=second,
            expires_at=ends,
            justification_sha256=digest,
        )
    return Attestation(
        issuer=sender,
        audience=me,
        practitioner_id=practitioner_id,
        name=_text(claims, "name"),
        role=_text(claims, "role"),
        agency=_text(claims, "agency"),
        agency_type=agency_type,
        purpose=_text(claims, "purpose"),
        reason=_text(claims, "reason"),
        subject=_text(claims, "subject"),
        approved_by=approved_by,
        approved_at=approved_at,
        expires_at=expires,
        jti=_text(claims, "jti"),
        override=override,
        key_id=kid,
    )
