"""What `cafx adapt` says of its run: each input's outcome, and the fidelity summary printed
on standard error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters import (
    CHANGED,
    NOT_CARRIED,
    Adapter,
    AdapterError,
    Fate,
    FidelityReport,
    FieldReport,
    Rejection,
)
from schemas import Problem

from ._inputs import _Input

SHOWN = 50  # per input: rejected records, warnings and problems printed; the rest are counted


@dataclass(slots=True)
class _Summary:
    """What the fidelity summary prints of one input; the episodes themselves are not kept (a
    directory, or a register of many thousand rows, would otherwise be held whole until the end),
    nor more than `SHOWN` rejected records and warnings (a register whose every row is bad)."""

    episodes: int = 0
    counts: dict[Fate, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    warnings: list[Problem] = field(default_factory=list)
    warnings_count: int = 0
    rejected_fields: list[FieldReport] = field(default_factory=list)

    def taken_from(self, report: FidelityReport) -> None:
        self.counts = report.counts()
        self.rejected_fields = [f for f in report.fields if f.fate is Fate.REJECTED]

    def reject(self, rejection: Rejection) -> None:
        self.rejected_count += 1
        if len(self.rejected) < SHOWN:
            self.rejected.append(rejection)

    def warn(self, warnings: Iterable[Problem]) -> None:
        for warning in warnings:
            self.warnings_count += 1
            if len(self.warnings) < SHOWN:
                self.warnings.append(warning)


_LOST = (NOT_CARRIED, CHANGED)


@dataclass(slots=True)
class _WriteNotes:
    """What the writer said of an input's documents: its choices (an EHA family's copies) and a
    document its reader refuses, and the values the documents do not give back, counted by rule
    and place with list positions as `*` (a register of many thousand rows loses the same
    columns in every row)."""

    choices: list[Problem] = field(default_factory=list)
    lost: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, warnings: Iterable[Problem]) -> None:
        for warning in warnings:
            if warning.rule not in _LOST:
                self.choices.append(warning)
                continue
            # The first step is the episode's place in its document: not a national field.
            place = "/" + "/".join("*" if isinstance(s, int) else s for s in warning.path[1:])
            self.lost[warning.rule, place] += 1


@dataclass(slots=True)
class _Failure:
    """Why an input gave nothing (or its results were not written). `unusable`: the input or its
    output as a whole (exit 2); else a document of the format that its rules reject (exit 1)."""

    code: str  # an adapter's error code, or output_name_taken, too_many_documents, internal_error
    message: str
    location: str | None = None
    problems: list[Problem] = field(default_factory=list)
    unusable: bool = True

    @classmethod
    def of(cls, error: AdapterError, *, unusable: bool = True) -> _Failure:
        return cls(error.code, error.message, error.location, error.problems, unusable)


@dataclass(slots=True)
class _Outcome:
    source: _Input
    adapter: Adapter | None = None
    summary: _Summary | None = None  # None when nothing of the input was read
    failure: _Failure | None = None
    outputs: list[Path] = field(default_factory=list)
    written_with: _WriteNotes = field(default_factory=_WriteNotes)
    pending: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary, destination)


def _internal(exc: Exception) -> _Failure:
    """A fault of this program, said without its text (which may quote a document's values)."""
    return _Failure("internal_error", f"{type(exc).__name__} (a fault of cafx, not of the input)")


def _duplicate(warning: Problem, fields: list[FieldReport]) -> bool:
    """A warning that repeats a rejected field of the report (the same rule, the same place)."""
    dotted = ".".join(str(step) for step in warning.path)
    return any(
        f.rule == warning.rule
        and (f.target == dotted or f.location == warning.where or f.location in warning.message)
        for f in fields
    )


def _listed(console: Console, lines: Iterable[str], total: int, what: str) -> None:
    shown = 0
    for line in lines:
        console.print(line)
        shown += 1
    if total > shown:
        console.print(f"    ... and {total - shown} more {what}")


def _lost(console: Console, where: str, lost: Counter[tuple[str, str]]) -> None:
    """One line for each rule: how many values, and where (the first `SHOWN` places)."""
    for rule in _LOST:
        places = sorted(place for r, place in lost if r == rule)
        if not places:
            continue
        values = sum(lost[rule, place] for place in places)
        shown = ", ".join(escape(place) for place in places[:SHOWN])
        more = f", ... and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
        console.print(f"[yellow]{where}[/]: written: {rule}: {values} values: {shown}{more}")


def _report(
    console: Console, outcomes: list[_Outcome], failures: list[str], written: _WriteNotes
) -> None:
    """The table, then what each input met; then what the run met as a whole, and what was
    written to standard output (the one document of every input's episodes)."""
    table = Table(title="fidelity", show_lines=False)
    for column in ("file", "format", "episodes", "mapped", "transformed", "extended", "rejected"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        name = o.adapter.name if o.adapter else "-"
        if o.summary is None:
            code = o.failure.code if o.failure else "?"
            table.add_row(escape(str(o.source.path)), name, "0", "", "", "", code)
            continue
        counts = [str(o.summary.counts.get(fate, 0)) for fate in Fate]
        rejected_rows = o.summary.rejected_count
        counts[-1] += f" (+{rejected_rows} records)" if rejected_rows else ""
        table.add_row(escape(str(o.source.path)), name, str(o.summary.episodes), *counts)
    console.print(table)
    for o in outcomes:
        where = escape(str(o.source.path))
        if o.failure is not None:
            f = o.failure
            at = f" at {escape(f.location)}" if f.location else ""
            console.print(f"[red]{where}[/]: {f.code}{at}: {escape(f.message)}")
            # The headline is the first problem's place; its reason is the problem's own.
            problems = [p for p in f.problems if (p.where, p.message) != (f.location, f.message)]
            lines = (f"    {escape(str(p))}" for p in problems[:SHOWN])
            _listed(console, lines, len(problems), "problems")
        for note in o.written_with.choices:
            console.print(f"[yellow]{where}[/]: written: {escape(str(note))}")
        _lost(console, where, o.written_with.lost)
        if o.summary is None:
            continue
        s = o.summary
        rows = (
            f"[yellow]{where}[/]: rejected {escape(str(r.location))}: {escape(str(p))}"
            for r in s.rejected
            for p in r.problems
        )
        for line in rows:
            console.print(line)
        if s.rejected_count > len(s.rejected):
            console.print(
                f"[yellow]{where}[/]: ... and {s.rejected_count - len(s.rejected)} more rejected "
                "records"
            )
        for field_report in s.rejected_fields[:SHOWN]:
            console.print(
                f"[yellow]{where}[/]: {escape(field_report.location)}: "
                f"{field_report.rule}: {escape(field_report.message or '')}"
            )
        if len(s.rejected_fields) > SHOWN:
            console.print(
                f"[yellow]{where}[/]: ... and {len(s.rejected_fields) - SHOWN} more rejected fields"
            )
        kept = [w for w in s.warnings if not _duplicate(w, s.rejected_fields)]
        for warning in kept:
            console.print(f"[yellow]{where}[/]: {escape(str(warning))}")
        if s.warnings_count > len(s.warnings):
            console.print(
                f"[yellow]{where}[/]: ... and {s.warnings_count - len(s.warnings)} more warnings"
            )
    for failure in failures:
        console.print(f"[red]standard output[/]: {escape(failure)}")
    for note in written.choices:
        console.print(f"[yellow]standard output[/]: written: {escape(str(note))}")
    _lost(console, "standard output", written.lost)
