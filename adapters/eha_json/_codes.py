"""Code tables of the eha-json format and the few rules both directions must agree on.

Reading and writing share these so that "what the writer would emit" is computed by the same code
the reader used to understand a value (the reader diffs the document against it, see `_patch`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from schemas import (
    AgencyType,
    ClosureOutcome,
    ConsentGiver,
    ConsentMethod,
    ConsentRole,
    EcmOutcome,
    Element,
    EpisodeState,
    Ethnicity,
    Gender,
)

from .._elements import ECAF_CODE, ECAF_ELEMENT

__all__ = [
    "ADDRESS_KEYS",
    "ADULT_KEYS",
    "AGENCY_IN",
    "AGENCY_KEYS",
    "AREA_KEYS",
    "CHILD_KEYS",
    "CLOSURE_KEYS",
    "CONSENT_KEYS",
    "ECM_IN",
    "ETHNICITY_IN",
    "FAMILY_KEYS",
    "LEAD_KEYS",
    "METHOD_IN",
    "PLAN_KEYS",
    "ROLES",
    "ROOT_KEYS",
    "STATUS_IN",
    "WORKER_KEYS",
    "AREA_IN",
    "AREA_OUT",
    "CLOSURE_IN",
    "CLOSURE_OUT",
    "ECAF_IN",
    "ECAF_OUT",
    "NAME",
    "SEX_IN",
    "adult_name",
    "consent_givers",
    "format_date",
    "sex_out",
    "split_name",
]

NAME = "eha-json"

# eCAF element codes (shared with the ecaf-xml-v3 adapter).
ECAF_IN: Mapping[str, Element] = ECAF_ELEMENT
ECAF_OUT: Mapping[Element, str] = ECAF_CODE

# The case system's areas. HOME_ENVIRONMENT and FINANCE share one national element, so the area code
# itself travels in extensions; a national element with no area is written as a note.
AREA_IN: Mapping[str, Element] = {
    "GENERAL_HEALTH": Element.GENERAL_HEALTH,
    "PHYSICAL_HEALTH": Element.PHYSICAL_DEVELOPMENT,
    "SPEECH_LANGUAGE": Element.SPEECH_LANGUAGE_COMMUNICATION,
    "EMOTIONAL_WELLBEING": Element.EMOTIONAL_SOCIAL,
    "BEHAVIOUR": Element.BEHAVIOURAL,
    "IDENTITY": Element.IDENTITY,
    "FAMILY_RELATIONSHIPS": Element.FAMILY_SOCIAL_RELATIONSHIPS,
    "SELF_CARE": Element.SELF_CARE_INDEPENDENCE,
    "EDUCATION": Element.LEARNING_PARTICIPATION,
    "PARENTING": Element.BASIC_CARE_SAFETY,
    "HOME_ENVIRONMENT": Element.HOUSING_EMPLOYMENT_FINANCIAL,
    "FINANCE": Element.HOUSING_EMPLOYMENT_FINANCIAL,
    "COMMUNITY": Element.SOCIAL_COMMUNITY_RESOURCES,
}


def _first_area_per_element() -> dict[Element, str]:
    out: dict[Element, str] = {}
    for code, element in AREA_IN.items():
        out.setdefault(element, code)  # HOUSING_EMPLOYMENT_FINANCIAL -> HOME_ENVIRONMENT
    return out


AREA_OUT: Mapping[Element, str] = _first_area_per_element()

SEX_IN: Mapping[str, Gender] = {
    "male": Gender.MALE,
    "female": Gender.FEMALE,
    "not_stated": Gender.NOT_STATED,
}

AGENCY_IN: Mapping[str, AgencyType] = {agency.name: agency for agency in AgencyType}

CLOSURE_IN: Mapping[str, ClosureOutcome] = {
    "NEEDS_MET": ClosureOutcome.RESOLVED_MULTI_AGENCY,
    "DISENGAGED": ClosureOutcome.CONSENT_WITHDRAWN,
    "MOVED_LA": ClosureOutcome.MOVED_AUTHORITY,
    "STEP_UP_CSC": ClosureOutcome.STEPPED_UP,
}
# Outcomes the case system has no reason for are written as the nearest one (lossy, documented).
CLOSURE_OUT: Mapping[ClosureOutcome, str] = {
    ClosureOutcome.RESOLVED_MULTI_AGENCY: "NEEDS_MET",
    ClosureOutcome.RESOLVED_FAMILY: "NEEDS_MET",
    ClosureOutcome.RESOLVED_SINGLE_SERVICE: "NEEDS_MET",
    ClosureOutcome.RESOLVED_OTHER: "NEEDS_MET",
    ClosureOutcome.CONSENT_WITHDRAWN: "DISENGAGED",
    ClosureOutcome.MOVED_AUTHORITY: "MOVED_LA",
    ClosureOutcome.STEPPED_UP: "STEP_UP_CSC",
    ClosureOutcome.CONSENT_OVERRIDDEN: "STEP_UP_CSC",
}


def format_date(value: dt.date | None) -> str | None:
    return None if value is None else f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def sex_out(gender: Gender) -> str:
    """The case system knows male, female and not_stated; unknown and indeterminate become
    not_stated (the convention of the examples' generator)."""
    return gender.value if gender.value in SEX_IN else "not_stated"


def adult_name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part)


def split_name(name: str) -> tuple[str, str | None]:
    if not name.strip():  # a blank name is kept whole, or splitting would lose it
        return name, None
    first, _, last = name.partition(" ")
    return first, last or None


def consent_givers(
    given_by: Sequence[str], child_ref: str, names: Mapping[str, tuple[ConsentRole, str]]
) -> list[ConsentGiver]:
    """The givers that count for one child: every adult, and the child themself; a sibling's own
    consent is not consent for this child (DESIGN 3.5), so it stays in the family's extensions."""
    givers = []
    for ref in given_by:
        known = names.get(ref)
        if known is None:
            continue
        role, name = known
        if role is ConsentRole.PARENT_CARER or ref == child_ref:
            givers.append(ConsentGiver(role=role, name=name))
    return givers


# The keys each object of the format is known to have; any other key is kept as it is (EXTENDED).
ROOT_KEYS = frozenset(
    "assessmentId authority dateStarted dateCompleted worker family reason areas notes parentViews"
    " plan consent leadPractitioner status closure customFields".split()
)
FAMILY_KEYS = frozenset({"familyRef", "address", "members"})
ADDRESS_KEYS = frozenset({"line1", "line2", "line3", "town", "postcode"})
CHILD_KEYS = frozenset(
    "personRef role firstName lastName dob sex ethnicityCode nhsNo upn youngCarer".split()
)
ADULT_KEYS = frozenset(
    "personRef role firstName lastName relationship parentalResponsibility phone email".split()
)
WORKER_KEYS = frozenset({"fullName", "team", "service", "serviceType", "phone", "email"})
LEAD_KEYS = frozenset({"name", "team", "service", "serviceType", "phone", "email"})
AREA_KEYS = frozenset({"area", "appliesTo", "worries", "goingWell", "scale"})
PLAN_KEYS = frozenset({"need", "action", "who", "when", "outcome"})
CONSENT_KEYS = frozenset(
    "obtained date type givenBy youngPersonCompetent shareWith doNotShareWith withdrawnDate".split()
)
AGENCY_KEYS = frozenset({"agencyType", "name", "authority"})
CLOSURE_KEYS = frozenset({"date", "reason", "notes"})

ROLES: Mapping[str, str] = {"CHILD": "CHILD", "PARENT": "PARENT", "CARER": "CARER"}
STATUS_IN: Mapping[str, EpisodeState] = {"OPEN": EpisodeState.OPEN, "CLOSED": EpisodeState.CLOSED}
METHOD_IN: Mapping[str, ConsentMethod] = {m.name: m for m in ConsentMethod}
ETHNICITY_IN: Mapping[str, Ethnicity] = {e.value: e for e in Ethnicity}
ECM_IN: Mapping[str, EcmOutcome] = {outcome.value: outcome for outcome in EcmOutcome}
