"""What the home node makes of a target's direct answer (`practitioner._take_answer`): only an answer
that fits the request, with a receipt the holder signed for us that says what the answer says, is
kept; anything else fails the request rather than being filed as received, and a peer's error text
is kept only as a wire code (it reaches the audit log and the API)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from gateway.errors import FederationRefused
from gateway.federation.practitioner import _take_answer
from gateway.federation.receipts import answer_is_sound, sign_receipt

EPISODE = "4b0d6c4e-0000-4000-8000-000000000001"
HOLDER, ME, OTHER = "E09000012", "E09000007", "E09000019"
HOLDER_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "holder-1"})
STRANGER_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "holder-1"})
RETIRED_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "holder-0"})
NOW = dt.datetime.now(dt.UTC)
SENT_AT = NOW - dt.timedelta(days=3)  # when our request went: the holder's lead contact took days
RETIRED_AT = NOW - dt.timedelta(days=1)  # holder-0's not_after: rotated while the answer waited


def _key_for(member: str, kid: str, at: dt.datetime) -> Any:
    if member == HOLDER and kid == "holder-1":
        return HOLDER_KEY
    if member == HOLDER and kid == "holder-0" and at < RETIRED_AT:
        return RETIRED_KEY
    raise FederationRefused("no such key")


PRACTITIONER_ID = "camden-hv-1"


def _sound(asked: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
    return answer_is_sound(
        answer, asked=asked, holder=HOLDER, me=ME, key_for=_key_for, sent_at=SENT_AT, now=NOW
    )


def _document(kind: str = "disclosure", **asked: Any) -> dict[str, Any]:
    request = {"kind": kind, "episode_ref": EPISODE, "practitioner": {"id": PRACTITIONER_ID}}
    return {"input": {**request, **asked}, "decisions": []}


def _disclosed(key: OKPKey = HOLDER_KEY, **claims: Any) -> dict[str, Any]:
    answer = {
        "outcome": "disclosed",
        "register_id": "r-1",
        "episode_ref": EPISODE,
        "sections": ["child"],
        "basis": ["consent-1"],
        "override": False,
        "content": {"child": {}},
    }
    signed = {
        "holder": HOLDER,
        "recipient": ME,
        "practitioner": PRACTITIONER_ID,
        "disclosed_at": (NOW - dt.timedelta(seconds=1)).isoformat(),
        **{k: answer[k] for k in ("register_id", "episode_ref", "sections", "basis", "override")},
        **claims,
    }
    return {**answer, "receipt": sign_receipt(key, signed)}


def _forged(payload: bytes) -> str:
    """A compact JWS's shape around `payload`, its signature garbage (the payload is read for its
    date before the signature is checked)."""
    header = {"alg": "Ed25519", "typ": "caf-disclosure-receipt+jws", "kid": "holder-1"}
    parts = (json.dumps(header).encode(), payload, b"x" * 64)
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


def _at(**offset: float) -> str:
    return (NOW + dt.timedelta(**offset)).isoformat()


DISCLOSED = _disclosed()


@pytest.mark.parametrize(
    ("status", "answer", "state", "error"),
    [
        (200, DISCLOSED, "answered", None),
        (200, {**DISCLOSED, "episode_ref": "another-episode"}, "failed", "bad_answer"),
        (200, {"outcome": "disclosed", "episode_ref": EPISODE}, "failed", "bad_answer"),
        (200, {"outcome": "found"}, "failed", "bad_answer"),  # not a disclosure's answer
        (200, {**DISCLOSED, "sections": ["child", "plan"]}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "basis": "consent-1"}, "failed", "bad_answer"),
        # A basis this node could not store (NUL: PostgreSQL refuses it) or match, however signed.
        (
            200,
            _disclosed(basis=["consent\x00"]) | {"basis": ["consent\x00"]},
            "failed",
            "bad_answer",
        ),
        (200, _disclosed(basis=["c" * 513]) | {"basis": ["c" * 513]}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "override": "no"}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "content": {"plan": {}}}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "receipt": None}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "receipt": "not.a.jws"}, "failed", "bad_answer"),
        (200, _disclosed(STRANGER_KEY), "failed", "bad_answer"),  # not the holder's key
        (200, _disclosed(recipient=OTHER), "failed", "bad_answer"),  # signed for another
        (200, _disclosed(holder=OTHER), "failed", "bad_answer"),
        (200, _disclosed(override=True), "failed", "bad_answer"),  # says more than the answer
        (200, _disclosed(basis=["consent-2"]), "failed", "bad_answer"),
        # The answer is well formed; only its receipt disagrees with it.
        (200, _disclosed(sections=["plan"]), "failed", "bad_answer"),
        (200, _disclosed(register_id="r-2"), "failed", "bad_answer"),
        (200, _disclosed(episode_ref="another-episode"), "failed", "bad_answer"),
        (200, _disclosed(practitioner="someone-else"), "failed", "bad_answer"),  # not our request
        # Who released a held disclosure: said alike by the answer and its receipt, or not at all.
        (200, _disclosed(holder_approved_by="lead-9"), "failed", "bad_answer"),
        (200, {**DISCLOSED, "holder_approved_by": "lead-9"}, "failed", "bad_answer"),
        (200, {**DISCLOSED, "holder_approved_by": 7}, "failed", "bad_answer"),
        # Dated: the key valid then, between our request and now (give or take five minutes).
        (200, _disclosed(RETIRED_KEY, disclosed_at=_at(days=-2)), "answered", None),
        (200, _disclosed(RETIRED_KEY), "failed", "bad_answer"),  # dated after the key's end
        (200, _disclosed(disclosed_at=_at(days=-3, seconds=-299)), "answered", None),
        (200, _disclosed(disclosed_at=_at(days=-3, seconds=-301)), "failed", "bad_answer"),
        (200, _disclosed(disclosed_at=_at(seconds=299)), "answered", None),
        (200, _disclosed(disclosed_at=_at(seconds=301)), "failed", "bad_answer"),
        (200, _disclosed(disclosed_at=None), "failed", "bad_answer"),
        (200, _disclosed(disclosed_at="yesterday"), "failed", "bad_answer"),
        (
            200,
            {**DISCLOSED, "receipt": _forged(b"[" * 10_000 + b"]" * 10_000)},
            "failed",
            "bad_answer",
        ),
        (
            200,
            _disclosed(disclosed_at=NOW.replace(tzinfo=None).isoformat()),
            "failed",
            "bad_answer",
        ),
        (403, {"error": "consent_excluded"}, "refused", "consent_excluded"),
        (403, {"error": "Jane Smith is not allowed"}, "refused", "refused"),
        (403, {"error": {"nested": True}}, "refused", "refused"),
        (503, {"error": "busy"}, "failed", "busy"),  # the target is full: it decided nothing
        (500, {"error": "internal_error"}, "failed", "internal_error"),
        (202, {"state": "pending", "approval_id": "a" * 65}, "failed", "bad_answer"),
        (202, {"state": "pending", "approval_id": "abc-123"}, "awaiting_holder", None),
    ],
)
def test_only_a_fitting_answer_is_kept(
    status: int, answer: dict[str, Any], state: str, error: str | None
) -> None:
    document = _document()
    assert _take_answer(document, status, answer, _sound) == state
    assert document.get("error") == error
    if state != "answered":
        assert document.get("answer") is None


def test_an_answer_beyond_the_sections_asked_for_is_not_kept() -> None:
    asked_for_child = _document(sections=["child"])
    assert _take_answer(asked_for_child, 200, DISCLOSED, _sound) == "answered"
    asked_for_plan = _document(sections=["plan"])
    assert _take_answer(asked_for_plan, 200, DISCLOSED, _sound) == "failed"
    assert asked_for_plan["error"] == "bad_answer"


def test_an_existence_check_keeps_its_answer() -> None:
    document = _document("existence_check")
    assert _take_answer(document, 200, {"outcome": "not_found"}, _sound) == "answered"


def _on_override(override_id: str) -> dict[str, Any]:
    answer = _disclosed(override=True, basis=[override_id])
    return {**answer, "override": True, "basis": [override_id]}


def test_an_answer_on_an_override_must_name_ours() -> None:
    """Given on an override, the answer's basis names the override this request carried; a
    request that carried none was not disclosed on one, however the receipt says it."""
    ours = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

    def sound_with(override_id: str | None) -> Any:
        def sound(asked: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
            return answer_is_sound(
                answer,
                asked=asked,
                holder=HOLDER,
                me=ME,
                key_for=_key_for,
                sent_at=SENT_AT,
                now=NOW,
                override_id=override_id,
            )

        return sound

    for override_id, answer, state in (
        (ours, _on_override(ours), "answered"),
        (None, _on_override(ours), "failed"),
        (ours, _on_override("another-override"), "failed"),
    ):
        document = _document()
        assert _take_answer(document, 200, answer, sound_with(override_id)) == state


def test_a_holder_lead_contact_id_longer_than_the_metadata_allows_is_not_kept() -> None:
    """It would not fit the register's column (a 500 on PostgreSQL after the holder disclosed)."""
    long_id = "l" * 129
    answer = {**_disclosed(holder_approved_by=long_id), "holder_approved_by": long_id}
    document = _document()
    assert _take_answer(document, 200, answer, _sound) == "failed"
    fits = "l" * 128
    answer = {**_disclosed(holder_approved_by=fits), "holder_approved_by": fits}
    assert _take_answer(_document(), 200, answer, _sound) == "answered"
