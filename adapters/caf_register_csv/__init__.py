"""`caf-register-csv`: the CAF register's bulk export, one episode header per row.

UTF-8 (a BOM is allowed), CRLF or LF, a header row. Columns are found by name (case, spaces and
hyphens do not matter), in any order; `caf_ref, la_code, child_forename, child_surname, gender,
status` must be there (else `AdapterError` schema_violation naming the column), the others may be
left out. In a row, every one of those but `caf_ref` must have a value. Rows are numbered as a
spreadsheet shows them: the header is row 1, and a quoted cell that holds line breaks is still one
row. A blank row is skipped (its number still counts). A header cell left empty (Excel writes them
after the last column; a spacer column) names no column: a row may stop short of trailing ones, and
its cells under any must be empty or spaces, else the row is rejected (`csv.unnamed_column`): a
value with no column name has nothing to be kept, and written back, by.

Each row becomes an episode *header*: there is no assessment in a register.
- `caf_ref` -> `local_ref`; `la_code` (DfE number) -> `home_authority` (GSS; London only);
  `child_forename`, `child_surname` -> names; `dob` (dd/mm/yyyy) -> `date_of_birth`; `gender`
  Male / Female / Not known -> male / female / unknown (written back: not_stated and indeterminate
  become Not known); `postcode` -> `address.postcode`; `nhs_number`, `upn` -> identifiers (normalised);
  `status` Open / Closed -> open / closed, and Potential -> potential (001 §3 registers a step-down
  "as a Potential CAF"; written back, transferred and archived become Closed); `closed_date` and
  `closure_outcome` (the register's words, 001) -> `closure`, only on a Closed row and only both.
- `initiating_agency`, `agency_type`, `assessment_completed` describe the assessment: its assessor's
  organisation and agency type and its completion date. An Assessment also needs a start date, the
  assessor's name and a reason, which the row does not give, so they stay in extensions
  (`agency_type` as the national code, lower case; `assessment_completed` as an ISO date: reported
  with rules `agency_type.lower_case` and `date.dd_mm_yyyy`). Written back for an episode from
  elsewhere, they come from its first assessment.
- `lead_practitioner`, `lp_agency`, `lp_phone`: a national lead professional needs an agency type,
  which the row gives only for the initiating agency. So when `lp_agency` is the initiating agency
  (same name) and `agency_type` is given, they become `lead_professional` (name, organisation,
  telephone, agency type); otherwise they stay in extensions, and no agency type is guessed.
- Columns nobody told us about are kept per row, verbatim, in `extensions[...]["extra_columns"]`, and
  written back after the known columns, in the order first met. Names the header rule makes one
  (`Notes`, `NOTES`: episodes from two registers) are written as one column, named as first met.
  `from_national` refuses (`AdapterError` schema_violation) an extra column it could not write so
  as to read it back: named like a known column or like another of the episode's, or unnamed and
  not empty.

A bad row (a date that is not one, an NHS number or UPN failing its check, an unknown la_code,
gender, status or closure outcome, an agency type that is not national, a half closure, the wrong
number of cells, a cell longer than `MAX_CELL_CHARS` (`csv.cell_too_long`: the XML text limit,
256 Ki characters, checked by the adapter whatever the process's `csv.field_size_limit`) is
rejected whole, in `Translation.rejected`, located `row N, column C` with every failing column; the
other rows go on. Nothing of a bad row is kept. Warnings (a postcode that fails
BS 7666, a Closed row without a closure) are located the same way.

The fidelity report says once per column how it maps (`column dob`), not once per cell: a large
register would otherwise carry a report eighteen times its row count. Cells are read without their
surrounding spaces; a column kept as text in which some were cut is reported with rule `text.strip`
(`transformed`, or still `extended`), and the spaces are not written back (see `_row`).

Formulas (CSV injection): a cell a spreadsheet could run is written behind an apostrophe, which the
reader takes off again: one that starts with `=` or `@`, with a tab or CR, or with `+` or `-` before
anything but a number or telephone shape (digits, spaces, `( ) . , -`), leading spaces or line
breaks not counted (some spreadsheets take them off). `+44 20 7373 4422`, `-12.5` or a lone `-`
cannot run, and are written as they are. A value whose own leading apostrophes come before such a
cell gets one more (`'=x` is written `''=x`); any other leading apostrophe is the value's own and
is read and written as it is. So a register we write reads back to the same values, and a register
read and written back gives the same cells, but for cells that could run and came unguarded.

Large files stream: `RegisterReader` (or `iter_rows`) yields one `RowResult` per row as the CSV is
read, with `progress()` for a progress bar; `to_national(..., on_row=callback)` calls back with a
`Progress` after each row. A register may be up to `MAX_REGISTER_BYTES`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from schemas import Episode

from .._base import Translation
from ._codes import COLUMNS, FORMAT, OUTCOME_TO_WORD, REQUIRED
from ._read import MAX_CELL_CHARS, MAX_REGISTER_BYTES, Progress, RegisterReader, RowResult
from ._write import write

__all__ = [
    "ADAPTER",
    "COLUMNS",
    "MAX_CELL_CHARS",
    "MAX_REGISTER_BYTES",
    "OUTCOME_TO_WORD",
    "REQUIRED",
    "CafRegisterCsv",
    "Progress",
    "RegisterReader",
    "RowResult",
    "iter_rows",
]

_SNIFF_BYTES = 4096


def iter_rows(data: bytes, *, received_at: dt.datetime | None = None) -> RegisterReader:
    """Read a register row by row (see `RegisterReader`)."""
    return RegisterReader(data, received_at=received_at)


class CafRegisterCsv:
    name = FORMAT
    media_type = "text/csv"
    many_per_document = True

    def detect(self, data: bytes) -> bool:
        """The header names the register's key columns (any case, any order, maybe quoted)."""
        head = data[:_SNIFF_BYTES].decode("utf-8", "ignore").lstrip("\ufeff")
        first = "_".join(head.split("\n", 1)[0].replace("-", " ").casefold().split())
        return all(column in first for column in ("caf_ref", "la_code", "child_surname"))

    def to_national(
        self,
        data: bytes,
        *,
        received_at: dt.datetime | None = None,
        on_row: Callable[[Progress], None] | None = None,
    ) -> Translation:
        reader = RegisterReader(data, received_at=received_at)
        translation = Translation([], reader.report)
        episodes, rejected, warnings = (
            translation.episodes,
            translation.rejected,
            translation.warnings,
        )
        for result in reader:
            if result.episode is not None:
                episodes.append(result.episode)
            elif result.rejection is not None:
                rejected.append(result.rejection)
            warnings.extend(result.warnings)
            if on_row is not None:
                on_row(reader.progress())
        return translation

    def iter_rows(self, data: bytes, *, received_at: dt.datetime | None = None) -> RegisterReader:
        return iter_rows(data, received_at=received_at)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        return write(episodes)


ADAPTER = CafRegisterCsv()
