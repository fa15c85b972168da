"""The time rules (gateway/timeliness.py): each rule due on the day the standards give, met by what
meets it, and nothing due where no clock runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.caf_register_csv import ADAPTER as REGISTER
from gateway.timeliness import Due, TimeRule, due_items, working_days_after
from schemas import Episode

VALID = Path(__file__).resolve().parent.parent / "fixtures" / "national" / "valid-episode.json"
BASE: dict[str, Any] = json.loads(VALID.read_text(encoding="utf-8"))
ASSESSOR = BASE["assessments"][0]["assessor"]


def episode(
    completed: Sequence[str | None] = ("2026-02-20",),
    reviews: Sequence[tuple[str, bool, str | None]] = (),
    state: str = "open",
    closed_on: str | None = None,
) -> Episode:
    """The valid fixture with these assessments (completion dates), reviews (held on, at a TAC
    meeting, next review on) and state."""
    data = json.loads(json.dumps(BASE))
    data["state"] = state
    data["assessments"] = [
        {
            "version": n,
            "started_on": "2026-01-05",
            "completed_on": done,
            "assessor": ASSESSOR,
            "reason": "concerns at school",
        }
        for n, done in enumerate(completed, start=1)
    ]
    data["reviews"] = [
        {"held_on": held, "tac_meeting_held": tac, "next_review_on": next_on}
        for held, tac, next_on in reviews
    ]
    if closed_on is not None:
        data["closure"] = {"closed_on": closed_on, "outcome": "resolved_single_service"}
    return Episode.model_validate(data)


def rules(found: list[Due]) -> dict[TimeRule, dt.date]:
    return {due.rule: due.due_on for due in found}


def test_the_first_tac_meeting_counts_working_days_past_bank_holidays() -> None:
    # Completed Friday 18 December 2026: Christmas Day, the substitute Boxing Day (28th) and New
    # Year's Day are not working days, nor are weekends; the 20th working day is 20 January.
    found = rules(due_items(episode(["2026-12-18"])))
    assert found == {TimeRule.FIRST_TAC_MEETING: dt.date(2027, 1, 20)}


def test_a_tac_meeting_starts_the_review_clock() -> None:
    found = rules(due_items(episode(reviews=[("2026-03-10", True, None)])))
    assert found == {TimeRule.FIRST_REVIEW: dt.date(2026, 6, 10)}


def test_a_review_not_at_a_tac_meeting_does_not_meet_the_first_meeting() -> None:
    found = rules(due_items(episode(reviews=[("2026-03-10", False, None)])))
    assert TimeRule.FIRST_TAC_MEETING in found and TimeRule.FIRST_REVIEW not in found


def test_a_meeting_before_the_assessment_was_completed_does_not_count() -> None:
    found = rules(due_items(episode(reviews=[("2026-02-01", True, None)])))
    assert TimeRule.FIRST_TAC_MEETING in found


def test_reviews_then_fall_due_every_three_months_or_sooner_if_set() -> None:
    every = rules(
        due_items(episode(reviews=[("2026-03-10", True, None), ("2026-05-31", False, None)]))
    )
    assert every == {TimeRule.REVIEW: dt.date(2026, 8, 31)}
    sooner = rules(
        due_items(
            episode(reviews=[("2026-03-10", True, None), ("2026-05-31", False, "2026-07-01")])
        )
    )
    assert sooner == {TimeRule.REVIEW: dt.date(2026, 7, 1)}
    later_than_allowed = rules(due_items(episode(reviews=[("2026-03-10", True, "2026-12-01")])))
    assert later_than_allowed == {TimeRule.FIRST_REVIEW: dt.date(2026, 6, 10)}


def test_a_month_end_meeting_is_reviewed_by_the_end_of_a_shorter_month() -> None:
    found = rules(due_items(episode(reviews=[("2026-11-30", True, None)])))
    assert found == {TimeRule.FIRST_REVIEW: dt.date(2027, 2, 28)}


def test_the_fourth_review_of_the_plan_asks_for_a_reassessment() -> None:
    # The TAC meeting of 10 March agrees the plan; the reviews of it follow.
    held = [
        ("2026-03-10", True, None),
        ("2026-06-01", False, None),
        ("2026-09-01", False, None),
        ("2026-12-01", False, None),
    ]
    assert TimeRule.REASSESSMENT not in rules(due_items(episode(reviews=held)))
    fourth = [*held, ("2027-03-01", False, None)]
    assert rules(due_items(episode(reviews=fourth)))[TimeRule.REASSESSMENT] == dt.date(2027, 3, 1)
    reassessed = episode(["2026-02-20", "2027-03-03"], reviews=fourth)
    assert TimeRule.REASSESSMENT not in rules(due_items(reassessed))


def test_after_a_reassessment_the_plan_is_the_next_meetings() -> None:
    # Re-assessed 1 June: the meeting of 10 June agrees a new plan, four reviews of it follow.
    held = [
        ("2026-03-10", True, None),
        ("2026-06-10", True, None),
        *[(f"2026-{m:02}-01", False, None) for m in (7, 8, 9)],
    ]
    assert TimeRule.REASSESSMENT not in rules(
        due_items(episode(["2026-02-20", "2026-06-01"], reviews=held))
    )
    fourth = episode(["2026-02-20", "2026-06-01"], reviews=[*held, ("2026-10-01", False, None)])
    assert rules(due_items(fourth))[TimeRule.REASSESSMENT] == dt.date(2026, 10, 1)
    # With no meeting since the latest assessment, every review since it counts.
    no_meeting = [
        ("2026-03-10", True, None),
        *[(f"2026-{m:02}-01", False, None) for m in (7, 8, 9, 10)],
    ]
    found = rules(due_items(episode(["2026-02-20", "2026-06-01"], reviews=no_meeting)))
    assert found[TimeRule.REASSESSMENT] == dt.date(2026, 10, 1)


def test_no_clock_runs_without_a_completed_assessment_or_on_a_potential_episode() -> None:
    assert due_items(episode([None])) == []
    assert due_items(episode(state="potential")) == []


def test_a_closed_episode_is_due_for_archiving_a_year_on_and_purging_six_after() -> None:
    closed = episode(state="closed", closed_on="2025-03-31", reviews=[("2025-03-31", True, None)])
    assert rules(due_items(closed)) == {TimeRule.ARCHIVE: dt.date(2026, 3, 31)}
    archived = episode(state="archived", closed_on="2025-03-31")
    assert rules(due_items(archived)) == {TimeRule.PURGE: dt.date(2032, 3, 31)}


def test_days_overdue_counts_from_the_due_day() -> None:
    due = Due(TimeRule.REVIEW, dt.date(2026, 12, 1))
    assert [due.days_overdue(dt.date(2026, 12, d)) for d in (1, 2, 7)] == [0, 1, 6]
    assert due.days_overdue(dt.date(2026, 11, 30)) == -1


@given(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31)))
def test_the_twentieth_working_day_is_a_working_day_about_four_weeks_on(day: dt.date) -> None:
    due = working_days_after(day, 20)
    assert due.weekday() < 5
    # 26 days from a Saturday; bank holidays push it later, Christmas and New Year most
    assert dt.timedelta(days=26) <= due - day <= dt.timedelta(days=28 + 14)


@pytest.mark.parametrize("state", ["open", "closed", "transferred", "archived", "potential"])
def test_items_come_earliest_first(state: str) -> None:
    held = [("2026-03-10", True, None), *[(f"2026-{m:02}-01", False, None) for m in (4, 5, 6)]]
    closed_on = "2026-07-01" if state in ("closed", "archived") else None
    found = due_items(episode(reviews=held, state=state, closed_on=closed_on))
    assert [d.due_on for d in found] == sorted(d.due_on for d in found)


def test_a_closure_without_a_sign_off_tac_meeting_lists_one() -> None:
    """Standard 000 D1: a sign-off TAC meeting should always be held to agree the closure. Due on
    the closure until the latest review held by then was held at a TAC meeting (a review held by
    the closure can be recorded late); not for a closure on consent withdrawn or a move away."""
    unmet = episode(state="closed", closed_on="2026-05-01")  # no review, no meeting
    assert rules(due_items(unmet))[TimeRule.SIGN_OFF_MEETING] == dt.date(2026, 5, 1)
    last_not_at_a_meeting = episode(
        state="closed",
        closed_on="2026-05-01",
        reviews=[("2026-03-01", True, None), ("2026-04-20", False, None)],
    )
    assert TimeRule.SIGN_OFF_MEETING in rules(due_items(last_not_at_a_meeting))
    signed_off = episode(
        state="closed",
        closed_on="2026-05-01",
        reviews=[
            ("2026-03-01", False, None),
            ("2026-04-28", True, None),
            ("2026-06-01", False, None),
        ],
    )
    assert TimeRule.SIGN_OFF_MEETING not in rules(due_items(signed_off))
    for outcome in ("consent_withdrawn", "moved_authority"):
        closure = unmet.closure.model_copy(update={"outcome": outcome}) if unmet.closure else None
        without = unmet.model_copy(update={"closure": closure})
        assert TimeRule.SIGN_OFF_MEETING not in rules(due_items(without)), outcome


def test_an_open_caf_from_a_register_runs_from_its_completion_date() -> None:
    """A register row says when the assessment was completed but holds no assessment (no
    assessor, no reason): its date, kept in the register's extensions, starts the clocks."""
    register = (
        b"la_code,caf_ref,child_forename,child_surname,dob,gender,postcode,nhs_number,upn,"
        b"initiating_agency,agency_type,assessment_completed,lead_professional,lp_agency,lp_phone,"
        b"status,closed_date,closure_outcome\r\n"
        b"202,C-1,Sam,Example,01/02/2015,Male,N1 1AA,,,School,education,18/12/2026,A Lead,School,"
        b"020 7000 0000,Open,,\r\n"
    )
    (episode,) = REGISTER.to_national(register).episodes
    assert episode.assessments == []
    assert rules(due_items(episode)) == {TimeRule.FIRST_TAC_MEETING: dt.date(2027, 1, 20)}
