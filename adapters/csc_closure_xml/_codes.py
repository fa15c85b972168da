"""Names and code tables of the closing summary, built once at import."""

from __future__ import annotations

from collections.abc import Mapping

from schemas import AgencyType, Element, Gender

from .._elements import ECAF_ELEMENT

__all__ = [
    "AGENCY_TYPES",
    "ECAF_ELEMENTS",
    "EXTENSION_RULES",
    "FORMAT",
    "GENDER_FROM_CIN",
    "GENDER_TO_CIN",
    "NS",
    "NS_PREFIX",
    "ROOT",
    "ROOT_ORDER",
    "UNKNOWN_RULE",
]

FORMAT = "csc-closure-xml"
NS = "urn:x-csc:ics:closure:1"
NS_PREFIX = f"{{{NS}}}"
ROOT = "ClosingSummary"

# The order elements are written in (the order of the examples); readers accept any order.
ROOT_ORDER = (
    "Case",
    "Child",
    "InvolvementReason",
    "ServicesProvided",
    "ClosureReason",
    "Strengths",
    "UnmetNeeds",
    "FamilyPriorities",
    "PreferredLeadProfessional",
    "ContinuingProfessionals",
    "ConsentToShare",
    "ClosedOn",
)

# CIN census sex codes. 0 is "not recorded": the NHS Data Dictionary's "not known", i.e. national
# `unknown`. National `not_stated` means "asked and declined", which 0 does not say; written back as 0.
GENDER_FROM_CIN = {
    "1": Gender.MALE,
    "2": Gender.FEMALE,
    "0": Gender.UNKNOWN,
    "9": Gender.INDETERMINATE,
}
GENDER_TO_CIN = {
    Gender.MALE: "1",
    Gender.FEMALE: "2",
    Gender.UNKNOWN: "0",
    Gender.NOT_STATED: "0",
    Gender.INDETERMINATE: "9",
}

# eCAF element codes, in the order of `schemas.Element`. The needs stay in extensions (no
# assessment to hold them); the table checks the codes and says which national element each means.
ECAF_ELEMENTS: Mapping[str, Element] = ECAF_ELEMENT

AGENCY_TYPES = frozenset(a.value for a in AgencyType)

# Why each root element without a national home went to extensions (the fidelity report's rule).
_NO_ASSESSMENT = "extension.no_assessment"  # the national Assessment needs started_on and an
# assessor's organisation, which a closing summary does not give
EXTENSION_RULES = {
    "InvolvementReason": _NO_ASSESSMENT,
    "ServicesProvided": "extension.csc_case",
    "ClosureReason": "extension.csc_case",
    "Strengths": _NO_ASSESSMENT,
    "UnmetNeeds": _NO_ASSESSMENT,
    "FamilyPriorities": "extension.no_plan_action",
    "PreferredLeadProfessional": "extension.preference_not_a_practitioner",
    "ContinuingProfessionals": "extension.incomplete_practitioner",
    "ConsentToShare": "extension.incomplete_consent",
    "ClosedOn": "extension.csc_case",
}
UNKNOWN_RULE = "extension.unknown_element"
