"""What borough systems may change on an episode: events (review, TAC member added, lead professional
changed, closure) and consent statements (recorded, withdrawn). Each change re-validates the whole
episode, so the schema's rules (closure only when closed, dates in order) hold after every change."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from schemas import (
    AgencyRef,
    Assessment,
    Closure,
    ConsentGiver,
    ConsentMethod,
    Episode,
    EpisodeState,
    PlanAction,
    Practitioner,
    Problem,
    Review,
    Section,
    ServiceRequest,
    london_today,
    problems_from,
)
from schemas._models import check_consent_id

from ..errors import Conflict, NotFound, SchemaViolation

__all__ = [
    "ConsentInput",
    "Event",
    "EventBody",
    "WithdrawalInput",
    "apply_event",
    "record_consent",
    "withdraw_consent",
]

READ_ONLY = frozenset({EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED})


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ReviewHeld(_Input):
    type: Literal["review"]
    review: Review


class TacMemberAdded(_Input):
    type: Literal["tac_member_added"]
    member: Practitioner


class LeadProfessionalChanged(_Input):
    type: Literal["lead_professional_changed"]
    lead_professional: Practitioner


class EpisodeClosed(_Input):
    type: Literal["closure"]
    closure: Closure


class AssessmentAdded(_Input):
    """A new version of the assessment (a reassessment): its `version` above every one recorded."""

    type: Literal["assessment"]
    assessment: Assessment


class PlanUpdated(_Input):
    """The delivery plan as the TAC now agrees it, in place of the one recorded."""

    type: Literal["delivery_plan_updated"]
    delivery_plan: list[PlanAction]


class ServiceRequested(_Input):
    type: Literal["service_request"]
    service_request: ServiceRequest


class TakenUp(_Input):
    """A potential CAF (a step-down's closing summary) taken up: the episode is open."""

    type: Literal["taken_up"]


Event = Annotated[
    ReviewHeld
    | TacMemberAdded
    | LeadProfessionalChanged
    | EpisodeClosed
    | AssessmentAdded
    | PlanUpdated
    | ServiceRequested
    | TakenUp,
    Field(discriminator="type"),
]


class EventBody(_Input):
    event: Event


# A statement id a borough system chooses: 1-64 characters, no control characters (rule
# `text.control_characters`): it is kept in plain columns (the sharing register, withdrawals).
CONSENT_ID_INPUT_MAX = 64
ConsentIdInput = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CONSENT_ID_INPUT_MAX),
    AfterValidator(check_consent_id),
]


class ConsentInput(_Input):
    """A consent statement as a borough system records it; the node assigns `consent_id` if absent."""

    consent_id: ConsentIdInput | None = None
    given_by: list[ConsentGiver] = Field(min_length=1)
    given_on: dt.date
    method: ConsentMethod
    young_person_competent: bool | None = None
    storage_agreed: bool
    purposes: list[str] = Field(default_factory=list)
    share_with: list[AgencyRef] = Field(default_factory=list)
    excluded: list[AgencyRef] = Field(default_factory=list)
    sections: list[Section] | None = None
    valid_until: dt.date | None = None


class WithdrawalInput(_Input):
    withdrawn_on: dt.date | None = None  # default: today in London


def _revalidate(episode: Episode, changes: dict[str, Any]) -> Episode:
    document = episode.model_dump(mode="json")
    document.update(changes)
    try:
        return Episode.model_validate(document)
    except ValidationError as exc:
        raise SchemaViolation(
            "the change would make the episode invalid", problems=problems_from(exc)
        ) from None


def _writable(episode: Episode) -> None:
    if episode.state in READ_ONLY:
        raise Conflict(f"a {episode.state.value} episode is read-only")


def _open_for(episode: Episode, event: Event) -> None:
    """A closed episode takes no new team member or lead professional (who would be told of a
    CAF that has ended), and a review only if it was held by the closure: one recorded late."""
    closure = episode.closure
    if episode.state != EpisodeState.CLOSED or closure is None:
        return
    if isinstance(event, TacMemberAdded | LeadProfessionalChanged | AssessmentAdded | PlanUpdated):
        raise Conflict(f"the episode is closed: no {event.type.replace('_', ' ')}")
    if isinstance(event, ReviewHeld) and event.review.held_on > closure.closed_on:
        raise SchemaViolation(
            "the episode is closed: a review held after its closure cannot be recorded",
            problems=[
                Problem(
                    ("event", "review", "held_on"),
                    "dates.review_after_closure",
                    "after the episode's closed_on",
                )
            ],
        )


def apply_event(episode: Episode, event: Event) -> Episode:
    _writable(episode)
    _open_for(episode, event)
    dumped = episode.model_dump(mode="json")
    changes: dict[str, Any]
    if isinstance(event, ReviewHeld):
        changes = {"reviews": [*dumped["reviews"], event.review.model_dump(mode="json")]}
    elif isinstance(event, TacMemberAdded):
        changes = {"tac_members": [*dumped["tac_members"], event.member.model_dump(mode="json")]}
    elif isinstance(event, LeadProfessionalChanged):
        changes = {"lead_professional": event.lead_professional.model_dump(mode="json")}
    elif isinstance(event, AssessmentAdded):
        _newer_version(episode, event.assessment)
        assessed = event.assessment.model_dump(mode="json")
        changes = {"assessments": [*dumped["assessments"], assessed]}
    elif isinstance(event, PlanUpdated):
        changes = {"delivery_plan": [a.model_dump(mode="json") for a in event.delivery_plan]}
    elif isinstance(event, ServiceRequested):
        requested = event.service_request.model_dump(mode="json")
        changes = {"service_requests": [*dumped["service_requests"], requested]}
    elif isinstance(event, TakenUp):
        if episode.state != EpisodeState.POTENTIAL:
            raise Conflict(f"only a potential CAF is taken up; this one is {episode.state.value}")
        changes = {"state": EpisodeState.OPEN.value}
    else:
        if episode.state == EpisodeState.CLOSED:
            raise Conflict("the episode is already closed")
        if event.closure.closed_on > london_today():
            # A closure for consent withdrawn would otherwise keep sharing open until then.
            raise SchemaViolation(
                "closed_on is in the future: record a closure once the episode has closed",
                problems=[
                    Problem(
                        ("event", "closure", "closed_on"), "dates.closure_in_future", "after today"
                    )
                ],
            )
        _after_recorded_work(episode, event.closure.closed_on)
        changes = {"state": "closed", "closure": event.closure.model_dump(mode="json")}
    return _revalidate(episode, changes)


def _newer_version(episode: Episode, assessment: Assessment) -> None:
    """Assessments are versioned (DESIGN 3.6): a new one comes after every one recorded, so the
    latest is the one with the highest version."""
    recorded = max((a.version for a in episode.assessments), default=0)
    if assessment.version <= recorded:
        raise SchemaViolation(
            f"an assessment's version comes after those recorded (the latest is {recorded})",
            problems=[
                Problem(
                    ("event", "assessment", "version"),
                    "assessment.version_not_newer",
                    "not above the latest version recorded",
                )
            ],
        )


def _after_recorded_work(episode: Episode, closed_on: dt.date) -> None:
    """A closure is dated on or after the work recorded on the episode: retention counts from it,
    so a closure dated years back by mistake would archive a live record early. It comes after
    every assessment and review, after the first consent statement or service request (a
    step-down episode often has only those: later ones may follow the end, a consent to send the
    closing summary, a referral on), and after the child's birth. Work dated after today (a typo,
    a legacy "no date" value) is not counted: it would block every closure."""
    today = london_today()
    born = episode.child.date_of_birth
    worked = [
        *(a.started_on for a in episode.assessments),
        *(a.completed_on for a in episode.assessments if a.completed_on is not None),
        *(r.held_on for r in episode.reviews),
        *((born,) if born is not None else ()),
    ]
    begun = [
        *(c.given_on for c in episode.consents),
        *(s.requested_on for s in episode.service_requests),
    ]
    floors = [
        day for day in (*worked, min(begun, default=None)) if day is not None and day <= today
    ]
    if floors and closed_on < max(floors):
        raise SchemaViolation(
            "closed_on is before work recorded on the episode (an assessment, a review, its first "
            "consent statement or service request) or before the child's birth",
            problems=[
                Problem(
                    ("event", "closure", "closed_on"),
                    "dates.closure_before_recorded_work",
                    "before the latest dated work on the episode",
                )
            ],
        )


def record_consent(episode: Episode, statement: ConsentInput) -> tuple[Episode, str]:
    _writable(episode)
    consent_id = statement.consent_id or "C-" + secrets.token_hex(4)
    if any(c.consent_id == consent_id for c in episode.consents):
        raise Conflict("a consent statement with this id exists")
    recorded = statement.model_dump(mode="json") | {"consent_id": consent_id}
    consents = [*episode.model_dump(mode="json")["consents"], recorded]
    return _revalidate(episode, {"consents": consents}), consent_id


def withdraw_consent(
    episode: Episode, consent_id: str, withdrawal: WithdrawalInput
) -> tuple[Episode, bool]:
    """Withdraw a statement; returns the episode and whether anything changed (repeats are no-ops).

    Every statement with the id is withdrawn: the schema keeps ids distinct, but the family's
    "no" must not depend on it. An archived episode takes one too (DESIGN 3.6 keeps it): its
    earlier recipients must still be told."""
    if episode.state is not EpisodeState.ARCHIVED:
        _writable(episode)
    consents = episode.model_dump(mode="json")["consents"]
    named = [c for c in consents if c["consent_id"] == consent_id]
    if not named:
        raise NotFound("no such consent statement on this episode")
    standing = [c for c in named if c["withdrawn_on"] is None]
    if not standing:
        return episode, False
    today = london_today()
    if withdrawal.withdrawn_on is not None and withdrawal.withdrawn_on > today:
        # It would keep sharing until then, and a second withdrawal is a no-op: the members
        # told now would be the only ones ever told.
        raise SchemaViolation(
            "withdrawn_on is in the future: a withdrawal takes effect at once",
            problems=[Problem(("withdrawn_on",), "dates.withdrawal_in_future", "after today")],
        )
    for consent in standing:
        consent["withdrawn_on"] = (withdrawal.withdrawn_on or today).isoformat()
    return _revalidate(episode, {"consents": consents}), True
