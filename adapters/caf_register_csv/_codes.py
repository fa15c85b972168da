"""Columns and the register's words, both ways, built once at import."""

from __future__ import annotations

import datetime as dt

from schemas import AgencyType, ClosureOutcome, EpisodeState, Gender

__all__ = [
    "AGENCY_TYPES",
    "COLUMNS",
    "FORMAT",
    "GENDER_FROM_WORD",
    "GENDER_TO_WORD",
    "OUTCOME_FROM_WORD",
    "OUTCOME_TO_WORD",
    "REQUIRED",
    "STATUS_FROM_WORD",
    "STATUS_TO_WORD",
    "column_key",
    "format_date",
    "guarded",
    "parse_date",
    "unguarded",
    "word_key",
]

FORMAT = "caf-register-csv"

COLUMNS = (
    "caf_ref",
    "la_code",
    "child_forename",
    "child_surname",
    "dob",
    "gender",
    "postcode",
    "nhs_number",
    "upn",
    "initiating_agency",
    "agency_type",
    "assessment_completed",
    "lead_practitioner",
    "lp_agency",
    "lp_phone",
    "status",
    "closed_date",
    "closure_outcome",
)
# Without these a row cannot make an episode (or be found again in the register): a header that
# lacks one refuses the file. The other columns may be left out (their cells read as empty).
REQUIRED = ("caf_ref", "la_code", "child_forename", "child_surname", "gender", "status")


# A spreadsheet takes a cell that starts with one of these for a formula (CSV injection): written
# with a leading apostrophe, which spreadsheets show as text and the reader takes off again. Any
# cell whose apostrophes lead to one gets one more, so that both ways are exact.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guarded(cell: str) -> str:
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA_START) else cell


def unguarded(cell: str) -> str:
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START):
        return cell[1:]
    return cell


def column_key(header: str) -> str:
    """Header cells are matched by meaning: `CAF Ref`, ` caf_ref ` and `caf-ref` are caf_ref. The
    reader refuses a header in which two cells have the same key; the writer merges by it."""
    return "_".join(header.replace("-", " ").split()).casefold()


def word_key(word: str) -> str:
    """Register words are matched without regard to case or spacing."""
    return " ".join(word.split()).casefold()


GENDER_TO_WORD = {
    Gender.MALE: "Male",
    Gender.FEMALE: "Female",
    Gender.UNKNOWN: "Not known",
    # The register has no word for these two; "Not known" is the nearest (lossy, documented).
    Gender.NOT_STATED: "Not known",
    Gender.INDETERMINATE: "Not known",
}
GENDER_FROM_WORD = {
    word_key("Male"): Gender.MALE,
    word_key("Female"): Gender.FEMALE,
    word_key("Not known"): Gender.UNKNOWN,
}

# Open and Closed are the register's; Potential is how 001 §3 registers a step-down ("registered as
# a Potential CAF"), so it is read and written too. Transferred and archived episodes are closed
# from the register's point of view (lossy, documented).
STATUS_TO_WORD = {
    EpisodeState.OPEN: "Open",
    EpisodeState.CLOSED: "Closed",
    EpisodeState.POTENTIAL: "Potential",
    EpisodeState.TRANSFERRED: "Closed",
    EpisodeState.ARCHIVED: "Closed",
}
STATUS_FROM_WORD = {
    word_key("Open"): EpisodeState.OPEN,
    word_key("Closed"): EpisodeState.CLOSED,
    word_key("Potential"): EpisodeState.POTENTIAL,
}

# 001 "closing a CAF": the register's closure outcomes.
OUTCOME_TO_WORD = {
    ClosureOutcome.RESOLVED_FAMILY: "Resolved via Family/child/young person planned actions",
    ClosureOutcome.RESOLVED_SINGLE_SERVICE: "Resolved via Single service planned actions",
    ClosureOutcome.RESOLVED_MULTI_AGENCY: "Resolved via Multi-agency provision and Lead Practitioner",
    ClosureOutcome.RESOLVED_OTHER: "Resolved Other",
    ClosureOutcome.CONSENT_WITHDRAWN: "Consent withdrawn",
    ClosureOutcome.CONSENT_OVERRIDDEN: "Consent overridden (safeguarding issue)",
    ClosureOutcome.STEPPED_UP: "Stepped Up",
    ClosureOutcome.MOVED_AUTHORITY: "Moved to another local authority",
}
OUTCOME_FROM_WORD = {word_key(word): outcome for outcome, word in OUTCOME_TO_WORD.items()}

AGENCY_TYPES = frozenset(a.value for a in AgencyType)


def parse_date(value: str) -> dt.date | None:
    """dd/mm/yyyy (a single-digit day or month is accepted too); None when it is not a date."""
    parts = value.split("/")
    if len(parts) != 3:
        return None
    day, month, year = parts
    if not (value.isascii() and day.isdigit() and month.isdigit() and year.isdigit()):
        return None
    if len(day) > 2 or len(month) > 2 or len(year) != 4:
        return None
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return None


def format_date(value: dt.date) -> str:
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
