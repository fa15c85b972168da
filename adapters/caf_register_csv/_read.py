"""Reading a register: the header once, then the rows one at a time (streamed, with progress)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from schemas import Episode, Problem, Source, london_today

from .._base import AdapterError, Fate, FidelityReport, Rejection, utc_now
from .._safe import MAX_TEXT_CHARS, check_size
from ._codes import COLUMNS, FORMAT, REQUIRED, column_key, unguarded
from ._row import MARKS, Layout, Row, convert, has_control

__all__ = ["MAX_CELL_CHARS", "MAX_REGISTER_BYTES", "Progress", "RegisterReader", "RowResult"]

# A register is a bulk export, so it may be larger than one document (`_safe.MAX_DOCUMENT_BYTES`):
# 32 MiB is about 200,000 rows.
MAX_REGISTER_BYTES = 32 * 1024 * 1024
# A cell may hold as many characters as an XML text (`_safe.MAX_TEXT_CHARS`); a longer one rejects
# its row (`csv.cell_too_long`, located). The register's own limit, checked here: the csv module's
# (`csv.field_size_limit`) is one setting for the whole process, which any other code may raise
# (and a 3 MB surname would pass) or lower. While it reads one of our records the csv module is
# given a limit no cell of a register can reach, so it never stops a record half-way (which would
# leave its column unknown, and read the rest of a quoted cell as rows); the setting is put back at
# once, under a lock, so that readers in other threads cannot leave it changed.
MAX_CELL_CHARS = MAX_TEXT_CHARS
_CSV_FIELD_LIMIT = MAX_REGISTER_BYTES + 1  # a character is at least a byte
_CSV_LIMIT_LOCK = threading.Lock()


def _next_record(records: Iterator[list[str]]) -> list[str]:
    """The next record, read under `_CSV_FIELD_LIMIT` (StopIteration at the end)."""
    with _CSV_LIMIT_LOCK:
        previous = csv.field_size_limit(_CSV_FIELD_LIMIT)
        try:
            return next(records)
        finally:
            csv.field_size_limit(previous)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a read has gone, for a progress bar: `position` of `size` characters."""

    row: int  # the row last read (the header is row 1)
    episodes: int
    rejected: int
    position: int
    size: int


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row: an episode, or its rejection; and any warnings. `row` counts the header as 1."""

    row: int
    episode: Episode | None
    rejection: Rejection | None
    warnings: tuple[Problem, ...] = ()


def _problem(
    row: int, column: str, rule: str, message: str, severity: Literal["error", "warning"] = "error"
) -> Problem:
    return Problem((row, column), rule, message, severity, f"row {row}, column {column}")


def _cell_count(row: int, count: int, layout: Layout) -> Problem:
    full, width = len(layout.header), layout.width
    column = (layout.header[count] or str(count + 1)) if count < width else str(full + 1)
    expected = f"{full}" if width == full else f"{width} to {full}"  # unnamed ones may be left off
    message = f"the row has {count} cells; a row of this header has {expected}"
    return _problem(row, column, "csv.cell_count", message)


def _lines_taken_in(row: int, first: int, last: int) -> list[Problem]:
    """A rejected row read from several lines of the file: say which, so that none goes unseen (a
    stray quote takes in the lines after it, up to the next quote or the end of the file)."""
    if last <= first:
        return []
    message = (
        f"read as one row from line {first} to line {last} of the file (an unclosed quote, or a "
        "quoted cell with line breaks): none of those lines was read as a row of its own"
    )
    return [_problem(row, "*", "csv.lines_taken_in", message)]


def _too_long(row: int, cells: list[str], layout: Layout) -> list[Problem]:
    """A problem for each cell over `MAX_CELL_CHARS`, named by its column."""
    message = f"the cell is longer than {MAX_CELL_CHARS} characters"
    return [
        _problem(row, layout.name(index), "csv.cell_too_long", message)
        for index, cell in enumerate(cells)
        if len(cell) > MAX_CELL_CHARS
    ]


def _unnamed(cells: list[str], unnamed: tuple[int, ...], row: Row) -> None:
    """A cell under a column with no name has nothing to be kept by: the row is rejected."""
    for index in unnamed:
        if index < len(cells) and cells[index].strip():
            message = "a value under a column with no name in the header"
            row.problems.append((str(index + 1), "csv.unnamed_column", message))
            row.episode = None


def _decode(data: bytes) -> str:
    check_size(data, MAX_REGISTER_BYTES)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdapterError(
            "unsupported_format", "the register is not valid UTF-8", f"byte {exc.start}"
        ) from None


def _layout(header: list[str]) -> Layout:
    names = [column_key(c) for c in header]
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if name in seen:
            message = "a column name is repeated"
            raise AdapterError("schema_violation", message, f"row 1, column {index}")
        if name:  # a column with no name (a spacer, Excel's trailing cells) may come again
            seen.add(name)
    for column in REQUIRED:
        if column not in seen:
            message = f"the header has no {column} column"
            raise AdapterError("schema_violation", message, f"row 1, column {column}")
    known = {name: i for i, name in enumerate(names) if name}
    columns = frozenset(COLUMNS)
    return Layout.of(
        header=tuple(header),
        positions=tuple(known.get(c) for c in COLUMNS),
        extras=tuple((i, c) for i, c in enumerate(header) if names[i] not in columns and names[i]),
        unnamed=tuple(i for i, name in enumerate(names) if not name),
        width=max(known.values()) + 1,
    )


class RegisterReader:
    """Iterate it for one `RowResult` per row, read as you go. The header is read (and refused, with
    `AdapterError`) at once; `report` grows as rows show which way each column maps."""

    def __init__(self, data: bytes, *, received_at: dt.datetime | None = None) -> None:
        text = _decode(data)
        self.size = len(text)
        self.position = 0
        self.row = 1
        self.episodes = 0
        self.rejected = 0
        self.received_at = received_at or utc_now()
        # One Source for every episode of the register (frozen, so sharing it is safe): a model
        # fewer per row to build and, as the episodes are kept, for the garbage collector to scan.
        self._source: Source | dict[str, Any]
        try:
            self._source = Source(format=FORMAT, received_at=self.received_at)
        except ValidationError:  # each row reports it, as it always has
            self._source = {"format": FORMAT, "received_at": self.received_at}
        self._records = csv.reader(self._lines(text))
        try:
            header = _next_record(self._records)
        except StopIteration:
            header = []
        except csv.Error:
            message = "the header is not well-formed CSV"
            raise AdapterError("schema_violation", message, "row 1") from None
        if not header or not any(c.strip() for c in header):
            raise AdapterError("schema_violation", "the register is empty: no header row", "row 1")
        for index, cell in enumerate(header, start=1):
            if len(cell) > MAX_CELL_CHARS:
                message = f"a header cell is longer than {MAX_CELL_CHARS} characters"
                raise AdapterError("payload_too_large", message, f"row 1, column {index}")
            if has_control(cell):  # a column name is kept (extra columns) and shown in locations
                message = "a header cell holds a control character"
                raise AdapterError("schema_violation", message, f"row 1, column {index}")
        self.layout = _layout([unguarded(cell) for cell in header])
        self.report = FidelityReport(FORMAT)
        self._seen = 0  # report bits (`_row.MARKS`) already in the report
        for _, name in self.layout.extras:
            target = f"extensions.{FORMAT}.extra_columns"
            self.report.add(f"column {name}", Fate.EXTENDED, target, "extension.unknown_column")

    def _lines(self, text: str) -> Iterator[str]:
        for line in io.StringIO(text, newline=""):  # csv wants newlines untranslated
            self.position += len(line)
            yield line

    def progress(self) -> Progress:
        return Progress(self.row, self.episodes, self.rejected, self.position, self.size)

    def _rejected(self, problems: list[Problem]) -> RowResult:
        self.rejected += 1
        return RowResult(self.row, None, Rejection(problems[0].where, problems))

    def __iter__(self) -> Iterator[RowResult]:
        records, layout = self._records, self.layout
        full, width, unnamed = len(layout.header), layout.width, layout.unnamed
        source, today, fields = self._source, london_today(), self.report.fields
        while True:
            first = records.line_num + 1  # the file's line this row starts on
            start = self.position
            try:
                cells = _next_record(records)
            except StopIteration:
                return
            except csv.Error:  # a NUL
                self.row += 1
                syntax = _problem(self.row, "*", "csv.syntax", "the row is not well-formed CSV")
                taken = _lines_taken_in(self.row, first, records.line_num)
                yield self._rejected([syntax, *taken])
                continue
            self.row += 1
            if not any(cells):  # a blank line: nothing to keep, nothing to reject
                continue
            # No cell is longer than the record's text: only a long record is looked into.
            if self.position - start > MAX_CELL_CHARS and (
                long := _too_long(self.row, cells, layout)
            ):
                taken = _lines_taken_in(self.row, first, records.line_num)
                yield self._rejected([*long, *taken])
                continue
            if len(cells) != full and not width <= len(cells) < full:
                taken = _lines_taken_in(self.row, first, records.line_num)
                yield self._rejected([_cell_count(self.row, len(cells), layout), *taken])
                continue
            row = convert(cells, layout, source, today)
            if unnamed:
                _unnamed(cells, unnamed, row)
            if row.episode is None:  # nothing of the row is kept, its warnings neither
                taken = _lines_taken_in(self.row, first, records.line_num)
                yield self._rejected([*(_problem(self.row, *p) for p in row.problems), *taken])
                continue
            new = row.marks & ~self._seen
            if new:  # a way of mapping a column not reported yet
                self._seen |= new
                fields.extend(m for bit, m in enumerate(MARKS) if new >> bit & 1)
            self.episodes += 1
            warnings = (
                tuple(
                    _problem(self.row, column, rule, message, "warning")
                    for column, rule, message in row.warnings
                )
                if row.warnings
                else ()
            )
            yield RowResult(self.row, row.episode, None, warnings)
