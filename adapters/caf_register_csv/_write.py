"""National episodes -> one register CSV (UTF-8, CRLF, header row), restoring `extensions`."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence

from pydantic import JsonValue

from schemas import Episode, authority_by_gss

from .._base import AdapterError
from ._codes import (
    COLUMNS,
    FORMAT,
    GENDER_TO_WORD,
    OUTCOME_TO_WORD,
    STATUS_TO_WORD,
    column_key,
    format_date,
    guarded,
)

__all__ = ["write"]

_KNOWN = frozenset(COLUMNS)


def _text(value: JsonValue) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _register_date(value: JsonValue) -> str:
    """Extensions hold ISO dates; anything else is written as it is."""
    if isinstance(value, str):
        try:
            return format_date(dt.date.fromisoformat(value))
        except ValueError:
            return value
    return _text(value)


def _cells(episode: Episode, index: int) -> dict[str, str]:
    authority = authority_by_gss(episode.home_authority)
    if authority is None:
        raise AdapterError(
            "schema_violation",
            "the home authority has no DfE LA number (the register knows London's only)",
            f"/{index}/home_authority",
        )
    kept = episode.extensions.get(FORMAT, {})
    child = episode.child
    cells = {
        "caf_ref": episode.local_ref or "",
        "la_code": authority.dfe,
        "child_forename": child.given_names,
        "child_surname": child.family_name,
        "dob": format_date(child.date_of_birth) if child.date_of_birth else "",
        "gender": GENDER_TO_WORD[child.gender],
        "postcode": (child.address and child.address.postcode) or "",
        "nhs_number": child.identifiers.nhs_number or "",
        "upn": child.identifiers.upn or "",
        "status": STATUS_TO_WORD[episode.state],
    }
    # What the register says of the assessment: from extensions, else from the first assessment.
    assessed: dict[str, str | None] = dict.fromkeys(
        ("initiating_agency", "agency_type", "assessment_completed")
    )
    if episode.assessments:
        first = episode.assessments[0]
        assessed["initiating_agency"] = first.assessor.organisation
        assessed["agency_type"] = first.assessor.agency_type.value
        if first.completed_on is not None:
            assessed["assessment_completed"] = first.completed_on.isoformat()
    for key, fallback in assessed.items():
        value = kept[key] if key in kept else fallback
        cells[key] = _register_date(value) if key == "assessment_completed" else _text(value)
    lead = episode.lead_professional
    if lead is not None:
        cells["lead_practitioner"] = lead.name
        cells["lp_agency"] = lead.organisation
        cells["lp_phone"] = lead.telephone or ""
    else:
        for key in ("lead_practitioner", "lp_agency", "lp_phone"):
            cells[key] = _text(kept.get(key))
    if episode.closure is not None:
        cells["closed_date"] = format_date(episode.closure.closed_on)
        cells["closure_outcome"] = OUTCOME_TO_WORD[episode.closure.outcome]
    return cells


def _extras(episode: Episode, index: int) -> dict[str, tuple[str, str]]:
    """The episode's extra columns by `column_key` (the reader's test of "the same column"):
    key -> (name as written, value)."""
    extras = episode.extensions.get(FORMAT, {}).get("extra_columns")
    found: dict[str, tuple[str, str]] = {}
    if not isinstance(extras, dict):
        return found
    where = f"/{index}/extensions/{FORMAT}/extra_columns"
    for name, value in extras.items():
        key, text = column_key(name), _text(value)
        if not key:  # the reader ignores a column with no name, and refuses a value under one
            if text.strip():
                raise AdapterError("schema_violation", "an extra column has no name", where)
        elif key in _KNOWN or key in found:  # read back, it would be refused, or another column
            message = "an extra column has the name of another column"
            raise AdapterError("schema_violation", message, where)
        else:
            found[key] = (name, text)
    return found


def write(episodes: Sequence[Episode]) -> bytes:
    rows = [_cells(episode, index) for index, episode in enumerate(episodes)]
    extras = [_extras(episode, index) for index, episode in enumerate(episodes)]
    # Extra columns in the order first met, each named as first written: registers that spell a
    # column differently ("Notes", "NOTES") share one column, as the reader would.
    names: dict[str, str] = {}
    for row in extras:
        for key, (name, _) in row.items():
            names.setdefault(key, name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*COLUMNS, *map(guarded, names.values())])
    writer.writerows(
        [
            *(guarded(row.get(c, "")) for c in COLUMNS),
            *(guarded(more.get(k, ("", ""))[1]) for k in names),
        ]
        for row, more in zip(rows, extras, strict=True)
    )
    return out.getvalue().encode("utf-8")
