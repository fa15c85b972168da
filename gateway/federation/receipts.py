"""Disclosure receipts: the holder's signed word of what it disclosed, to whom and on what basis.

The holder signs one per disclosure and keeps it in its register; the requester keeps it in its own
register only after checking that it says what the answer says (register id, both members, episode,
sections, basis, override, and the holder's lead contact who released a held one) and that the
holder's key signed it: the key valid at the receipt's `disclosed_at`, which must lie between the
sending of our request and now (each give or take the clock window). A disclosure held for the
holder's lead contact can arrive after a key rotation has retired the key it was signed with; a
receipt cannot be dated before we asked. A register row is then evidence either side can show, not
just what the other side claimed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ..errors import FederationRefused
from .attestation import KeyLookup, peek
from .transport import MAX_SKEW
from .withdrawals import consent_id_usable

__all__ = ["answer_is_sound", "receipt_time", "sign_receipt"]

_TYPE = "caf-disclosure-receipt+jws"
_ALGORITHM = "Ed25519"
# What the receipt must repeat of the answer, claim for claim (absent in both from holders before
# `holder_approved_by`, and when no lead contact of the holder's released it).
_REPEATED = ("register_id", "episode_ref", "sections", "basis", "override", "holder_approved_by")
_LEAD_CONTACT_MAX = 128  # the metadata's limit for a lead contact id


def sign_receipt(key: OKPKey, claims: dict[str, Any]) -> str:
    header = {"alg": _ALGORITHM, "typ": _TYPE, "kid": key.kid or ""}
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[_ALGORITHM])


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _statement_ids(value: object) -> TypeGuard[list[str]]:
    """A basis this node can keep: statement (or override) ids it can store and match."""
    return isinstance(value, list) and all(consent_id_usable(v) for v in value)


def _shaped(answer: Mapping[str, Any]) -> bool:
    """The fields the register and the received copy are made of have the types they need."""
    content, sections = answer.get("content"), answer.get("sections")
    return (
        isinstance(answer.get("register_id"), str)
        and _strings(sections)
        and _statement_ids(answer.get("basis"))
        and isinstance(answer.get("override"), bool)
        and isinstance(content, dict)
        and set(content) == set(sections)
        and isinstance(answer.get("receipt"), str)
        and _lead_contact_or_none(answer.get("holder_approved_by"))
    )


def _lead_contact_or_none(value: object) -> bool:
    """A holder's lead contact id as the metadata lists them (kept in a 200-character column)."""
    return value is None or (isinstance(value, str) and 0 < len(value) <= _LEAD_CONTACT_MAX)


def _disclosed_at(claims: Mapping[str, Any]) -> dt.datetime | None:
    """The receipt's `disclosed_at`, if it is a moment with its offset."""
    claimed = claims.get("disclosed_at")
    try:
        moment = dt.datetime.fromisoformat(claimed) if isinstance(claimed, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _dated(claims: dict[str, Any], window: tuple[dt.datetime, dt.datetime]) -> dt.datetime | None:
    """The receipt's `disclosed_at`, if it lies in `window` (each end give or take the clock
    window)."""
    moment = _disclosed_at(claims)
    earliest, latest = window
    if moment is None or not earliest - MAX_SKEW <= moment <= latest + MAX_SKEW:
        return None
    return moment


def _claims(
    receipt: str, holder: str, key_for: KeyLookup, window: tuple[dt.datetime, dt.datetime]
) -> dict[str, Any] | None:
    # Read before the signature is checked, only to find the key and the moment it must have been
    # valid at; returned only once the signature over these same bytes verifies.
    peeked = peek(receipt)
    if peeked is None:
        return None
    headers, claims = peeked
    kid = headers.get("kid")
    if not isinstance(kid, str):
        return None
    at = _dated(claims, window)
    if at is None:
        return None
    try:
        key = key_for(holder, kid, at)
    except FederationRefused:
        return None
    try:
        verified = jws.deserialize_compact(receipt, key, algorithms=[_ALGORITHM])
    except (JoseError, ValueError):
        return None
    return claims if verified.headers().get("typ") == _TYPE else None


def answer_is_sound(
    answer: Mapping[str, Any],
    *,
    asked: Mapping[str, Any],
    holder: str,
    me: str,
    key_for: KeyLookup,
    sent_at: dt.datetime,
    now: dt.datetime | None = None,
    override_id: str | None = None,
) -> bool:
    """A disclosure's answer fits what was `asked` (the request's input: its episode, practitioner
    and any sections named), is well formed, and carries a receipt `holder` signed for us, for
    that practitioner, that repeats it, dated between `sent_at` (when we made the request) and
    `now`. An answer given on an override must name ours (`override_id`) in its basis: a request
    that carried none was not disclosed on one."""
    if answer.get("outcome") != "disclosed" or answer.get("episode_ref") != asked["episode_ref"]:
        return False
    if not _shaped(answer):
        return False
    if answer["override"] and (override_id is None or override_id not in answer["basis"]):
        return False
    wanted = asked.get("sections")
    if wanted and not set(answer["sections"]) <= set(wanted):
        return False  # more than was asked for: not ours to keep
    window = (sent_at, now or dt.datetime.now(dt.UTC))
    claims = _claims(answer["receipt"], holder, key_for, window)
    return (
        claims is not None
        and claims.get("holder") == holder
        and claims.get("recipient") == me
        and claims.get("practitioner") == asked["practitioner"]["id"]
        and all(claims.get(name) == answer.get(name) for name in _REPEATED)
    )


def receipt_time(receipt: str) -> dt.datetime | None:
    """The `disclosed_at` of a receipt `answer_is_sound` accepted: the holder's moment of the
    disclosure, so both sides' registers give the same time for it."""
    peeked = peek(receipt)
    return _disclosed_at(peeked[1]) if peeked is not None else None
