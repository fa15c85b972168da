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

from adapters import Adapter, AdapterError, Translation, adapter_names, detect_adapter, get_adapter
from adapters.caf_register_csv import MAX_REGISTER_BYTES, CafRegisterCsv
from adapters.caf_register_csv import Progress as RowProgress
from adapters.eha_json import EhaJson
from schemas import Episode, Problem

__all__ = ["adapt"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2
_EXTENSIONS = {"application/json": ".json", "application/xml": ".xml", "text/csv": ".csv"}


@dataclass(slots=True)
class _Outcome:
    path: Path
    adapter: Adapter | None = None
    translation: Translation | None = None
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


def _write(
    target: Adapter,
    episodes: list[Episode],
    source: Path,
    out: Path | None,
    taken: set[Path],
    notes: list[Problem],
) -> list[Path]:
    """Write the episodes in the target format: to stdout, or as files named after the source.
    All of a document's results are made before any is written, and each file appears whole (a
    temporary file renamed), so a document that fails leaves nothing behind; two inputs of one
    run never write the same file (`taken`)."""
    suffix = _EXTENSIONS.get(target.media_type, ".out")
    groups = [episodes] if target.many_per_document else [[e] for e in episodes]
    results = [_written(target, group, notes) for group in groups]
    if out is None:
        for data in results:
            sys.stdout.buffer.write(data)
        return []
    destinations = [
        out / f"{source.stem if len(groups) == 1 else f'{source.stem}-{n}'}{suffix}"
        for n in range(1, len(groups) + 1)
    ]
    if taken.intersection(destinations):
        raise AdapterError(
            "unsupported_format", "another input of this run was written under the same name"
        )
    taken.update(destinations)
    for data, destination in zip(results, destinations, strict=True):
        # A file of our own beside it, made as a plain write makes one (the umask's mode), then
        # renamed over the destination: a reader sees the old file or the new, whole.
        temporary = out / f".cafx-{uuid.uuid4().hex}.tmp"
        try:
            with temporary.open("xb") as file:
                file.write(data)
            os.replace(temporary, destination)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
    return destinations


LARGE = 1_000_000  # bytes: a register this big gets a progress bar of its own, row by row


def _to_national(adapter: Adapter, data: bytes, name: str, progress: Progress) -> Translation:
    if not isinstance(adapter, CafRegisterCsv) or len(data) < LARGE:
        return adapter.to_national(data)
    task = progress.add_task(name, total=len(data))

    def advance(read: RowProgress) -> None:
        progress.update(task, completed=read.position, total=read.size)

    try:
        return adapter.to_national(data, on_row=advance)
    finally:
        progress.remove_task(task)


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
    try:
        adapter = detect_adapter(data) if source_format == "auto" else get_adapter(source_format)
        outcome.adapter = adapter
        outcome.translation = _to_national(adapter, data, path.name, progress)
        outcome.outputs = _write(
            target, outcome.translation.episodes, path, out, taken, outcome.written_with
        )
    except AdapterError as exc:
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
        if o.translation is None:
            code = o.error.code if o.error else "?"
            name = o.adapter.name if o.adapter else "-"
            table.add_row(escape(str(o.path)), name, "0", "", "", "", code)
            continue
        counts = [str(n) for n in o.translation.report.counts().values()]
        rejected_rows = len(o.translation.rejected)
        counts[-1] += f" (+{rejected_rows} records)" if rejected_rows else ""
        name = o.adapter.name if o.adapter else "-"
        table.add_row(escape(str(o.path)), name, str(len(o.translation.episodes)), *counts)
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
        if o.translation is None:
            continue
        for rejection in o.translation.rejected:
            for problem in rejection.problems:
                console.print(
                    f"[yellow]{escape(str(o.path))}[/]: rejected "
                    f"{escape(str(rejection.location))}: {escape(str(problem))}"
                )
        for field_report in o.translation.report.fields:
            if field_report.fate == "rejected":
                console.print(
                    f"[yellow]{escape(str(o.path))}[/]: {escape(field_report.location)}: "
                    f"{field_report.rule}: {escape(field_report.message or '')}"
                )


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
        (o.error and o.error.code == "schema_violation")
        or (o.translation and o.translation.rejected)
        for o in outcomes
    )
    sys.exit(EXIT_UNUSABLE if unusable else EXIT_REJECTED if rejected else EXIT_OK)
