"""Custody of a moved episode: each holder's signed word that it moved the episode on.

When a holder commits a transfer it signs a custody step (`from` itself, `to` the receiver, the
episode, the offer, when) and sends it with the episode, after the steps its own copy came with: the
receiver keeps that chain. A borough that moved a child's episode away takes it back only from a
member these steps lead to, starting at the member it moved it to, each step signed by the member
that held the episode then. So a child moving A -> B -> C -> A comes back to A from C, and a member
that never held the episode cannot make up a step that leads to it.

The steps are each holder's word, not proof of who holds the episode now: a member that once held
it and turns faulty can still vouch falsely (offer its stale read-only copy, or sign a step to
another member after moving the episode on). An honest node never offers a `transferred` copy.

A step is checked with its signer's key valid at its `committed_at` (ended keys stay in the
metadata for this: `rotate_key`), which may lie neither ahead of now nor before the step it
follows (each give or take the clock window). A step that does not verify moves nothing, and the
walk says so, so that refusal can be told apart from an offer by a member that never held the
episode. An offer carries only the steps its receiver needs, from the receiver's own last (signed)
step on, and none when it never held the episode: an offer must not tell a borough where else a
child has lived. A committed transfer carries the whole chain, with the episode's whole history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ..errors import FederationRefused
from .attestation import KeyLookup, peek
from .transport import MAX_SKEW

__all__ = ["MAX_STEPS", "Custody", "custody_chain", "moved_on_to", "sign_step", "steps_for"]

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
    """A chain as a peer sent it (or as stored), if it is one: a list of bounded strings, of which
    the newest `MAX_STEPS` are kept; anything else is no chain at all. Steps are verified only
    when walked."""
    if isinstance(value, list) and all(
        isinstance(step, str) and 0 < len(step) <= _MAX_STEP_CHARS for step in value
    ):
        return list(value[-MAX_STEPS:])
    return []


def _read(step: str) -> tuple[str, dict[str, Any], dt.datetime] | None:
    """A step's key id, claims and moment, unverified: only to find the key to check it with."""
    peeked = peek(step)
    if peeked is None:
        return None
    headers, claims = peeked
    kid, moment = headers.get("kid"), claims.get("committed_at")
    try:
        at = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else None
    except ValueError:
        return None
    if not isinstance(kid, str) or at is None or at.tzinfo is None:
        return None
    return kid, claims, at


def _verifies(step: str, signer: str, kid: str, at: dt.datetime, key_for: KeyLookup) -> bool:
    try:
        key = key_for(signer, kid, at)
        verified = jws.deserialize_compact(step, key, algorithms=[_ALGORITHM])
    except (FederationRefused, JoseError, ValueError):
        return False
    return verified.headers().get("typ") == _TYPE


@dataclass(frozen=True, slots=True)
class Custody:
    holder: str  # where the signed steps lead
    unverified: bool  # a step from that holder on did not verify (forged, key gone, suspended)


def moved_on_to(
    chain: Sequence[str],
    *,
    episode_ref: str,
    first: str,
    since: dt.datetime,
    key_for: KeyLookup,
    now: dt.datetime | None = None,
) -> Custody:
    """Who holds `episode_ref`, as far as `chain` vouches: starting at `first` (the member we moved
    it to at `since`), each step signed by the member holding it then, dated after the step before
    and not ahead of now, moves it on. Steps of other episodes, other holders or before are passed
    by."""
    holder, after, unverified = first, since, False
    latest = (now or dt.datetime.now(dt.UTC)) + MAX_SKEW
    for step in chain:
        read = _read(step)
        if read is None:
            continue
        kid, claims, at = read
        moved_to = claims.get("to")
        if claims.get("episode_ref") != episode_ref or claims.get("from") != holder:
            continue
        if not isinstance(moved_to, str) or not after - MAX_SKEW <= at <= latest:
            continue
        if _verifies(step, holder, kid, at, key_for):
            holder, after, unverified = moved_to, at, False
        else:
            unverified = True
    return Custody(holder, unverified)


def steps_for(chain: Sequence[str], receiver: str, key_for: KeyLookup) -> list[str]:
    """The part of `chain` an offer to `receiver` carries: from the receiver's own last step on
    (one its key signed), or nothing if it never held the episode."""
    for index in range(len(chain) - 1, -1, -1):
        read = _read(chain[index])
        if read is None or read[1].get("from") != receiver:
            continue
        kid, _, at = read
        if _verifies(chain[index], receiver, kid, at, key_for):
            return list(chain[index:])
    return []
