"""Events on an episode keep it coherent: nothing new on a closed episode but a review held by
its closure, and a closure dated on or after the dated work it records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.episodes import EventBody, apply_event
from gateway.errors import Conflict, SchemaViolation
from gateway.timeliness import TimeRule, due_items
from schemas import Episode, EpisodeState

from .test_timeliness import episode

PERSON = {"name": "C D", "organisation": "Y", "agency_type": "health", "authority": "E09000019"}


def _event(body: dict[str, Any]) -> Any:
    return EventBody.model_validate({"event": body}).event


def _closed(on: str = "2026-03-10") -> Episode:
    made = episode(reviews=[(on, True, None)])
    closure = {"closed_on": on, "outcome": "resolved_single_service"}
    closed = apply_event(made, _event({"type": "closure", "closure": closure}))
    assert closed.state is EpisodeState.CLOSED
    return closed


@pytest.mark.parametrize(
    "body",
    [
        {"type": "tac_member_added", "member": PERSON},
        {"type": "lead_professional_changed", "lead_professional": PERSON},
    ],
)
def test_a_closed_episode_takes_no_new_member_or_lead_professional(body: dict[str, Any]) -> None:
    with pytest.raises(Conflict, match="closed"):
        apply_event(_closed(), _event(body))


def test_a_review_held_after_the_closure_is_refused() -> None:
    late = {"type": "review", "review": {"held_on": "2026-06-01", "tac_meeting_held": True}}
    with pytest.raises(SchemaViolation) as caught:
        apply_event(_closed(), _event(late))
    assert [p.rule for p in caught.value.problems] == ["dates.review_after_closure"]


def test_a_review_held_by_the_closure_is_recorded_late() -> None:
    held = {"type": "review", "review": {"held_on": "2026-03-01", "tac_meeting_held": False}}
    recorded = apply_event(_closed(), _event(held))
    assert len(recorded.reviews) == 2 and recorded.state is EpisodeState.CLOSED


@pytest.mark.parametrize(
    "closed_on",
    ["2001-01-01", "2026-02-19"],  # before the child's birth; before the consent statement
)
def test_a_step_down_is_not_closed_before_its_dated_work(closed_on: str) -> None:
    """No assessment or review (a potential episode): the consent statement and the child's
    birth still date it, so a closure years back by mistake is refused."""
    fresh = episode(completed=(), state="potential")
    closure = {"closed_on": closed_on, "outcome": "resolved_single_service"}
    with pytest.raises(SchemaViolation) as caught:
        apply_event(fresh, _event({"type": "closure", "closure": closure}))
    assert [p.rule for p in caught.value.problems] == ["dates.closure_before_recorded_work"]
    on_the_day = {"closed_on": "2026-02-20", "outcome": "resolved_single_service"}
    assert apply_event(fresh, _event({"type": "closure", "closure": on_the_day})).closure


def test_a_consent_given_after_the_work_ended_does_not_hold_the_closure_back() -> None:
    """A consent to send the closing summary to the school, given after the CAF ended: the
    closure is dated when it ended, after the first statement only."""
    fresh = episode(completed=(), state="potential")
    [first] = fresh.consents
    summary = first.model_copy(update={"consent_id": "C-SUMMARY", "given_on": dt.date(2026, 3, 5)})
    later = fresh.model_copy(update={"consents": [first, summary]})
    ended = {"closed_on": "2026-03-01", "outcome": "resolved_single_service"}
    assert apply_event(later, _event({"type": "closure", "closure": ended})).closure


ASSESSMENT = {
    "version": 2,
    "started_on": "2026-06-01",
    "completed_on": "2026-06-05",
    "assessor": PERSON,
    "reason": "reassessment after four reviews",
}


def test_a_reassessment_is_recorded_and_clears_what_was_due() -> None:
    """DESIGN 3.6: re-assess after 4 reviews. A newer completed assessment meets the item; before,
    no event could record one, so the item could never be met."""
    reviewed = episode(
        reviews=[
            (day, True, None)
            for day in ("2026-03-01", "2026-04-01", "2026-05-01", "2026-05-20", "2026-05-28")
        ]
    )
    assert TimeRule.REASSESSMENT in {d.rule for d in due_items(reviewed)}
    reassessed = apply_event(reviewed, _event({"type": "assessment", "assessment": ASSESSMENT}))
    assert [a.version for a in reassessed.assessments] == [1, 2]
    assert TimeRule.REASSESSMENT not in {d.rule for d in due_items(reassessed)}


@pytest.mark.parametrize("version", [1, 0])
def test_an_assessment_version_comes_after_those_recorded(version: int) -> None:
    body = {"type": "assessment", "assessment": {**ASSESSMENT, "version": version}}
    if version < 1:  # the national model's own floor
        with pytest.raises(ValidationError):
            _event(body)
        return
    with pytest.raises(SchemaViolation) as caught:
        apply_event(episode(), _event(body))
    assert [(p.rule, p.pointer) for p in caught.value.problems] == [
        ("assessment.version_not_newer", "/event/assessment/version")
    ]


def test_the_plan_and_service_requests_are_recorded() -> None:
    action = {"need": "school attendance", "action": "daily check-in", "responsible": "C D"}
    planned = apply_event(
        episode(), _event({"type": "delivery_plan_updated", "delivery_plan": [action]})
    )
    assert [a.action for a in planned.delivery_plan] == ["daily check-in"]
    cleared = apply_event(planned, _event({"type": "delivery_plan_updated", "delivery_plan": []}))
    assert cleared.delivery_plan == []
    request = {"service": "Family support", "requested_on": "2026-06-02", "status": "requested"}
    asked = apply_event(planned, _event({"type": "service_request", "service_request": request}))
    assert [s.service for s in asked.service_requests][-1] == "Family support"
    # After a closure a referral on may still be made; no new assessment or plan.
    closed = _closed()
    assert apply_event(closed, _event({"type": "service_request", "service_request": request}))
    for body in (
        {"type": "assessment", "assessment": ASSESSMENT},
        {"type": "delivery_plan_updated", "delivery_plan": [action]},
    ):
        with pytest.raises(Conflict, match="closed"):
            apply_event(closed, _event(body))


def test_a_potential_caf_is_taken_up_once() -> None:
    potential = episode(state="potential")
    opened = apply_event(potential, _event({"type": "taken_up"}))
    assert opened.state is EpisodeState.OPEN
    with pytest.raises(Conflict, match="potential"):
        apply_event(opened, _event({"type": "taken_up"}))
