"""Custody steps (DESIGN 3.6, `gateway/federation/custody.py`): who holds a moved episode, as far as
each holder's signed step vouches for it, and nothing a member could make up on its own."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from gateway.errors import FederationRefused
from gateway.federation.custody import (
    MAX_STEPS,
    Custody,
    custody_chain,
    moved_on_to,
    sign_step,
    steps_for,
)

A, B, C, D = "E09000012", "E09000019", "E09000007", "E09000001"  # Hackney, Islington, Camden, City
SINCE = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # when A moved the episode to B
NOW = SINCE + dt.timedelta(days=30)
EPISODE = "6f1c1e0a-8b7e-4a43-9a53-1d0f0f6a1c11"


def _key(kid: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid}, private=True)


KEYS = {m: _key(f"{m}-1") for m in (A, B, C, D)}
# B rotated ten days after A's move: its first key signed steps before then, its second after.
B_ROTATED = SINCE + dt.timedelta(days=10)
B_NEW = _key(f"{B}-2")
IMPOSTOR = _key(f"{B}-1")  # another key under B's key id
_EVER, _NEVER = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
WINDOWS = {(m, f"{m}-1"): (key, _EVER, _NEVER) for m, key in KEYS.items()}
WINDOWS[B, f"{B}-1"] = (KEYS[B], _EVER, B_ROTATED)
WINDOWS[B, f"{B}-2"] = (B_NEW, B_ROTATED, _NEVER)
SUSPENDED: set[str] = set()


def key_for(member: str, kid: str, at: dt.datetime) -> OKPKey:
    """As the member directory: key `kid` of an active member, if `at` lies in its window."""
    found = WINDOWS.get((member, kid))
    if found is None or member in SUSPENDED or not found[1] <= at < found[2]:
        raise FederationRefused("no such key", code="invalid_signature")
    return found[0]


def step(sender: str, receiver: str, hours: float, **changes: Any) -> str:
    values: dict[str, Any] = {
        "episode_ref": EPISODE,
        "sender": sender,
        "receiver": receiver,
        "offer_id": f"offer-{sender}-{receiver}-{hours}",
        "committed_at": SINCE + dt.timedelta(hours=hours),
    }
    values.update(changes)
    return sign_step(values.pop("key", KEYS[sender]), **values)


def walk(chain: list[str], first: str = B, now: dt.datetime = NOW) -> Custody:
    return moved_on_to(
        chain, episode_ref=EPISODE, first=first, since=SINCE, key_for=key_for, now=now
    )


def holder(chain: list[str], first: str = B) -> str:
    return walk(chain, first).holder


def test_the_steps_lead_from_the_member_we_moved_it_to_to_the_one_holding_it_now() -> None:
    assert walk([]) == Custody(B, unverified=False)
    assert holder([step(B, C, 1)]) == C
    assert holder([step(B, C, 1), step(C, D, 2)]) == D
    # It came back to B and moved on again: every step in turn.
    assert holder([step(B, C, 1), step(C, B, 2), step(B, D, 3)]) == D
    # Our own earlier step, and history from before we moved it, are passed by.
    assert holder([step(C, A, -48), step(A, B, 0), step(B, C, 1)]) == C


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda: step(B, C, 1, key=KEYS[C]), id="signed-by-the-receiver"),
        pytest.param(lambda: step(B, C, 1, key=IMPOSTOR), id="another-key-with-the-signer's-kid"),
        pytest.param(lambda: step(B, C, 24 * 11, key=KEYS[B]), id="a-retired-key-after-its-window"),
        pytest.param(
            lambda: jws.serialize_compact(
                {"alg": "Ed25519", "typ": "caf-disclosure-receipt+jws", "kid": f"{B}-1"},
                jws.extract_compact(step(B, C, 1).encode()).payload,
                KEYS[B],
                algorithms=["Ed25519"],
            ),
            id="another-kind-of-token-signed-by-the-holder",
        ),
    ],
)
def test_a_step_that_does_not_verify_moves_nothing_and_says_so(forged: Any) -> None:
    assert walk([forged()]) == Custody(B, unverified=True)
    # What follows it cannot start from where it claimed to lead.
    assert walk([forged(), step(C, D, 2)]) == Custody(B, unverified=True)
    # A genuine step from the same holder after it still leads on.
    assert walk([forged(), step(B, D, 5)]) == Custody(D, unverified=False)


@pytest.mark.parametrize(
    "stray",
    [
        pytest.param(lambda: step(B, C, 1, episode_ref="another-episode"), id="another-episode"),
        pytest.param(lambda: step(B, C, -1), id="before-we-moved-it"),
        pytest.param(lambda: step(D, C, 1), id="from-a-member-that-never-held-it"),
        pytest.param(lambda: "not.a.step", id="garbage"),
        pytest.param(lambda: step(B, C, 1).replace(".", "x.", 1), id="unreadable-header"),
    ],
)
def test_a_step_that_is_not_the_holders_next_one_is_passed_by(stray: Any) -> None:
    assert walk([stray()]) == Custody(B, unverified=False)


def test_a_payload_changed_after_signing_moves_nothing() -> None:
    header, _, signature = step(B, C, 1).split(".")
    _, other_payload, _ = step(B, D, 1).split(".")
    assert walk([f"{header}.{other_payload}.{signature}"]) == Custody(B, unverified=True)


def test_a_key_since_retired_still_vouches_for_what_it_signed_while_valid() -> None:
    assert holder([step(B, C, 24 * 9)]) == C  # B's first key, a day before B rotated
    assert holder([step(B, C, 24 * 11, key=B_NEW)]) == C


def test_a_suspended_signer_vouches_for_nothing() -> None:
    SUSPENDED.add(B)
    try:
        assert walk([step(B, C, 1)]) == Custody(B, unverified=True)
    finally:
        SUSPENDED.discard(B)


def test_steps_follow_each_other_in_time_give_or_take_the_clock_window() -> None:
    assert holder([step(B, C, 2), step(C, D, 1)]) == C
    assert holder([step(B, C, 2), step(C, D, 2 - 299 / 3600)]) == D
    assert holder([step(B, C, 2), step(C, D, 2 - 301 / 3600)]) == C
    assert holder([step(B, C, -299 / 3600)]) == C  # our own clock may be a little ahead
    assert holder([step(B, C, -301 / 3600)]) == B


def test_a_step_dated_ahead_of_now_moves_nothing() -> None:
    """Else a signer could date a step years on, and every honest step after it would look older."""
    soon = SINCE + dt.timedelta(hours=2)
    assert walk([step(B, C, 2 + 299 / 3600)], now=soon).holder == C
    assert walk([step(B, C, 2 + 301 / 3600)], now=soon).holder == B
    assert walk([step(B, C, 24 * 400, key=B_NEW), step(C, D, 3)]).holder == B


def test_an_offer_carries_the_steps_from_its_receivers_last_signed_one_only() -> None:
    chain = [step(A, B, 0), step(B, C, 1), step(C, D, 2)]
    assert steps_for(chain, B, key_for) == chain[1:]
    assert steps_for(chain, A, key_for) == chain
    assert steps_for(chain, "E09000002", key_for) == []  # never held it: learns nothing
    assert steps_for(chain, D, key_for) == []
    # A step in D's name that D did not sign does not make D a former holder.
    assert steps_for([*chain, step(D, C, 3, key=KEYS[C])], D, key_for) == []


def test_only_a_list_of_bounded_strings_is_a_chain_and_the_newest_steps_are_kept() -> None:
    good = [step(B, C, 1)]
    assert custody_chain(good) == good
    for bad in (None, "x", {"0": "x"}, [1], [""], ["x" * 5_000], [*good, None]):
        assert custody_chain(bad) == []
    long = [f"step-{n}" for n in range(MAX_STEPS + 5)]
    assert custody_chain(long) == long[5:]
    assert json.loads(json.dumps(custody_chain(long))) == long[5:]
