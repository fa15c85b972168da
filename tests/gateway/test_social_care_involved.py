"""`social_care_involved` in a found existence check (protocol 003 section 2: whether social care is
or was involved). It said yes for any step-down (CAMHS, youth offending, SEN) and no for an episode
closed stepped up to social care."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.federation.holder import social_care_involved
from schemas import AgencyType, Closure, ClosureOutcome, Episode, EpisodeState, StepDown

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "national" / "valid-episode.json"


@pytest.fixture
def episode() -> Episode:
    return Episode.model_validate_json(FIXTURE.read_bytes())


def test_an_episode_with_no_social_care_in_it_says_no(episode: Episode) -> None:
    assert episode.source.step_down is None and episode.closure is None
    assert not social_care_involved(episode)


@pytest.mark.parametrize("step_down", list(StepDown))
def test_only_a_step_down_from_social_care_says_yes(episode: Episode, step_down: StepDown) -> None:
    source = episode.source.model_copy(update={"step_down": step_down})
    stepped = episode.model_copy(update={"source": source})
    assert social_care_involved(stepped) is (step_down == StepDown.CSC)


def test_a_closure_stepped_up_to_social_care_says_yes(episode: Episode) -> None:
    for outcome in ClosureOutcome:
        closed = episode.model_copy(
            update={
                "state": EpisodeState.CLOSED,
                "closure": Closure(closed_on=dt.date(2026, 5, 1), outcome=outcome),
            }
        )
        assert social_care_involved(closed) is (outcome == ClosureOutcome.STEPPED_UP), outcome


def test_a_social_care_assessor_lead_or_team_member_says_yes(episode: Episode) -> None:
    assessment = episode.assessments[0]
    worker = assessment.assessor.model_copy(update={"agency_type": AgencyType.SOCIAL_CARE})
    assessed = [assessment.model_copy(update={"assessor": worker}), *episode.assessments[1:]]
    assert social_care_involved(episode.model_copy(update={"assessments": assessed}))
    assert social_care_involved(episode.model_copy(update={"lead_professional": worker}))
    assert social_care_involved(episode.model_copy(update={"tac_members": [worker]}))
