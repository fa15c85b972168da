"""The time rules at the calendar's end and on a transferred-out copy (review 2, findings 2 and 4):
a date past 9999-12-31 is due on no day rather than an error, and a copy handed to another borough
is purged 1 + 6 years after the transfer was committed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from gateway.timeliness import TimeRule, due_items
from schemas import Episode

from .test_timeliness import episode, rules


@pytest.mark.parametrize(
    ("made", "left"),
    [
        # A review near the end: the next review would fall in year 10000; the meeting itself is
        # no longer due.
        (lambda: episode(reviews=[("9999-11-30", True, None)]), {}),
        # An assessment completed on the last days: the 20th working day is past the end.
        (lambda: episode(["9999-12-20"]), {}),
        (
            lambda: episode(
                state="closed", closed_on="9999-06-01", reviews=[("9999-06-01", True, None)]
            ),
            {},
        ),
        (lambda: episode(state="archived", closed_on="9993-06-01"), {}),
        (
            lambda: episode(state="archived", closed_on="9992-06-01"),
            {TimeRule.PURGE: dt.date(9999, 6, 1)},
        ),
    ],
)
def test_an_item_past_the_calendars_end_is_left_out(
    made: Callable[[], Episode], left: dict[TimeRule, dt.date]
) -> None:
    assert rules(due_items(made())) == left


def test_the_reviews_next_date_set_still_counts_when_three_months_on_is_past_the_end() -> None:
    found = rules(due_items(episode(reviews=[("9999-11-30", True, "9999-12-15")])))
    assert found == {TimeRule.FIRST_REVIEW: dt.date(9999, 12, 15)}


def test_a_transferred_out_copy_is_purged_seven_years_after_the_transfer() -> None:
    copy = episode(state="transferred")
    assert due_items(copy) == []  # no committed transfer known: nothing to count from
    found = rules(due_items(copy, transferred_on=dt.date(2026, 3, 31)))
    assert found == {TimeRule.PURGE: dt.date(2033, 3, 31)}
