"""`cafx adapt`: translate local CAF forms to the national schema (or to another format)."""

from __future__ import annotations

import os
import stat
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from adapters import (
    Adapter,
    AdapterError,
    Fate,
    FidelityReport,
    FieldReport,
    Rejection,
    adapter_names,
    detect_adapter,
    get_adapter,
)
from adapters.caf_register_csv import MAX_REGISTER_BYTES, CafRegisterCsv, RegisterReader
from adapters.eha_json import EhaJson
from adapters.national import NationalJson
from schemas import Episode, Problem

__all__ = ["adapt"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2
_EXTENSIONS = {"application/json": ".json", "application/xml": ".xml", "text/csv": ".csv"}


@dataclass(slots=True)
class _Summary:
    """What the fidelity summary prints of one input; the episodes themselves are not kept (a
    directory, or a register of many thousand rows, would otherwise be held whole until the end)."""

    episodes: int = 0
    counts: dict[Fate, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    rejected_fields: list[FieldReport] = field(default_factory=list)

    def taken_from(self, report: FidelityReport) -> None:
        self.counts = report.counts()
        self.rejected_fields = [f for f in report.fields if f.fate is Fate.REJECTED]


@dataclass(slots=True)
class _Outcome:
    path: Path
    adapter: Adapter | None = None
    summary: _Summary | None = None  # None when the input as a whole was unusable
    error: AdapterError | None = None
    outputs: list[Path] = field(default_factory=list)
    written_with: list[Problem] = field(default_factory=list)  # choices the writer made


def _inputs(paths: Sequence[Path], pattern: str) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob(pattern) if p.is_file() and not p.name.startswith(".")
            )
        else:
            yield path


def _read(path: Path) -> bytes:
    """A regular file's bytes, read no further than the largest document any format takes (a
    device or a FIFO would never end)."""
    # Opened without blocking, else opening a FIFO would wait for a writer before the check.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise AdapterError("unsupported_format", "not a regular file")
        data = file.read(MAX_REGISTER_BYTES + 1)
    if len(data) > MAX_REGISTER_BYTES:
        raise AdapterError(
            "payload_too_large", f"the file is over {MAX_REGISTER_BYTES} bytes, the largest taken"
        )
    return data


def _written(target: Adapter, group: list[Episode], notes: list[Problem]) -> bytes:
    """One document in the target format; what its writer had to choose goes to `notes` (an EHA
    family whose children's episodes hold different copies of a family-level part)."""
    if isinstance(target, EhaJson):
        written = target.write(group)
        notes.extend(written.warnings)
        return written.data
    return target.from_national(group)


def _documents(
    target: Adapter, episodes: Iterator[Episode], notes: list[Problem]
) -> Iterator[Iterator[bytes]]:
    """The target's documents, each as its pieces, made as the episodes come: one per episode, or
    one for them all. National JSON is written episode by episode; the other formats that hold
    many (a register, an EHA family) need them all at once."""
    if not target.many_per_document:
        for episode in episodes:
            yield iter((_written(target, [episode], notes),))
    elif isinstance(target, NationalJson):
        yield target.pieces(episodes)
    else:
        yield iter((_written(target, list(episodes), notes),))


def _write(
    target: Adapter,
    episodes: Iterator[Episode],
    source: Path,
    out: Path | None,
    taken: set[Path],
    notes: list[Problem],
) -> list[Path]:
    """Write the episodes in the target format: to stdout, or as files named after the source.
    A document that fails leaves nothing behind: for stdout, all of its results are made before any
    is written; in a directory, each file is written as a temporary file of our own (made as a
    plain write makes one, with the umask's mode) and renamed once all are, so a reader sees the
    old file or the new, whole. Two inputs of one run never write the same file (`taken`)."""
    if out is None:
        results = [b"".join(pieces) for pieces in _documents(target, episodes, notes)]
        for data in results:
            sys.stdout.buffer.write(data)
        return []
    temporaries: list[Path] = []
    try:
        for pieces in _documents(target, episodes, notes):
            temporaries.append(out / f".cafx-{uuid.uuid4().hex}.tmp")
            with temporaries[-1].open("xb") as file:
                for piece in pieces:
                    file.write(piece)
        suffix = _EXTENSIONS.get(target.media_type, ".out")
        many = len(temporaries) > 1
        destinations = [
            out / f"{f'{source.stem}-{n}' if many else source.stem}{suffix}"
            for n in range(1, len(temporaries) + 1)
        ]
        if taken.intersection(destinations):
            raise AdapterError(
                "unsupported_format", "another input of this run was written under the same name"
            )
        taken.update(destinations)
        for temporary, destination in zip(temporaries, destinations, strict=True):
            os.replace(temporary, destination)
    finally:
        for temporary in temporaries:  # gone once renamed; what is left, the failure left
            temporary.unlink(missing_ok=True)
    return destinations


LARGE = 1_000_000  # bytes: a register this big gets a progress bar of its own, row by row


def _rows(
    reader: RegisterReader, name: str, progress: Progress, summary: _Summary
) -> Iterator[Episode]:
    """A register's episodes, row by row as the CSV is read (never all held at once); its
    rejected rows and warnings go to `summary`, and its report once the last row is read."""
    task = progress.add_task(name, total=reader.size) if reader.size >= LARGE else None
    try:
        for result in reader:
            if result.episode is not None:
                summary.episodes += 1
                yield result.episode
            elif result.rejection is not None:
                summary.rejected.append(result.rejection)
            summary.warnings.extend(result.warnings)
            if task is not None:
                progress.update(task, completed=reader.position)
    finally:
        if task is not None:
            progress.remove_task(task)
    summary.taken_from(reader.report)


def _episodes(
    adapter: Adapter, data: bytes, name: str, progress: Progress, summary: _Summary
) -> Iterator[Episode]:
    """The input's episodes as the writer takes them, its summary filled in on the way.
    `AdapterError` for an input unusable as a whole comes at once, before anything is written."""
    if isinstance(adapter, CafRegisterCsv):
        reader = adapter.iter_rows(data)  # the header is read, and refused, here
        return _rows(reader, name, progress, summary)
    translation = adapter.to_national(data)
    summary.episodes = len(translation.episodes)
    summary.rejected, summary.warnings = translation.rejected, translation.warnings
    summary.taken_from(translation.report)
    return iter(translation.episodes)


def _translate(
    path: Path,
    source_format: str,
    target: Adapter,
    out: Path | None,
    progress: Progress,
    taken: set[Path],
) -> _Outcome:
    outcome = _Outcome(path)
    try:
        data = _read(path)
    except OSError as exc:
        outcome.error = AdapterError("unsupported_format", f"cannot read: {exc.strerror}")
        return outcome
    except AdapterError as exc:
        outcome.error = exc
        return outcome
    summary = _Summary()
    try:
        adapter = detect_adapter(data) if source_format == "auto" else get_adapter(source_format)
        outcome.adapter = adapter
        episodes = _episodes(adapter, data, path.name, progress, summary)
        del data  # a register is read from its decoded text: the bytes can go
        outcome.outputs = _write(target, episodes, path, out, taken, outcome.written_with)
        outcome.summary = summary
    except AdapterError as exc:  # nothing was written; the summary says the code
        outcome.error = exc
    except OSError as exc:  # the results could not be written (a full disk, say)
        reason = exc.strerror or type(exc).__name__
        outcome.error = AdapterError("unsupported_format", f"cannot write: {reason}")
    return outcome


def _report(console: Console, outcomes: list[_Outcome]) -> None:
    table = Table(title="fidelity", show_lines=False)
    for column in ("file", "format", "episodes", "mapped", "transformed", "extended", "rejected"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        name = o.adapter.name if o.adapter else "-"
        if o.summary is None:
            code = o.error.code if o.error else "?"
            table.add_row(escape(str(o.path)), name, "0", "", "", "", code)
            continue
        counts = [str(o.summary.counts.get(fate, 0)) for fate in Fate]
        rejected_rows = len(o.summary.rejected)
        counts[-1] += f" (+{rejected_rows} records)" if rejected_rows else ""
        table.add_row(escape(str(o.path)), name, str(o.summary.episodes), *counts)
    console.print(table)
    for o in outcomes:
        if o.error is not None:
            console.print(
                f"[red]{escape(str(o.path))}[/]: {o.error.code} at "
                f"{escape(o.error.location)}: {escape(o.error.message)}"
            )
            for problem in o.error.problems[1:]:
                console.print(f"    {escape(str(problem))}")
        for note in o.written_with:
            console.print(f"[yellow]{escape(str(o.path))}[/]: written: {escape(str(note))}")
        if o.summary is None:
            continue
        for rejection in o.summary.rejected:
            for problem in rejection.problems:
                console.print(
                    f"[yellow]{escape(str(o.path))}[/]: rejected "
                    f"{escape(str(rejection.location))}: {escape(str(problem))}"
                )
        for field_report in o.summary.rejected_fields:
            console.print(
                f"[yellow]{escape(str(o.path))}[/]: {escape(field_report.location)}: "
                f"{field_report.rule}: {escape(field_report.message or '')}"
            )
        for warning in o.summary.warnings:
            console.print(f"[yellow]{escape(str(o.path))}[/]: {escape(str(warning))}")


@click.command()
@click.option(
    "--from",
    "source_format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *adapter_names()]),
    help="Format of the inputs; auto detects each file.",
)
@click.option(
    "--to",
    "target_format",
    default="national-json",
    show_default=True,
    type=click.Choice(adapter_names()),
    help="Format to write.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the results (default: standard output).",
)
@click.option("--glob", "pattern", default="*", show_default=True, help="Files to take from a DIR.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def adapt(
    source_format: str, target_format: str, out: Path | None, pattern: str, paths: tuple[Path, ...]
) -> None:
    """Translate FILE|DIR... into the national schema (or another format), with a fidelity summary.

    Exit code: 0 all translated, 1 some documents or records rejected, 2 unusable input.
    """
    console = Console(stderr=True)
    target = get_adapter(target_format)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    files = list(_inputs(paths, pattern))
    outcomes = []
    taken: set[Path] = set()
    large = any(p.stat().st_size >= LARGE for p in files if p.suffix.lower() == ".csv")
    with Progress(
        console=console, transient=True, disable=len(files) < 2 and not large
    ) as progress:
        task = progress.add_task("translating", total=len(files))
        for path in files:
            outcomes.append(_translate(path, source_format, target, out, progress, taken))
            progress.advance(task)
    _report(console, outcomes)
    unusable = any(o.error and o.error.code != "schema_violation" for o in outcomes)
    rejected = any(
        (o.error and o.error.code == "schema_violation") or (o.summary and o.summary.rejected)
        for o in outcomes
    )
    sys.exit(EXIT_UNUSABLE if unusable else EXIT_REJECTED if rejected else EXIT_OK)
