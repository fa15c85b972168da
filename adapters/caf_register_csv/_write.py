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
    format_date,
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
    extras = kept.get("extra_columns")
    if isinstance(extras, dict):
        for name, value in extras.items():
            if name not in _KNOWN:
                cells[name] = _text(value)
    return cells


def write(episodes: Sequence[Episode]) -> bytes:
    rows = [_cells(episode, index) for index, episode in enumerate(episodes)]
    header = list(COLUMNS)
    seen = set(header)
    for row in rows:  # extra columns, in the order they were first met
        for name in row:
            if name not in seen:
                seen.add(name)
                header.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([row.get(name, "") for name in header] for row in rows)
    return out.getvalue().encode("utf-8")
