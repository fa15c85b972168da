"""What the home node makes of a target's direct answer (`practitioner._take_answer`): only an answer
that fits the request is kept; anything else fails the request rather than being filed as received,
and a peer's error text is kept only as a wire code (it reaches the audit log and the API)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.federation.practitioner import _take_answer

EPISODE = "4b0d6c4e-0000-4000-8000-000000000001"


def _document(kind: str = "disclosure") -> dict[str, Any]:
    return {"input": {"kind": kind, "episode_ref": EPISODE}, "decisions": []}


DISCLOSED = {"outcome": "disclosed", "episode_ref": EPISODE, "sections": [], "content": {}}


@pytest.mark.parametrize(
    ("status", "answer", "state", "error"),
    [
        (200, DISCLOSED, "answered", None),
        (200, {**DISCLOSED, "episode_ref": "another-episode"}, "failed", "bad_answer"),
        (200, {"outcome": "disclosed", "episode_ref": EPISODE}, "failed", "bad_answer"),
        (200, {"outcome": "found"}, "failed", "bad_answer"),  # not a disclosure's answer
        (403, {"error": "consent_excluded"}, "refused", "consent_excluded"),
        (403, {"error": "Jane Smith is not allowed"}, "refused", "refused"),
        (403, {"error": {"nested": True}}, "refused", "refused"),
        (202, {"state": "pending", "approval_id": "a" * 65}, "failed", "bad_answer"),
        (202, {"state": "pending", "approval_id": "abc-123"}, "awaiting_holder", None),
    ],
)
def test_only_a_fitting_answer_is_kept(
    status: int, answer: dict[str, Any], state: str, error: str | None
) -> None:
    document = _document()
    assert _take_answer(document, status, answer) == state
    assert document.get("error") == error
    if state != "answered":
        assert document.get("answer") is None


def test_an_existence_check_keeps_its_answer() -> None:
    document = _document("existence_check")
    assert _take_answer(document, 200, {"outcome": "not_found"}) == "answered"
