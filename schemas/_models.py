"""Pydantic models of the national CAF schema `caf-episode/1` (formats/README.md, "national").

Field names, enums and optionality are the contract. Every model forbids unknown fields, is frozen, and
hides input values in its errors (they are personal data). Checks raise errors whose `type` is a stable
rule name (`nhs_number.checksum`, `dates.completed_before_started`) at the field they concern.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ._authorities import GSS_PATTERN, is_gss_code
from ._enums import (
    AgencyType,
    ClosureOutcome,
    ConsentMethod,
    ConsentRole,
    EcmOutcome,
    Element,
    EpisodeState,
    Ethnicity,
    Gender,
    Section,
    StepDown,
)
from ._identifiers import (
    IdentifierError,
    normalise_nhs_number,
    normalise_postcode,
    normalise_uln,
    normalise_upn,
)

__all__ = [
    "CONSENT_ID_MAX",
    "CONTROL_CHARACTERS",
    "LONDON",
    "SCHEMA_ID",
    "SOURCE_FORMAT_MAX",
    "Address",
    "AgencyRef",
    "Assessment",
    "Child",
    "Closure",
    "ConsentGiver",
    "ConsentStatement",
    "Disability",
    "ElementAssessment",
    "Episode",
    "Identifiers",
    "ParentCarer",
    "PlanAction",
    "Practitioner",
    "Review",
    "ServiceRequest",
    "Source",
    "check_consent_id",
    "london_today",
]

SCHEMA_ID: Final = "caf-episode/1"


LONDON: Final = ZoneInfo("Europe/London")


def london_today() -> dt.date:
    """Birth, consent and closure dates are London calendar dates, whatever the server's zone."""
    return dt.datetime.now(LONDON).date()


def _normalised(rule: str, normalise: Callable[[str], str]) -> Callable[[str], str]:
    """A check for an identifier held in normalised form (no spaces, upper case)."""

    def check(value: str) -> str:
        try:
            normalised = normalise(value)
        except IdentifierError as exc:
            raise PydanticCustomError(exc.rule, exc.message) from None
        if normalised != value:
            raise PydanticCustomError(
                f"{rule}.not_normalised", f"{rule} must be written without spaces, in upper case"
            )
        return value

    return check


def _check_gss(value: str) -> str:
    if not is_gss_code(value):
        raise PydanticCustomError("gss_code.format", "a GSS code is a country letter and 8 digits")
    return value


def _loose_postcode(value: str) -> str:
    try:
        return normalise_postcode(value)
    except IdentifierError as exc:
        raise PydanticCustomError(exc.rule, exc.message) from None


class _NotPlain(Exception):
    """A value that is not made of plain JSON types only: pydantic decides what it is."""


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A copy of a value made of exactly dict (str keys), list, str, int, float, bool and None: what
    pydantic makes of such a value as a `JsonValue`. Anything else raises `_NotPlain`."""
    kind = type(value)
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[key] = item if type(item) in _JSON_SCALARS else _copy_json(item)
        return copied
    if kind is list:
        return [item if type(item) in _JSON_SCALARS else _copy_json(item) for item in value]
    if kind in _JSON_SCALARS:
        return value
    raise _NotPlain


def _plain_extensions(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Extensions made of plain JSON values (what every adapter writes) are copied in one pass:
    pydantic's `JsonValue` calls back into Python for every value, and extensions can hold
    hundreds. Anything else (or anything odd) is left to pydantic, errors and all, so the outcome
    is the same either way."""
    if type(value) is dict:
        try:
            copied = {}
            for key, item in value.items():
                if type(key) is not str or type(item) is not dict:
                    raise _NotPlain
                copied[key] = _copy_json(item)
        except (_NotPlain, RecursionError):
            return handler(value)
        return copied
    return handler(value)


Text = Annotated[str, StringConstraints(min_length=1)]

# C0 controls, DEL and C1 controls: Unicode's `Cc`. PostgreSQL refuses NUL in a text column, and the
# others rewrite a terminal or a log line: never in a value kept in a plain (unsealed) column.
CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_consent_id(value: str) -> str:
    """A consent statement id names its statement in the sharing register and in withdrawals, kept
    in plain database columns and sent to other members: no control characters."""
    if CONTROL_CHARACTERS.search(value):
        raise PydanticCustomError("text.control_characters", "control characters are not allowed")
    return value


def _printable_format(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError(
            "text.not_printable", "a format name is printable characters only"
        )
    return value


CONSENT_ID_MAX: Final = 200
# A consent statement id: 1-200 characters, no control characters (rule `text.control_characters`).
ConsentId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CONSENT_ID_MAX),
    AfterValidator(check_consent_id),
]
SOURCE_FORMAT_MAX: Final = 32  # the `episodes.source_format` column
# The format an episode arrived in (`national-json`, `ecaf-xml-v3`): 1-32 printable characters
# (rule `text.not_printable`), stored in the clear beside the sealed document.
SourceFormat = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SOURCE_FORMAT_MAX),
    AfterValidator(_printable_format),
]
NhsNumber = Annotated[
    str,
    AfterValidator(_normalised("nhs_number", normalise_nhs_number)),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{10}$"}),
]
Upn = Annotated[
    str,
    AfterValidator(_normalised("upn", normalise_upn)),
    WithJsonSchema({"type": "string", "pattern": "^[A-HJ-NP-RT-Z][0-9]{11}[0-9A-HJ-NP-RT-Z]$"}),
]
Uln = Annotated[
    str,
    AfterValidator(_normalised("uln", normalise_uln)),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{10}$"}),
]
GssCode = Annotated[
    str,
    AfterValidator(_check_gss),
    WithJsonSchema({"type": "string", "pattern": f"^{GSS_PATTERN}$"}),
]
# Accepted loosely and normalised ("nw16xe" -> "NW1 6XE"); a failed strict check is only a warning.
POSTCODE_LOOSE_PATTERN = r"^\s*([A-Za-z]{1,2}[0-9][A-Za-z0-9]?|[Gg][Ii][Rr])\s*[0-9][A-Za-z]{2}\s*$"
Postcode = Annotated[
    str,
    AfterValidator(_loose_postcode),
    WithJsonSchema({"type": "string", "pattern": POSTCODE_LOOSE_PATTERN}),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


class Address(_Model):
    lines: list[Text] = Field(default_factory=list)
    town: Text | None = None
    postcode: Postcode | None = None


class Identifiers(_Model):
    nhs_number: NhsNumber | None = None
    upn: Upn | None = None
    uln: Uln | None = None
    local_id: Text | None = None


class Disability(_Model):
    present: bool
    details: Text | None = None


class Child(_Model):
    given_names: Text
    family_name: Text
    known_as: Text | None = None
    previous_names: list[Text] = Field(default_factory=list)
    date_of_birth: dt.date | None = None
    expected_date_of_delivery: dt.date | None = None
    gender: Gender
    ethnicity: Ethnicity | None = None
    address: Address | None = None
    identifiers: Identifiers = Field(default_factory=Identifiers)
    first_language: Text | None = None
    religion: Text | None = None
    disability: Disability | None = None
    interpreter_required: bool | None = None
    school: Text | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _born_in_the_past(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and value > london_today():
            raise PydanticCustomError("dates.birth_in_future", "date_of_birth is in the future")
        return value

    @field_validator("expected_date_of_delivery")
    @classmethod
    def _either_born_or_expected(
        cls, value: dt.date | None, info: ValidationInfo
    ) -> dt.date | None:
        if value is not None and info.data.get("date_of_birth") is not None:
            raise PydanticCustomError(
                "dates.birth_and_expected_delivery",
                "a child has a date_of_birth or an expected_date_of_delivery, not both",
            )
        return value


class ParentCarer(_Model):
    name: Text
    relationship: Text
    parental_responsibility: bool
    telephone: Text | None = None
    email: Text | None = None
    address: Address | None = None


class Practitioner(_Model):
    name: Text
    role: Text | None = None
    organisation: Text
    agency_type: AgencyType
    authority: GssCode | None = None
    telephone: Text | None = None
    email: Text | None = None


class ElementAssessment(_Model):
    element: Element
    strengths: str | None = None
    needs: str | None = None
    applies_to: list[Text] | None = None


class Assessment(_Model):
    version: int = Field(ge=1)
    started_on: dt.date
    completed_on: dt.date | None = None
    assessor: Practitioner
    reason: Text
    people_present: list[Text] = Field(default_factory=list)
    elements: list[ElementAssessment] = Field(default_factory=list)
    conclusions: str | None = None
    child_comments: str | None = None
    parent_comments: str | None = None

    @field_validator("completed_on")
    @classmethod
    def _completed_after_started(
        cls, value: dt.date | None, info: ValidationInfo
    ) -> dt.date | None:
        started = info.data.get("started_on")
        if value is not None and started is not None and value < started:
            raise PydanticCustomError(
                "dates.completed_before_started", "completed_on is before started_on"
            )
        return value


class ConsentGiver(_Model):
    role: ConsentRole
    name: Text


class AgencyRef(_Model):
    agency_type: AgencyType | None = None
    name: Text | None = None
    authority: GssCode | None = None

    @model_validator(mode="after")
    def _names_something(self) -> AgencyRef:
        if self.agency_type is None and self.name is None and self.authority is None:
            raise PydanticCustomError(
                "agency_ref.empty", "an agency reference needs an agency_type, name or authority"
            )
        return self


class ConsentStatement(_Model):
    consent_id: ConsentId
    given_by: list[ConsentGiver] = Field(min_length=1)
    given_on: dt.date
    method: ConsentMethod
    young_person_competent: bool | None = None
    storage_agreed: bool
    purposes: list[Text] = Field(default_factory=list)
    share_with: list[AgencyRef] = Field(default_factory=list)
    excluded: list[AgencyRef] = Field(default_factory=list)
    sections: list[Section] | None = None
    valid_until: dt.date | None = None
    withdrawn_on: dt.date | None = None

    @field_validator("given_on")
    @classmethod
    def _given_in_the_past(cls, value: dt.date) -> dt.date:
        if value > london_today():
            raise PydanticCustomError("dates.consent_in_future", "given_on is in the future")
        return value

    @field_validator("valid_until", "withdrawn_on")
    @classmethod
    def _not_before_given(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        given = info.data.get("given_on")
        if value is not None and given is not None and value < given:
            raise PydanticCustomError(
                "dates.before_consent_given",
                "{field} is before given_on",
                {"field": info.field_name},
            )
        return value


class PlanAction(_Model):
    need: Text
    action: Text
    responsible: Text
    due_on: dt.date | None = None
    desired_outcome: str | None = None
    ecm_outcome: EcmOutcome | None = None


class Review(_Model):
    held_on: dt.date
    tac_meeting_held: bool
    people_present: list[Text] = Field(default_factory=list)
    progress: str | None = None
    next_steps: str | None = None
    next_review_on: dt.date | None = None

    @field_validator("next_review_on")
    @classmethod
    def _next_after_held(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        held = info.data.get("held_on")
        if value is not None and held is not None and value < held:
            raise PydanticCustomError(
                "dates.next_review_before_held", "next_review_on is before held_on"
            )
        return value


class ServiceRequest(_Model):
    service: Text
    requested_on: dt.date
    status: Text


class Closure(_Model):
    closed_on: dt.date
    outcome: ClosureOutcome
    notes: str | None = None


_MAX_OFFSET: Final = dt.timedelta(hours=14)


def _offset_in_range(value: dt.datetime) -> dt.datetime:
    """XML Schema's dateTime, the national XML, allows offsets up to 14 hours (as the world's
    zones do); Python up to 24. Refused here, an episode always has both encodings."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > _MAX_OFFSET:
        raise PydanticCustomError(
            "datetime.offset_out_of_range", "a time zone offset is at most 14:00 either way"
        )
    return value


class Source(_Model):
    format: SourceFormat
    received_at: Annotated[
        AwareDatetime,
        AfterValidator(_offset_in_range),
        WithJsonSchema(
            {
                "type": "string",
                "format": "date-time",
                "pattern": "(Z|z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$",
            }
        ),
    ]
    step_down: StepDown | None = None


CLOSURE_STATES = frozenset({EpisodeState.CLOSED, EpisodeState.ARCHIVED})


class Episode(_Model):
    """One child's CAF episode: the eCAF "folder" (DESIGN 3.6)."""

    schema_: Literal["caf-episode/1"] = Field(default=SCHEMA_ID, alias="schema")
    episode_id: uuid.UUID
    local_ref: Text | None = None
    home_authority: GssCode
    state: EpisodeState
    source: Source
    family_ref: Text | None = None
    child: Child
    parents_carers: list[ParentCarer] = Field(default_factory=list)
    assessments: list[Assessment] = Field(default_factory=list)
    consents: list[ConsentStatement] = Field(default_factory=list)
    lead_professional: Practitioner | None = None
    tac_members: list[Practitioner] = Field(default_factory=list)
    delivery_plan: list[PlanAction] = Field(default_factory=list)
    reviews: list[Review] = Field(default_factory=list)
    service_requests: list[ServiceRequest] = Field(default_factory=list)
    closure: Closure | None = None
    extensions: Annotated[dict[str, dict[str, JsonValue]], WrapValidator(_plain_extensions)] = (
        Field(default_factory=dict)
    )

    @field_validator("consents")
    @classmethod
    def _consent_ids_distinct(cls, value: list[ConsentStatement]) -> list[ConsentStatement]:
        """A withdrawal names its statement by id, so two statements with one id could not be
        told apart: each repeat is refused where it stands."""
        seen: set[str] = set()
        repeats: list[InitErrorDetails] = []
        for index, statement in enumerate(value):
            if statement.consent_id in seen:
                repeats.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "consents.duplicate_id",
                            "consent_id is the same as an earlier statement's",
                        ),
                        loc=(index, "consent_id"),
                        input=None,
                    )
                )
            seen.add(statement.consent_id)
        if repeats:
            # Raised inside a field validator, pydantic places these under `consents`.
            raise ValidationError.from_exception_data(cls.__name__, repeats, hide_input=True)
        return value

    @field_validator("closure")
    @classmethod
    def _closure_only_when_closed(
        cls, value: Closure | None, info: ValidationInfo
    ) -> Closure | None:
        state = info.data.get("state")
        if value is not None and state is not None and state not in CLOSURE_STATES:
            raise PydanticCustomError(
                "state.closure_without_closed_state",
                "a closure is recorded only on a closed (or archived) episode",
            )
        return value
