"""One register row -> one national episode header, or the reasons it cannot be one.

A row is all or nothing: any cell that fails its check rejects the whole row (nothing of it is
kept), with every failing column named. Messages name the column and the rule, never the value.

Every cell is read without its surrounding spaces (`str.strip`): "  Mensah " is the surname Mensah.
The padding is not kept, so it is not written back: it is spreadsheet noise, not part of a name or
an identifier, and keeping it would put it in the national record. The report says so: a column
kept as text that lost padding on some row is reported with rule `text.strip` (see `_TWINS`).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from pydantic import JsonValue, ValidationError

from schemas import (
    Episode,
    EpisodeState,
    IdentifierError,
    Source,
    london_authorities,
    normalise_nhs_number,
    normalise_postcode,
    normalise_upn,
    postcode_is_strict,
    problems_from,
)

from .._base import Fate, FieldReport
from ._codes import (
    AGENCY_TYPES,
    COLUMNS,
    FORMAT,
    GENDER_FROM_WORD,
    OUTCOME_FROM_WORD,
    STATUS_FROM_WORD,
    parse_date,
    unguarded,
    word_key,
)

__all__ = ["MARKS", "Layout", "Row", "convert", "has_control"]

EXT = f"extensions.{FORMAT}"
_GSS_OF_DFE = {a.dfe: a.gss for a in london_authorities()}
_REQUIRED_MESSAGE = "a required cell is empty"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, CR and LF are text

# --- the fidelity report, per column --------------------------------------------------------------
# Every row maps its columns the same few ways, so the report says it once per column and way
# ("column dob"), not once per cell: a 10,000-row register would otherwise carry 180,000 entries.
# Each way is a bit; a row ORs its ways together and the reader reports the bits it has not yet seen.

MARKS: list[FieldReport] = []


def _mark(column: str, fate: Fate, target: str, rule: str | None = None) -> int:
    MARKS.append(FieldReport(f"column {column}", fate, target, rule))
    return 1 << (len(MARKS) - 1)


# A cell kept as text (mapped, or extended as it is) whose padding was stripped is reported the
# same way with rule `text.strip` (mapped becomes transformed): each such way has a twin, made after
# all the others so that a row without padding keeps to small ints (bits under 30). Cells read by a
# rule (dates, register words, codes, normalised identifiers) have none: the rule reads the cell.
_TEXT: list[tuple[str, Fate, str, int]] = []  # column, fate, target, plain bit


def _text_mark(column: str, fate: Fate, target: str, rule: str | None = None) -> int:
    plain = _mark(column, fate, target, rule)
    _TEXT.append((column, fate, target, plain))
    return plain


_MAPPED, _TRANSFORMED, _EXTENDED = Fate.MAPPED, Fate.TRANSFORMED, Fate.EXTENDED
_NO_ASSESSMENT = (
    "extension.no_assessment"  # an Assessment needs a start date, an assessor, a reason
)
_NOT_A_PRACTITIONER = "extension.lead_practitioner_without_agency_type"
M_CAF_REF = _text_mark("caf_ref", _MAPPED, "local_ref")
M_LA = _mark("la_code", _TRANSFORMED, "home_authority", "authority.dfe_to_gss")
M_FORENAME = _text_mark("child_forename", _MAPPED, "child.given_names")
M_SURNAME = _text_mark("child_surname", _MAPPED, "child.family_name")
M_DOB = _mark("dob", _TRANSFORMED, "child.date_of_birth", "date.dd_mm_yyyy")
M_GENDER = _mark("gender", _TRANSFORMED, "child.gender", "gender.register_word")
M_POSTCODE = _text_mark("postcode", _MAPPED, "child.address.postcode")
M_POSTCODE_N = _mark("postcode", _TRANSFORMED, "child.address.postcode", "postcode.normalise")
M_NHS = _text_mark("nhs_number", _MAPPED, "child.identifiers.nhs_number")
M_NHS_N = _mark("nhs_number", _TRANSFORMED, "child.identifiers.nhs_number", "identifier.normalise")
M_UPN = _text_mark("upn", _MAPPED, "child.identifiers.upn")
M_UPN_N = _mark("upn", _TRANSFORMED, "child.identifiers.upn", "identifier.normalise")
M_INITIATING = _text_mark(
    "initiating_agency", _EXTENDED, f"{EXT}.initiating_agency", _NO_ASSESSMENT
)
M_AGENCY_TYPE = _text_mark("agency_type", _EXTENDED, f"{EXT}.agency_type", _NO_ASSESSMENT)
M_AGENCY_TYPE_L = _mark(  # kept as the national code: SOCIAL_CARE is social_care
    "agency_type", _EXTENDED, f"{EXT}.agency_type", "agency_type.lower_case"
)
M_COMPLETED = _mark(  # kept as an ISO date, written back dd/mm/yyyy
    "assessment_completed", _EXTENDED, f"{EXT}.assessment_completed", "date.dd_mm_yyyy"
)
M_LP_NAME = _text_mark("lead_practitioner", _MAPPED, "lead_professional.name")
M_LP_AGENCY = _text_mark("lp_agency", _MAPPED, "lead_professional.organisation")
M_LP_TYPE = _mark(
    "agency_type",
    _TRANSFORMED,
    "lead_professional.agency_type",
    "lead_professional.same_agency_as_initiating_agency",
)
M_LP_PHONE = _text_mark("lp_phone", _MAPPED, "lead_professional.telephone")
M_LP_NAME_X = _text_mark(
    "lead_practitioner", _EXTENDED, f"{EXT}.lead_practitioner", _NOT_A_PRACTITIONER
)
M_LP_AGENCY_X = _text_mark("lp_agency", _EXTENDED, f"{EXT}.lp_agency", _NOT_A_PRACTITIONER)
M_LP_PHONE_X = _text_mark("lp_phone", _EXTENDED, f"{EXT}.lp_phone", _NOT_A_PRACTITIONER)
M_STATUS = _mark("status", _TRANSFORMED, "state", "status.register_word")
M_CLOSED = _mark("closed_date", _TRANSFORMED, "closure.closed_on", "date.dd_mm_yyyy")
M_OUTCOME = _mark("closure_outcome", _TRANSFORMED, "closure.outcome", "closure.register_word")


def _twins() -> tuple[tuple[tuple[int, int], ...], ...]:
    by_column: dict[str, list[tuple[int, int]]] = {}
    for column, fate, target, plain in _TEXT:
        twin = _mark(column, _TRANSFORMED if fate is _MAPPED else fate, target, "text.strip")
        by_column.setdefault(column, []).append((plain, twin))
    return tuple(tuple(by_column.get(column, ())) for column in COLUMNS)


_TWINS = _twins()  # per `COLUMNS`: (plain bit, its stripped twin), for each way kept as text


def _unpadded(marks: int, cells: tuple[str, ...], values: tuple[str, ...]) -> int:
    """The row's marks, with the stripped twin for each column kept as text that lost padding."""
    for cell, value, twins in zip(cells, values, _TWINS, strict=True):
        if len(cell) != len(value):
            for plain, stripped in twins:
                if marks & plain:
                    marks ^= plain | stripped
    return marks


# Where a model error's path points back to in the row.
_COLUMN_OF: dict[tuple[str | int, ...], str] = {
    ("local_ref",): "caf_ref",
    ("home_authority",): "la_code",
    ("state",): "status",
    ("child", "given_names"): "child_forename",
    ("child", "family_name"): "child_surname",
    ("child", "date_of_birth"): "dob",
    ("child", "gender"): "gender",
    ("child", "address"): "postcode",
    ("child", "identifiers", "nhs_number"): "nhs_number",
    ("child", "identifiers", "upn"): "upn",
    ("lead_professional", "name"): "lead_practitioner",
    ("lead_professional", "organisation"): "lp_agency",
    ("lead_professional", "telephone"): "lp_phone",
    ("lead_professional",): "agency_type",
    ("closure", "closed_on"): "closed_date",
    ("closure",): "closure_outcome",
}


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each column is in this file's rows."""

    header: tuple[str, ...]  # as written
    positions: tuple[int | None, ...]  # per `COLUMNS`, in its order: index in a row, or None
    extras: tuple[tuple[int, str], ...]  # columns nobody told us about: index, name as written
    unnamed: tuple[int, ...]  # columns with no name (their cells must be empty): index
    width: int  # cells a row needs: up to the last named column (unnamed ones may be left off)
    take: Callable[[list[str]], tuple[str, ...]]  # a row -> its cells per `COLUMNS` ("" if none)

    @classmethod
    def of(
        cls,
        header: tuple[str, ...],
        positions: tuple[int | None, ...],
        extras: tuple[tuple[int, str], ...],
        unnamed: tuple[int, ...],
        width: int,
    ) -> Layout:
        take = itemgetter(*(-1 if i is None else i for i in positions))
        if None in positions:  # a column left out reads the "" put after the row's cells
            return cls(header, positions, extras, unnamed, width, lambda cells: take([*cells, ""]))
        return cls(header, positions, extras, unnamed, width, take)

    def name(self, index: int) -> str:
        """How a problem names the column at `index` of a row: a known column by its own name,
        another by its header cell as written, one with no name (or past the header) by number."""
        if index in self.positions:
            return COLUMNS[self.positions.index(index)]
        return (self.header[index] if index < len(self.header) else "") or str(index + 1)


@dataclass(slots=True)
class Row:
    """What a row became: an episode, or problems (column, rule, message); and its report bits."""

    episode: Episode | None = None
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)
    marks: int = 0


# word_key of the register's words as written: the same few on every row, so found, not made.
_WORD_KEYS: dict[str, str] = {}


def _word_key(word: str) -> str:
    key = _WORD_KEYS.get(word)
    if key is None:
        key = word_key(word)
        if len(_WORD_KEYS) < 1_000:
            _WORD_KEYS[word] = key
    return key


def has_control(text: str) -> bool:
    # Printable ASCII (most rows) has none, and says so in two C calls (isascii only reads a flag);
    # anything else is searched.
    if text.isascii() and text.isprintable():
        return False
    return _CONTROL.search(text) is not None


# Dates as written: the same few (assessment and closure dates) on row after row, so found, not
# parsed. Only real dates are kept; bounded like `_WORD_KEYS`.
_DATES: dict[str, dt.date] = {}


def _date(value: str) -> dt.date | None:
    day = _DATES.get(value)
    if day is None:
        day = parse_date(value)
        if day is not None and len(_DATES) < 10_000:
            _DATES[value] = day
    return day


def _compact_digits(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def convert(
    cells: list[str], layout: Layout, source: Source | dict[str, Any], today: dt.date
) -> Row:
    """A row (`layout.width` cells at least), as an episode (validated) or as located problems.
    The cells are unpacked in the order of `COLUMNS`. `source` is the same for every row of a
    register: one `Source` shared by all its episodes (it is frozen), or its fields."""
    joined = "".join(cells)
    if "'" in joined:  # perhaps a cell the writer guarded against spreadsheet formulas
        cells = [unguarded(cell) for cell in cells]
    raw = layout.take(cells)  # per `COLUMNS`, as written
    values = tuple(map(str.strip, raw))  # strip() returns an unpadded cell itself: cheap to compare
    (
        caf_ref,
        la_code,
        forename,
        surname,
        dob,
        gender_word,
        postcode,
        nhs,
        upn,
        initiating,
        agency_type,
        completed,
        lp_name,
        lp_agency,
        lp_phone,
        status_word,
        closed_date,
        outcome_word,
    ) = values
    row = Row()
    problems = row.problems
    if has_control(joined):  # a NUL or the like: corrupt, and XML cannot carry it
        for index, cell in enumerate(cells):
            if _CONTROL.search(cell):
                column = layout.header[index] or str(index + 1)
                problems.append((column, "text.control_character", "a control character"))
    marks = M_FORENAME | M_SURNAME | M_GENDER | M_STATUS
    ext: dict[str, JsonValue] = {}
    child: dict[str, Any] = {"given_names": forename, "family_name": surname}

    for column, value in (  # caf_ref may be empty: an episode from elsewhere may have no ref
        ("la_code", la_code),
        ("child_forename", forename),
        ("child_surname", surname),
        ("gender", gender_word),
        ("status", status_word),
    ):
        if not value:
            problems.append((column, "required.empty", _REQUIRED_MESSAGE))
    if caf_ref:
        marks |= M_CAF_REF
    authority = _GSS_OF_DFE.get(la_code)
    if authority is not None:
        marks |= M_LA
    elif la_code:
        problems.append(("la_code", "authority.unknown_dfe", "not the DfE number of a London LA"))
    gender = GENDER_FROM_WORD.get(_word_key(gender_word))
    if gender is None and gender_word:
        problems.append(("gender", "gender.register_word", "not Male, Female or Not known"))
    child["gender"] = gender
    state = STATUS_FROM_WORD.get(_word_key(status_word))
    if state is None and status_word:
        problems.append(("status", "status.register_word", "not Open, Closed or Potential"))

    if dob:
        born = _date(dob)
        if born is None:
            problems.append(("dob", "date.dd_mm_yyyy", "not a date written dd/mm/yyyy"))
        elif born > today:
            problems.append(("dob", "dates.birth_in_future", "the date of birth is in the future"))
        else:
            child["date_of_birth"] = born
            marks |= M_DOB
    if postcode:
        try:
            normalised = normalise_postcode(postcode)
        except IdentifierError as exc:
            problems.append(("postcode", exc.rule, exc.message))
        else:
            child["address"] = {"postcode": normalised}
            marks |= M_POSTCODE if normalised == postcode else M_POSTCODE_N
            if not postcode_is_strict(normalised):
                message = "postcode accepted, but it fails the strict BS 7666 pattern"
                row.warnings.append(("postcode", "postcode.not_bs7666", message))
    identifiers: dict[str, str] = {}
    if nhs:  # an already compact value is checked once, by the model (or below, on a bad row)
        if _compact_digits(nhs, 10):
            identifiers["nhs_number"], marks = nhs, marks | M_NHS
        else:
            try:
                identifiers["nhs_number"], marks = normalise_nhs_number(nhs), marks | M_NHS_N
            except IdentifierError as exc:
                problems.append(("nhs_number", exc.rule, exc.message))
    if upn:
        if len(upn) == 13 and upn.isascii() and upn.isalnum() and upn.isupper():
            identifiers["upn"], marks = upn, marks | M_UPN
        else:
            try:
                identifiers["upn"], marks = normalise_upn(upn), marks | M_UPN_N
            except IdentifierError as exc:
                problems.append(("upn", exc.rule, exc.message))
    child["identifiers"] = identifiers

    if initiating:
        ext["initiating_agency"], marks = initiating, marks | M_INITIATING
    if agency_type:
        code = agency_type.lower()
        if code in AGENCY_TYPES:
            bit = M_AGENCY_TYPE if code == agency_type else M_AGENCY_TYPE_L
            ext["agency_type"], marks = code, marks | bit
        else:
            problems.append(("agency_type", "agency_type.national", "not a national agency type"))
    if completed:
        done = _date(completed)
        if done is None:
            problems.append(("assessment_completed", "date.dd_mm_yyyy", "not a date dd/mm/yyyy"))
        else:
            ext["assessment_completed"], marks = done.isoformat(), marks | M_COMPLETED

    # The lead practitioner is national only when its agency type is known: when it works for the
    # initiating agency, whose type the row gives. Otherwise nothing is guessed: extensions.
    lead: dict[str, Any] | None = None
    if lp_name and lp_agency and lp_agency == initiating and "agency_type" in ext:
        lead = {"name": lp_name, "organisation": lp_agency, "agency_type": ext["agency_type"]}
        marks |= M_LP_NAME | M_LP_AGENCY | M_LP_TYPE
        if lp_phone:
            lead["telephone"], marks = lp_phone, marks | M_LP_PHONE
    else:
        for key, value, bit in (
            ("lead_practitioner", lp_name, M_LP_NAME_X),
            ("lp_agency", lp_agency, M_LP_AGENCY_X),
            ("lp_phone", lp_phone, M_LP_PHONE_X),
        ):
            if value:
                ext[key], marks = value, marks | bit

    closure = _closure(state, closed_date, outcome_word, row)
    if closed_date and closure:
        marks |= M_CLOSED | M_OUTCOME
    if layout.extras:
        ext["extra_columns"] = {name: cells[index] for index, name in layout.extras}
    row.marks = marks if values == raw else _unpadded(marks, raw, values)
    if problems:  # the model will not see this row: check what was left to it, to name it too
        for column, normalise in (("nhs_number", normalise_nhs_number), ("upn", normalise_upn)):
            left = identifiers.get(column)
            if left is not None:
                try:
                    normalise(left)
                except IdentifierError as exc:
                    problems.append((column, exc.rule, exc.message))
        return row
    document = {
        "episode_id": uuid.uuid4(),
        "local_ref": caf_ref or None,
        "home_authority": authority,
        "state": state,
        "source": source,
        "child": child,
        "lead_professional": lead,
        "closure": closure,
        "extensions": {FORMAT: ext} if ext else {},
    }
    try:
        row.episode = Episode.model_validate(document)
    except ValidationError as exc:
        problems.extend((_column_of(p.path), p.rule, p.message) for p in problems_from(exc))
    return row


def _closure(
    state: EpisodeState | None, closed_date: str, outcome_word: str, row: Row
) -> dict[str, Any] | None:
    problems = row.problems
    closed_on = _date(closed_date) if closed_date else None
    if closed_date and closed_on is None:
        problems.append(("closed_date", "date.dd_mm_yyyy", "not a date written dd/mm/yyyy"))
    outcome = OUTCOME_FROM_WORD.get(_word_key(outcome_word)) if outcome_word else None
    if outcome_word and outcome is None:
        message = "not one of the register's closure outcomes"
        problems.append(("closure_outcome", "closure.register_word", message))
    if state is not EpisodeState.CLOSED:
        if state is not None and (closed_date or outcome_word):
            column = "closed_date" if closed_date else "closure_outcome"
            message = "a closure is recorded only on a Closed row"
            problems.append((column, "state.closure_without_closed_state", message))
        return None
    if not closed_date and not outcome_word:
        message = "a Closed row without closed_date and closure_outcome: no national closure"
        row.warnings.append(("closure_outcome", "closure.missing", message))
        return None
    if not closed_date or not outcome_word:
        column = "closure_outcome" if closed_date else "closed_date"
        message = "a closure needs both closed_date and closure_outcome"
        problems.append((column, "closure.incomplete", message))
        return None
    return {"closed_on": closed_on, "outcome": outcome} if closed_on and outcome else None


def _column_of(path: tuple[str | int, ...]) -> str:
    for end in range(len(path), 0, -1):
        column = _COLUMN_OF.get(path[:end])
        if column is not None:
            return column
    return "*"
