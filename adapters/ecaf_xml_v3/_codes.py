"""eCAF v3 code lists and their national equivalents (formats/README.md, "ecaf-xml-v3").

Each table maps the local code to the national value; the `*_OUT` tables go the other way. Where the
national code list is larger than eCAF's (gender, episode state), the `*_OUT` table says which eCAF code
carries each national value, and the module docstring of `_writer` lists what that loses.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from schemas import (
    AgencyType,
    ClosureOutcome,
    ConsentMethod,
    ConsentRole,
    EcmOutcome,
    EpisodeState,
    Ethnicity,
    Gender,
)

from .._elements import ECAF_CODE, ECAF_ELEMENT

__all__ = [
    "AGENCY_TYPE",
    "CLOSURE",
    "CLOSURE_OUT",
    "CONSENT_METHOD",
    "CONSENT_ROLE",
    "CONSENT_ROLE_OUT",
    "DOMAINS",
    "ECM_OUTCOME",
    "ELEMENT",
    "ELEMENT_OUT",
    "ETHNICITY",
    "GENDER",
    "GENDER_OUT",
    "STATUS",
    "STATUS_OUT",
]

# Element/@code <-> national element (one table for every format that quotes eCAF codes).
ELEMENT: Final = ECAF_ELEMENT
ELEMENT_OUT: Final = ECAF_CODE
# Domain/@code is the first part of each of its elements' codes.
DOMAINS: Final = frozenset({"DEV", "PAR", "FAM"})

GENDER: Final = MappingProxyType({"M": Gender.MALE, "F": Gender.FEMALE, "U": Gender.UNKNOWN})
# eCAF has no code for "indeterminate" or "not stated": both are written as U (unknown).
GENDER_OUT: Final = MappingProxyType(
    {
        Gender.MALE: "M",
        Gender.FEMALE: "F",
        Gender.UNKNOWN: "U",
        Gender.INDETERMINATE: "U",
        Gender.NOT_STATED: "U",
    }
)

STATUS: Final = MappingProxyType({"Open": EpisodeState.OPEN, "Closed": EpisodeState.CLOSED})
# eCAF knows Open and Closed only. A potential episode is live work (Open); a transferred or archived
# one is no longer worked on in this authority (Closed).
STATUS_OUT: Final = MappingProxyType(
    {
        EpisodeState.POTENTIAL: "Open",
        EpisodeState.OPEN: "Open",
        EpisodeState.CLOSED: "Closed",
        EpisodeState.TRANSFERRED: "Closed",
        EpisodeState.ARCHIVED: "Closed",
    }
)

CLOSURE: Final = MappingProxyType(
    {
        "RES-FAMILY": ClosureOutcome.RESOLVED_FAMILY,
        "RES-SINGLE": ClosureOutcome.RESOLVED_SINGLE_SERVICE,
        "RES-MULTI": ClosureOutcome.RESOLVED_MULTI_AGENCY,
        "RES-OTHER": ClosureOutcome.RESOLVED_OTHER,
        "CONSENT-WITHDRAWN": ClosureOutcome.CONSENT_WITHDRAWN,
        "CONSENT-OVERRIDDEN": ClosureOutcome.CONSENT_OVERRIDDEN,
        "STEPPED-UP": ClosureOutcome.STEPPED_UP,
        "MOVED-LA": ClosureOutcome.MOVED_AUTHORITY,
    }
)
CLOSURE_OUT: Final = MappingProxyType({v: k for k, v in CLOSURE.items()})

CONSENT_ROLE: Final = MappingProxyType(
    {"parent": ConsentRole.PARENT_CARER, "young_person": ConsentRole.YOUNG_PERSON}
)
CONSENT_ROLE_OUT: Final = MappingProxyType({v: k for k, v in CONSENT_ROLE.items()})

# These use the national values as they are.
CONSENT_METHOD: Final = MappingProxyType({m.value: m for m in ConsentMethod})
AGENCY_TYPE: Final = MappingProxyType({a.value: a for a in AgencyType})
ECM_OUTCOME: Final = MappingProxyType({o.value: o for o in EcmOutcome})
ETHNICITY: Final = MappingProxyType({e.value: e for e in Ethnicity})
