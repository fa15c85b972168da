"""What each eCAF v3 element holds: its leaves (child elements and attributes read as values), with
the converter, national field and rule of each. The reader's shapes (`_reader`) are built from these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from schemas import (
    IdentifierError,
    authority_by_dfe,
    london_today,
    normalise_nhs_number,
    normalise_postcode,
    normalise_uln,
    normalise_upn,
)

from . import _codes as codes
from ._convert import Bad, Converted, boolean, code, date, free_text, gss_code, short_text
from ._paths import tag
from ._walk import Leaf

# -- converters that need the schema's rules ------------------------------------------------------


def _identifier(normalise: Callable[[str], str]) -> Callable[[str | None], str | None]:
    def convert(text: str | None) -> str | None:
        if text is None or not text.strip():
            return None
        try:
            return normalise(text)
        except IdentifierError as exc:
            raise Bad(exc.rule, exc.message) from None

    return convert


def dfe_number(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    authority = authority_by_dfe(text)
    if authority is None:
        raise Bad("authority.unknown_dfe_number", "not the DfE number of a known local authority")
    return authority.gss


def birth_date(text: str | None) -> dt.date | None:
    try:
        value = date(text)
    except Converted as converted:  # a time zone dropped: the date is checked all the same
        _not_in_future(converted.value)
        raise
    _not_in_future(value)
    return value


def _not_in_future(value: dt.date | None) -> None:
    if value is not None and value > london_today():
        raise Bad("dates.birth_in_future", "the date of birth is in the future")


def version(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise Bad("assessment.version", "an assessment version is a whole number from 1")
    return int(value)


# -- what each element holds ----------------------------------------------------------------------

ROOT_LEAVES = {
    tag("EpisodeRef"): Leaf("EpisodeRef", "local_ref", short_text),
    tag("LocalAuthority"): Leaf(
        "LocalAuthority", "home_authority", dfe_number, "authority.dfe_to_gss", True
    ),
    tag("Status"): Leaf(
        "Status",
        "state",
        code(codes.STATUS, "status.unknown_code", "status"),
        "state.ecaf_status",
        True,
    ),
}
CHILD_LEAVES = {
    tag("Forename"): Leaf("Forename", "given_names", short_text, required=True),
    tag("Surname"): Leaf("Surname", "family_name", short_text, required=True),
    tag("DateOfBirth"): Leaf("DateOfBirth", "date_of_birth", birth_date),
    tag("Gender"): Leaf(
        "Gender",
        "gender",
        code(codes.GENDER, "gender.unknown_code", "gender"),
        "gender.ecaf_letter",
        True,
    ),
    tag("Ethnicity"): Leaf(
        "Ethnicity", "ethnicity", code(codes.ETHNICITY, "ethnicity.unknown_code", "CIN ethnicity")
    ),
    tag("InterpreterRequired"): Leaf("InterpreterRequired", "interpreter_required", boolean),
}
ADDRESS_LEAVES = {
    tag("Postcode"): Leaf(
        "Postcode", "postcode", _identifier(normalise_postcode), "postcode.normalise", False, True
    ),
}
IDENTIFIER_LEAVES = {
    tag("NHSNumber"): Leaf(
        "NHSNumber",
        "nhs_number",
        _identifier(normalise_nhs_number),
        "identifier.normalise",
        False,
        True,
    ),
    tag("UPN"): Leaf("UPN", "upn", _identifier(normalise_upn), "identifier.normalise", False, True),
    tag("ULN"): Leaf("ULN", "uln", _identifier(normalise_uln), "identifier.normalise", False, True),
}
PARENT_LEAVES = {
    tag("Name"): Leaf("Name", "name", short_text, required=True),
    tag("Relationship"): Leaf("Relationship", "relationship", short_text, required=True),
    tag("Telephone"): Leaf("Telephone", "telephone", short_text),
}
PARENTAL_RESPONSIBILITY = Leaf(
    "parentalResponsibility", "parental_responsibility", boolean, None, True
)

agency_type_code = code(codes.AGENCY_TYPE, "agency_type.unknown_code", "agency type")
NAME = Leaf("Name", "name", short_text, required=True)
ROLE = Leaf("Role", "role", short_text)
ORGANISATION = Leaf("Organisation", "organisation", short_text, required=True)
AGENCY_TYPE = Leaf("AgencyType", "agency_type", agency_type_code, required=True)
AUTHORITY = Leaf("LocalAuthority", "authority", gss_code)
TELEPHONE = Leaf("Telephone", "telephone", short_text)
EMAIL = Leaf("Email", "email", short_text)

ASSESSMENT_ATTRIBUTES = (
    Leaf("version", "version", version, None, True),
    Leaf("started", "started_on", date, None, True),
    Leaf("completed", "completed_on", date),
)
ASSESSMENT_LEAVES = {
    tag("ReasonForAssessment"): Leaf("ReasonForAssessment", "reason", free_text, required=True),
}
ELEMENT_CODE = Leaf(
    "code",
    "element",
    code(codes.ELEMENT, "element.unknown_code", "CAF element"),
    "element.ecaf_code",
    True,
)
ELEMENT_LEAVES = {
    tag("Strengths"): Leaf("Strengths", "strengths", free_text),
    tag("Needs"): Leaf("Needs", "needs", free_text),
}
CONSENT_ATTRIBUTES = (
    Leaf("id", "consent_id", short_text, None, True),
    Leaf("date", "given_on", date, None, True),
    Leaf(
        "method",
        "method",
        code(codes.CONSENT_METHOD, "consent_method.unknown_code", "consent method"),
        None,
        True,
    ),
)
CONSENT_LEAVES = {
    tag("CompetenceAssessed"): Leaf("CompetenceAssessed", "young_person_competent", boolean),
    tag("Storage"): Leaf("Storage", "storage_agreed", boolean, required=True),
}
GIVER_ROLE = Leaf(
    "role",
    "role",
    code(codes.CONSENT_ROLE, "consent_role.unknown_code", "consent role"),
    "consent_role.ecaf_role",
    True,
)
GIVER_NAME = Leaf("name", "name", short_text, None, True)
AGENCY = Leaf("type", "agency_type", agency_type_code, None, True)
PLAN_LEAVES = {
    tag("Need"): Leaf("Need", "need", free_text, required=True),
    tag("Action"): Leaf("Action", "action", free_text, required=True),
    tag("Responsible"): Leaf("Responsible", "responsible", short_text, required=True),
    tag("ByWhen"): Leaf("ByWhen", "due_on", date),
    tag("ECMOutcome"): Leaf(
        "ECMOutcome",
        "ecm_outcome",
        code(codes.ECM_OUTCOME, "ecm_outcome.unknown_code", "Every Child Matters outcome"),
    ),
}
REVIEW_ATTRIBUTES = (
    Leaf("date", "held_on", date, None, True),
    Leaf("tacHeld", "tac_meeting_held", boolean, None, True),
)
REVIEW_LEAVES = {tag("Progress"): Leaf("Progress", "progress", free_text)}
CLOSURE_ATTRIBUTES = (
    Leaf("date", "closed_on", date, None, True),
    Leaf(
        "outcome",
        "outcome",
        code(codes.CLOSURE, "closure_outcome.unknown_code", "closure outcome"),
        "closure_outcome.ecaf_code",
        True,
    ),
)
