"""Custody steps (DESIGN 3.6, `gateway/federation/custody.py`): who holds a moved episode now, as
far as each holder's signed step vouches for it, and nothing a member could make up on its own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from gateway.errors import FederationRefused
from gateway.federation.custody import (
    MAX_STEPS,
    custody_chain,
    moved_on_to,
    sign_step,
    steps_for,
)

A, B, C, D = "E09000012", "E09000019", "E09000007", "E09000001"  # Hackney, Islington, Camden, City
IMPOSTOR = OKPKey.generate_key("Ed25519", parameters={"kid": f"{B}-1"}, private=True)  # B's kid
KEYS = {
    m: OKPKey.generate_key("Ed25519", parameters={"kid": f"{m}-1"}, private=True)
    for m in (A, B, C, D)
}
EPISODE = "6f1c1e0a-8b7e-4a43-9a53-1d0f0f6a1c11"
SINCE = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # when A moved the episode to B
SUSPENDED: set[str] = set()


def key_for(member: str, kid: str, at: dt.datetime) -> OKPKey:
    key = KEYS.get(member)
    if key is None or key.kid != kid or member in SUSPENDED:
        raise FederationRefused("no such key", code="invalid_signature")
    return key


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


def holder(chain: list[str], first: str = B) -> str:
    return moved_on_to(chain, episode_ref=EPISODE, first=first, since=SINCE, key_for=key_for)


def test_the_steps_lead_from_the_member_we_moved_it_to_to_the_one_holding_it_now() -> None:
    assert holder([]) == B
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
        pytest.param(lambda: step(B, C, 1, episode_ref="another-episode"), id="another-episode"),
        pytest.param(lambda: step(B, C, -1), id="before-we-moved-it"),
        pytest.param(lambda: step(D, C, 1), id="from-a-member-that-never-held-it"),
        pytest.param(lambda: "not.a.step", id="garbage"),
        pytest.param(lambda: step(B, C, 1).replace(".", "x.", 1), id="tampered-header"),
    ],
)
def test_a_step_nobody_vouched_for_moves_nothing(forged: Any) -> None:
    assert holder([forged()]) == B
    # And what follows it cannot start from where it claimed to lead.
    assert holder([forged(), step(C, D, 2)]) == B


def test_a_payload_changed_after_signing_moves_nothing() -> None:
    header, payload, signature = step(B, C, 1).split(".")
    other_header, other_payload, _ = step(B, D, 1).split(".")
    assert holder([f"{header}.{other_payload}.{signature}"]) == B


def test_a_suspended_signer_vouches_for_nothing() -> None:
    SUSPENDED.add(B)
    try:
        assert holder([step(B, C, 1)]) == B
    finally:
        SUSPENDED.discard(B)


def test_steps_must_follow_each_other_in_time() -> None:
    assert holder([step(B, C, 2), step(C, D, 1)]) == C


def test_an_offer_carries_the_steps_from_its_receivers_last_one_only() -> None:
    chain = [step(A, B, 0), step(B, C, 1), step(C, D, 2)]
    assert steps_for(chain, B) == chain[1:]
    assert steps_for(chain, A) == chain
    assert steps_for(chain, "E09000002") == []  # never held it: it learns nothing of where it was
    assert steps_for(chain, D) == []


def test_only_a_bounded_list_of_bounded_strings_is_a_chain() -> None:
    good = [step(B, C, 1)]
    assert custody_chain(good) == good
    for bad in (None, "x", {"0": "x"}, [1], [""], ["x" * 5_000], ["x"] * (MAX_STEPS + 1)):
        assert custody_chain(bad) == []
