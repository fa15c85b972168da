"""`cafx adapt`: translate local CAF forms to the national schema (or to another format).

Inputs are files, and the files under directories: links to directories are followed (each
directory walked once), hidden files are left out, and a directory that cannot be listed or an
entry that is not a regular file is reported as an input that could not be read, never skipped
without a word. `--out` may not be an input directory or inside one, nor hold an input.

With `--out DIR`, an input's documents are written at its path below the DIR named (a file
named: its name); when several files or DIRs are named, at its path below the folder they have in
common (`forms/camden` and `forms/hackney` named: `camden/case.json`, `hackney/case.json`). Each
has the target format's suffix, numbered `-1`, `-2`... when an input makes several (an EHA
document makes one document per family when it is the target, a family without a familyRef
included; one per episode for the formats that hold one). Nothing is renamed into place until the
whole run is translated, and then an input's documents land together or not at all. Without
`--out`, standard output takes ONE document: national JSON holds every input's episodes (one
object, or an array of several), a register every input's rows; for the other formats a run that
would make several documents is refused (exit 2) and asks for `--out`.

Written in another local format (`--to FORMAT`), each document is read again by that format's
reader, and what it does not give back is said per input, by rule and place (never the value):
`write.not_carried`, a value the format has no place for (a register has no column for parents);
`write.changed`, one it gives back otherwise (an element code with no exact local twin).
`adapters.not_carried` decides it. The national formats carry every value and are not read again.

Exit codes: 0 every input was translated (a field may still be rejected: the summary says which;
a value the target format cannot hold is said, and is no failure);
1 a record or a document was rejected: the input was read, and a CSV row, an episode of a national
array, or a well-formed document of the format failed the format's rules; 2 an input or an output
was unusable (not read, not listed, not well-formed, not recognised, not in the format `--from`
names, a register without its header, a result that could not be written), or the command was
misused (no input files, several documents for standard output, `--out` among the inputs); 130
or 143 the run was interrupted by SIGINT (Ctrl-C) or SIGTERM (`_signals`): its temporaries are
removed, a commit under way is rolled back, and the inputs committed before it stay in place.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID

from adapters import (
    Adapter,
    AdapterError,
    adapter_names,
    detect_adapter,
    get_adapter,
    parse_json,
    parse_xml,
)
from adapters.caf_register_csv import CafRegisterCsv, RegisterReader
from adapters.national import NationalJson
from schemas import Episode

from ._inputs import LARGE, _Input, _inputs, _overlap, _read, _reason, _size
from ._outputs import _EXTENSIONS, _combines, _commit_all, _documents
from ._outputs import _commit as _commit  # re-exported: the tests of the commit use it
from ._report import _Failure, _internal, _Outcome, _report, _Summary, _WriteNotes
from ._signals import Interrupted, interruptible, raise_if_stopped

__all__ = ["adapt"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2


# -- translating -------------------------------------------------------------------------------------


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
                summary.reject(result.rejection)
            summary.warn(result.warnings)
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
    `AdapterError` for an input refused as a whole comes at once, before anything is written."""
    if isinstance(adapter, CafRegisterCsv):
        reader = adapter.iter_rows(data)  # the header is read, and refused, here
        return _rows(reader, name, progress, summary)
    translation = adapter.to_national(data)
    summary.episodes = len(translation.episodes)
    for rejection in translation.rejected:
        summary.reject(rejection)
    summary.warn(translation.warnings)
    summary.taken_from(translation.report)
    return iter(translation.episodes)


def _unusable(error: AdapterError, adapter: Adapter, data: bytes, chosen: bool) -> bool:
    """Is an input refused as a whole unusable (exit 2), or a document the format's rules reject
    (exit 1)? Rejected: a well-formed document that the adapter recognises as its format. Anything
    else is unusable: not well-formed, too large, not in the format `--from` named (`chosen`), or a
    register (its records are its rows: what refuses the file is its header)."""
    if error.code != "schema_violation" or isinstance(adapter, CafRegisterCsv):
        return True
    if chosen and not adapter.detect(data):
        return True
    try:
        (parse_xml if adapter.media_type == "application/xml" else parse_json)(data)
    except AdapterError:
        return True
    return False


@dataclass(slots=True)
class _Run:
    """One run of the command: how its inputs are read, and what it failed at as a whole."""

    source_format: str
    target: Adapter
    progress: Progress
    task: TaskID
    failures: list[str] = field(default_factory=list)  # of the run, not of one input
    written_with: _WriteNotes = field(default_factory=_WriteNotes)  # the standard output's

    def episodes(self, item: _Input) -> tuple[_Outcome, Iterator[Episode] | None]:
        """The input read and translated: its outcome, and its episodes as they come (None when
        nothing of it could be used)."""
        outcome = _Outcome(item)
        if item.problem is not None:
            outcome.failure = _Failure("unsupported_format", item.problem)
            return outcome, None
        try:
            data = _read(item.path)
        except OSError as exc:
            outcome.failure = _Failure("unsupported_format", f"cannot read: {_reason(exc)}")
            return outcome, None
        except AdapterError as exc:
            outcome.failure = _Failure.of(exc)
            return outcome, None
        chosen = self.source_format != "auto"
        summary = _Summary()
        try:
            adapter = get_adapter(self.source_format) if chosen else detect_adapter(data)
            outcome.adapter = adapter
            episodes = _episodes(adapter, data, item.path.name, self.progress, summary)
        except AdapterError as exc:
            unusable = outcome.adapter is None or _unusable(exc, outcome.adapter, data, chosen)
            outcome.failure = _Failure.of(exc, unusable=unusable)
            return outcome, None
        outcome.summary = summary
        return outcome, episodes

    def prepare(self, item: _Input, out: Path) -> _Outcome:
        """The input's documents written as temporaries of our own in `out` (each made as a plain
        write makes a file, with the umask's mode), and named, for the end of the run."""
        outcome, episodes = self.episodes(item)
        if episodes is None:
            return outcome
        temporaries: list[Path] = []
        try:
            for pieces in _documents(self.target, episodes, outcome.written_with):
                raise_if_stopped()
                temporaries.append(out / f".cafx-{uuid.uuid4().hex}.tmp")
                with temporaries[-1].open("xb") as file:
                    for piece in pieces:
                        file.write(piece)
        except AdapterError as exc:  # the writer refused: nothing of the input is written
            outcome.failure = _Failure.of(exc)
        except OSError as exc:  # a full disk, say
            outcome.failure = _Failure("unsupported_format", f"cannot write: {_reason(exc)}")
        except BaseException:
            outcome.failure = _Failure("internal_error", "interrupted")
            raise
        finally:
            for temporary in temporaries if outcome.failure is not None else ():
                temporary.unlink(missing_ok=True)
        if outcome.failure is not None:
            return outcome
        suffix = _EXTENSIONS.get(self.target.media_type, ".out")
        folder, stem = out / item.relative.parent, item.relative.stem
        names = (
            [f"{stem}-{n}" for n in range(1, len(temporaries) + 1)]
            if len(temporaries) > 1
            else [stem]
        )
        outcome.pending = [
            (temporary, folder / f"{name}{suffix}")
            for temporary, name in zip(temporaries, names, strict=True)
        ]
        return outcome

    def to_stdout(self, items: list[_Input]) -> list[_Outcome]:
        """Standard output takes one document (see the module docstring). National JSON is
        streamed episode by episode; the other targets' document is made whole, then written."""
        outcomes: list[_Outcome] = []
        notes = self.written_with  # of the one document, not of an input

        def every() -> Iterator[Episode]:
            for item in items:
                try:
                    outcome, episodes = self.episodes(item)
                except Exception as exc:  # a fault of ours: said, and the other inputs go on
                    outcome, episodes = _Outcome(item, failure=_internal(exc)), None
                outcomes.append(outcome)
                if episodes is not None:
                    yield from episodes
                self.progress.advance(self.task)

        try:
            if isinstance(self.target, NationalJson):
                for piece in self.target.pieces(every()):
                    # No input could be read at all: no document (an empty array says "read").
                    raise_if_stopped()
                    if piece != b"[]\n" or any(o.summary is not None for o in outcomes):
                        sys.stdout.buffer.write(piece)
            else:
                documents = [b"".join(p) for p in _documents(self.target, every(), notes)]
                if len(documents) > 1:  # one input, one episode per document: several
                    self.written_with = _WriteNotes()  # of documents not written: nothing to say
                    self.failures.append(
                        f"too_many_documents: {len(documents)} documents, and standard output "
                        "takes one: give --out DIR"
                    )
                elif documents and any(o.summary is not None for o in outcomes):
                    # No input could be read at all: no document (a header alone says "read").
                    sys.stdout.buffer.write(documents[0])
            sys.stdout.buffer.flush()
        except AdapterError as exc:
            self.failures.append(f"{exc.code} at {exc.location}: {exc.message}")
        except OSError as exc:
            self.failures.append(f"cannot write to standard output: {_reason(exc)}")
        except Exception as exc:  # said, with exit 2, never as a traceback
            self.failures.append(f"internal_error: {type(exc).__name__}")
        return outcomes


# -- the command -------------------------------------------------------------------------------------


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
    help="Directory for the results, as the inputs are laid out (default: standard output, "
    "which takes one document).",
)
@click.option("--glob", "pattern", default="*", show_default=True, help="Files to take from a DIR.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def adapt(
    source_format: str, target_format: str, out: Path | None, pattern: str, paths: tuple[Path, ...]
) -> None:
    """Translate FILE|DIR... into the national schema (or another format), with a fidelity summary.

    Exit code: 0 all translated (a rejected field is in the summary), 1 some documents or records
    rejected, 2 unusable input or output, or a usage error; 130 (SIGINT, Ctrl-C) or 143 (SIGTERM)
    interrupted, its temporaries removed.
    """
    console = Console(stderr=True, emoji=False, highlight=False)  # paths are shown as they are
    try:
        with interruptible():
            code = _adapt(console, source_format, target_format, out, pattern, paths)
            raise_if_stopped()  # a signal whose exception was swallowed still ends it so
    except Interrupted as stop:
        console.print(
            f"[red]interrupted[/] by {stop.signal.name}: results not yet renamed into place were "
            "removed (an input's results are in place whole, or not at all)"
        )
        raise
    sys.exit(code)


def _adapt(
    console: Console,
    source_format: str,
    target_format: str,
    out: Path | None,
    pattern: str,
    paths: tuple[Path, ...],
) -> int:
    """The command's run; its exit code."""
    target = get_adapter(target_format)
    if out is not None and (overlap := _overlap(paths, out)) is not None:
        raise click.UsageError(f"{overlap}: inputs would be overwritten, or read as results")
    files = _inputs(paths, pattern, out.resolve() if out is not None else None)
    if not files:
        raise click.UsageError(f"no input files (--glob {pattern!r} matched nothing)")
    if out is None and len(files) > 1 and not _combines(target):
        raise click.UsageError(
            f"{len(files)} inputs make a {target_format} document each, and standard output "
            "takes one: give --out DIR"
        )
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            console.print(f"[red]--out[/]: cannot create {escape(str(out))}: {_reason(exc)}")
            return EXIT_UNUSABLE
    large = any(_size(i) >= LARGE for i in files if i.path.suffix.lower() == ".csv")
    outcomes: list[_Outcome] = []
    with Progress(
        console=console, transient=True, disable=len(files) < 2 and not large
    ) as progress:
        task = progress.add_task("translating", total=len(files))
        run = _Run(source_format, target, progress, task)
        try:
            if out is None:
                outcomes = run.to_stdout(files)
            else:
                bases: dict[Path, Path] = {}  # results' name without suffix -> the input
                for item in files:
                    base = item.relative.with_suffix("")
                    if base in bases:  # the same file twice, or a.xml beside a.json
                        other = f"its results would have the names of {bases[base]}'s"
                        outcome = _Outcome(item, failure=_Failure("output_name_taken", other))
                    else:
                        bases[base] = item.path
                        try:
                            outcome = run.prepare(item, out)
                        except Exception as exc:  # a fault of ours: the other inputs go on
                            outcome = _Outcome(item, failure=_internal(exc))
                    outcomes.append(outcome)
                    progress.advance(task)
                raise_if_stopped()  # before any result is renamed into place
                _commit_all(outcomes)
        finally:
            for outcome in outcomes:  # an interruption or a fault: no temporary is left
                for temporary, _ in outcome.pending:
                    temporary.unlink(missing_ok=True)
    _report(console, outcomes, run.failures, run.written_with)
    unusable = bool(run.failures) or any(o.failure and o.failure.unusable for o in outcomes)
    rejected = any(
        (o.failure and not o.failure.unusable) or (o.summary and o.summary.rejected_count)
        for o in outcomes
    )
    return EXIT_UNUSABLE if unusable else EXIT_REJECTED if rejected else EXIT_OK
