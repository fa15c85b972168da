"""Columns and the register's words, both ways, built once at import."""

from __future__ import annotations

import datetime as dt
import re

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


# CSV injection: a spreadsheet runs a cell as a formula when it starts with `=`, `+`, `-` or `@`,
# and some take off leading spaces, tabs or line breaks first (OWASP also names a leading tab and
# CR). Such a cell is written behind an apostrophe, which spreadsheets show as text, and the reader
# takes that apostrophe off again. Only cells that could run are guarded, so that the register's
# own values come back as they were (`+44 20 7373 4422`, `-12.5`, a lone `-`): a sign followed
# only by a number or telephone shape (digits, spaces, `( ) . , -`) cannot name a function, a cell
# or another program, so it is left alone. A value that itself starts with apostrophes leading to
# a guarded cell (`'=x`) gets one more (`''=x`), and the reader takes off exactly one: the writer's.
# Any other leading apostrophe is no guard, and is read and written as it is. Both ways are exact:
# `unguarded(guarded(v)) == v` for every value, and a register cell read and written back comes
# back the same unless it could run as a formula.
_ALWAYS = frozenset("=@\t\r")
_SIGNS = frozenset("+-")
_NUMBER_SHAPE = re.compile(r"[+-][0-9 ().,\-]*")  # fullmatch: `-`, `-12.5`, `+44 (0)20 7373 4422`


def _runs(cell: str) -> bool:
    """Could a spreadsheet run `cell` (after any leading apostrophes) as a formula?"""
    text = cell.lstrip("'")
    if not text:
        return False
    first = text[0]
    if first in _ALWAYS:
        return True
    if first.isspace():  # a spreadsheet may take off ` ` or `\n` and then see `=`
        text = text.lstrip()
        if not text:
            return False
        first = text[0]
        if first in _ALWAYS:
            return True
    return first in _SIGNS and _NUMBER_SHAPE.fullmatch(text) is None


def guarded(cell: str) -> str:
    """The cell as written: behind one more apostrophe when a spreadsheet could run it."""
    if not cell or cell[0].isalnum():  # most cells: a name, a code, a date
        return cell
    return "'" + cell if _runs(cell) else cell


def unguarded(cell: str) -> str:
    """The value of a cell as read: without the apostrophe `guarded` put in front, if it did."""
    if cell.startswith("'") and _runs(cell):
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
