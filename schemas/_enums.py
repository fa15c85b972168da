"""Enumerations of the national schema `caf-episode/1`. Their values are the wire contract."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AgencyType",
    "ClosureOutcome",
    "ConsentMethod",
    "ConsentRole",
    "EcmOutcome",
    "Element",
    "EpisodeState",
    "Ethnicity",
    "Gender",
    "Section",
    "StepDown",
]


class EpisodeState(StrEnum):
    POTENTIAL = "potential"
    OPEN = "open"
    CLOSED = "closed"
    TRANSFERRED = "transferred"
    ARCHIVED = "archived"


class StepDown(StrEnum):
    """Which service's closing document took the place of a CAF assessment (001, step down)."""

    CSC = "csc"
    YOS = "yos"
    CAMHS = "camhs"
    SEN = "sen"


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"
    INDETERMINATE = "indeterminate"
    NOT_STATED = "not_stated"


class Ethnicity(StrEnum):
    """CIN census ethnicity codes."""

    WBRI = "WBRI"
    WIRI = "WIRI"
    WIRT = "WIRT"
    WOTH = "WOTH"
    WROM = "WROM"
    MWBC = "MWBC"
    MWBA = "MWBA"
    MWAS = "MWAS"
    MOTH = "MOTH"
    AIND = "AIND"
    APKN = "APKN"
    ABAN = "ABAN"
    AOTH = "AOTH"
    BCRB = "BCRB"
    BAFR = "BAFR"
    BOTH = "BOTH"
    CHNE = "CHNE"
    OOTH = "OOTH"
    REFU = "REFU"
    NOBT = "NOBT"


class AgencyType(StrEnum):
    EDUCATION = "education"
    HEALTH = "health"
    SOCIAL_CARE = "social_care"
    POLICE = "police"
    YOUTH_JUSTICE = "youth_justice"
    EARLY_HELP = "early_help"
    VOLUNTARY = "voluntary"
    HOUSING = "housing"
    OTHER = "other"


class Element(StrEnum):
    """The 19 CAF assessment elements, in the order of the national form (and of eCAF's codes)."""

    GENERAL_HEALTH = "development.general_health"
    PHYSICAL_DEVELOPMENT = "development.physical_development"
    SPEECH_LANGUAGE_COMMUNICATION = "development.speech_language_communication"
    EMOTIONAL_SOCIAL = "development.emotional_social"
    BEHAVIOURAL = "development.behavioural"
    IDENTITY = "development.identity"
    FAMILY_SOCIAL_RELATIONSHIPS = "development.family_social_relationships"
    SELF_CARE_INDEPENDENCE = "development.self_care_independence"
    LEARNING_UNDERSTANDING = "development.learning_understanding"
    LEARNING_PARTICIPATION = "development.learning_participation"
    LEARNING_PROGRESS = "development.learning_progress"
    LEARNING_ASPIRATIONS = "development.learning_aspirations"
    BASIC_CARE_SAFETY = "parents_carers.basic_care_safety"
    EMOTIONAL_WARMTH_STABILITY = "parents_carers.emotional_warmth_stability"
    GUIDANCE_BOUNDARIES_STIMULATION = "parents_carers.guidance_boundaries_stimulation"
    FAMILY_HISTORY_FUNCTIONING = "family_environment.family_history_functioning"
    WIDER_FAMILY = "family_environment.wider_family"
    HOUSING_EMPLOYMENT_FINANCIAL = "family_environment.housing_employment_financial"
    SOCIAL_COMMUNITY_RESOURCES = "family_environment.social_community_resources"


class ConsentRole(StrEnum):
    YOUNG_PERSON = "young_person"
    PARENT_CARER = "parent_carer"


class ConsentMethod(StrEnum):
    WRITTEN = "written"
    VERBAL = "verbal"


class EcmOutcome(StrEnum):
    """Every Child Matters outcomes."""

    BE_HEALTHY = "be_healthy"
    STAY_SAFE = "stay_safe"
    ENJOY_ACHIEVE = "enjoy_achieve"
    POSITIVE_CONTRIBUTION = "positive_contribution"
    ECONOMIC_WELLBEING = "economic_wellbeing"


class ClosureOutcome(StrEnum):
    RESOLVED_FAMILY = "resolved_family"
    RESOLVED_SINGLE_SERVICE = "resolved_single_service"
    RESOLVED_MULTI_AGENCY = "resolved_multi_agency"
    RESOLVED_OTHER = "resolved_other"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_OVERRIDDEN = "consent_overridden"
    STEPPED_UP = "stepped_up"
    MOVED_AUTHORITY = "moved_authority"


class Section(StrEnum):
    """Parts of an episode that a consent statement or a disclosure can name (DESIGN 3.5)."""

    CHILD = "child"
    PARENTS_CARERS = "parents_carers"
    ASSESSMENTS = "assessments"
    LEAD_PROFESSIONAL = "lead_professional"
    TAC_MEMBERS = "tac_members"
    DELIVERY_PLAN = "delivery_plan"
    REVIEWS = "reviews"
    SERVICE_REQUESTS = "service_requests"
    CLOSURE = "closure"
