"""Custody of a moved episode: each holder's signed word that it moved the episode on.

When a holder commits a transfer it signs a custody step (`from` itself, `to` the receiver, the
episode, the offer, when) and sends it with the episode, after the steps it received with its own
copy: the receiver keeps that chain. A borough that moved a child's episode away takes it back only
from the member holding it now: the one it moved it to, or one that member (and each after it)
vouched for, step by step, after our own move. So a child moving A -> B -> C -> A comes back to A
from C, and a member that never held the episode still cannot overwrite A's read-only copy: it
cannot sign another member's step.

An offer carries only the part of the chain its receiver needs (from the receiver's own last step
on), and none when the receiver never held the episode: an offer must not tell a borough where else
a child has lived. A step is checked with its signer's key valid at the step's `committed_at`;
a step that does not verify (unknown or suspended signer, retired key, forged) moves nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ..errors import FederationRefused
from .attestation import KeyLookup
from .transport import MAX_SKEW

__all__ = ["MAX_STEPS", "custody_chain", "moved_on_to", "sign_step", "steps_for"]

_TYPE = "caf-custody+jws"
_ALGORITHM = "Ed25519"
# An episode moves a handful of times in a childhood; the newest steps are the ones ever walked.
MAX_STEPS = 64
_MAX_STEP_CHARS = 4_096


def sign_step(
    key: OKPKey,
    *,
    episode_ref: str,
    sender: str,
    receiver: str,
    offer_id: str,
    committed_at: dt.datetime,
) -> str:
    claims = {
        "episode_ref": episode_ref,
        "from": sender,
        "to": receiver,
        "offer_id": offer_id,
        "committed_at": committed_at.isoformat(),
    }
    header = {"alg": _ALGORITHM, "typ": _TYPE, "kid": key.kid or ""}
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[_ALGORITHM])


def custody_chain(value: object) -> list[str]:
    """A chain as a peer sent it (or as stored), if it is one: a list of at most `MAX_STEPS`
    bounded strings; anything else is no chain at all. Steps are verified only when walked."""
    if (
        isinstance(value, list)
        and len(value) <= MAX_STEPS
        and all(isinstance(step, str) and 0 < len(step) <= _MAX_STEP_CHARS for step in value)
    ):
        return list(value)
    return []


def _read(step: str) -> tuple[str, dict[str, Any], dt.datetime] | None:
    """A step's key id, claims and moment, unverified: only to find the key to check it with."""
    try:
        unverified = jws.extract_compact(step.encode())
        kid = unverified.headers().get("kid")
        claims = json.loads(unverified.payload)
        at = dt.datetime.fromisoformat(claims["committed_at"])
    except (JoseError, ValueError, RecursionError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(kid, str) or not isinstance(claims, dict) or at.tzinfo is None:
        return None
    return kid, claims, at


def _verifies(step: str, signer: str, kid: str, at: dt.datetime, key_for: KeyLookup) -> bool:
    try:
        key = key_for(signer, kid, at)
        verified = jws.deserialize_compact(step, key, algorithms=[_ALGORITHM])
    except (FederationRefused, JoseError, ValueError):
        return False
    return verified.headers().get("typ") == _TYPE


def moved_on_to(
    chain: Sequence[str],
    *,
    episode_ref: str,
    first: str,
    since: dt.datetime,
    key_for: KeyLookup,
) -> str:
    """Who holds `episode_ref` now, as far as `chain` vouches: starting at `first` (the member we
    moved it to at `since`), each step signed by the member holding it then, later than the step
    before, moves it on. Steps of other episodes, of other holders or from before are passed by."""
    holder, after = first, since - MAX_SKEW
    for step in chain[-MAX_STEPS:]:
        read = _read(step)
        if read is None:
            continue
        kid, claims, at = read
        if claims.get("episode_ref") != episode_ref or claims.get("from") != holder:
            continue
        moved_to = claims.get("to")
        if at < after or not isinstance(moved_to, str):
            continue
        if _verifies(step, holder, kid, at, key_for):  # else passed by like any other
            holder, after = moved_to, at
    return holder


def steps_for(chain: Sequence[str], receiver: str) -> list[str]:
    """The part of `chain` an offer to `receiver` carries: from the receiver's own last step on,
    or nothing if it never held the episode (and so has no copy the chain could vouch for)."""
    for index in range(len(chain) - 1, -1, -1):
        read = _read(chain[index])
        if read is not None and read[1].get("from") == receiver:
            return list(chain[index:])
    return []
