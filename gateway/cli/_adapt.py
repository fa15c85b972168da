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

Exit codes: 0 every input was translated (a field may still be rejected: the summary says which);
1 a record or a document was rejected: the input was read, and a CSV row, an episode of a national
array, or a well-formed document of the format failed the format's rules; 2 an input or an output
was unusable (not read, not listed, not well-formed, not recognised, not in the format `--from`
names, a register without its header, a result that could not be written), or the command was
misused (no input files, several documents for standard output, `--out` among the inputs).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID
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
    parse_json,
    parse_xml,
)
from adapters.caf_register_csv import MAX_REGISTER_BYTES, CafRegisterCsv, RegisterReader
from adapters.eha_json import EhaJson
from adapters.national import NationalJson
from schemas import Episode, Problem

__all__ = ["adapt"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2
SHOWN = 50  # per input: rejected records, warnings and problems printed; the rest are counted
_EXTENSIONS = {"application/json": ".json", "application/xml": ".xml", "text/csv": ".csv"}


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


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path
    relative: Path  # where its results go below --out: its path below the DIR named (`_inputs`)
    problem: str | None = None  # why it cannot be read at all (a directory not listed, a FIFO)


@dataclass(slots=True)
class _Outcome:
    source: _Input
    adapter: Adapter | None = None
    summary: _Summary | None = None  # None when nothing of the input was read
    failure: _Failure | None = None
    outputs: list[Path] = field(default_factory=list)
    written_with: list[Problem] = field(default_factory=list)  # choices the writer made
    pending: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary, destination)


# -- inputs ------------------------------------------------------------------------------------------


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _entry_is(entry: os.DirEntry[str], kind: str) -> bool:
    try:  # links followed; a link to nothing is neither
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError:
        return False


def _walk(root: Path, pattern: str, out: Path | None) -> list[_Input]:
    """The files below `root` whose path below it matches `pattern` (as `Path.match` does, from
    the right), sorted. Links to directories are followed, each directory walked once (a link
    back up is not a loop); hidden files (this command's temporaries among them) are left out.
    A directory that cannot be listed, one inside `out`, and an entry the pattern takes that is
    not a regular file (a link to nothing, a FIFO, a socket) are inputs with a problem."""
    found: list[_Input] = []
    walked: set[tuple[int, int]] = set()
    pending = [(root, Path())]
    while pending:
        directory, below = pending.pop()
        try:
            if out is not None and (out == (real := directory.resolve()) or out in real.parents):
                found.append(_Input(directory, below, "inside --out: not read"))
                continue
            status = directory.stat()
            if (status.st_dev, status.st_ino) in walked:
                continue
            walked.add((status.st_dev, status.st_ino))
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            found.append(_Input(directory, below, f"cannot list the directory: {_reason(exc)}"))
            continue
        for entry in entries:
            path, relative = Path(entry.path), below / entry.name
            if _entry_is(entry, "dir"):
                pending.append((path, relative))
            elif not entry.name.startswith(".") and relative.match(pattern):
                problem = None
                if not _entry_is(entry, "file"):
                    gone = entry.is_symlink() and not os.path.exists(path)
                    problem = "a symbolic link to nothing" if gone else "not a regular file"
                found.append(_Input(path, relative, problem))
    return sorted(found, key=lambda i: i.path)


def _inputs(paths: Sequence[Path], pattern: str, out: Path | None) -> list[_Input]:
    """The inputs, each with its place below `--out`: one DIR named, its files' paths below it;
    several paths named, their paths below the folder they have in common (`forms/camden` and
    `forms/hackney` give `camden/...` and `hackney/...`; files of one folder, their names)."""
    # The walk is recursive: a leading "**/" (as rglob takes it) would only stop top-level files.
    while pattern.startswith("**/"):
        pattern = pattern[3:]
    # As named, not resolved: a link keeps its own name. A lone file or DIR: nothing in front.
    folders = [Path(os.path.abspath(p if p.is_dir() else p.parent)) for p in paths]
    common = Path(os.path.commonpath(folders)) if len(paths) > 1 else None
    found: list[_Input] = []
    for path, folder in zip(paths, folders, strict=True):
        front = folder.relative_to(common) if common is not None else Path()
        if path.is_dir():
            found += [
                _Input(i.path, front / i.relative, i.problem)
                for i in _walk(path, pattern or "*", out)
            ]
        else:
            found.append(_Input(path, front / path.name))
    return found


def _overlap(paths: Sequence[Path], out: Path) -> str | None:
    """Why `out` cannot take this run's results: it is an input directory or inside one (the
    results would overwrite inputs, and be read as inputs next time), or it holds an input."""
    target = out.resolve()
    for path in paths:
        source = path.resolve()
        if path.is_dir() and (target == source or source in target.parents):
            return f"--out {out} is the input directory {path}, or inside it"
        if target == source or target in source.parents:
            return f"the input {path} is inside --out {out}"
    return None


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


# -- translating -------------------------------------------------------------------------------------


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


def _families(episodes: Iterable[Episode]) -> list[list[Episode]]:
    """Episodes by `family_ref`, in the order first met. Without one, by the EHA document they
    were read from (the family part its reader put in each one's `eha-json` extension, whole:
    an EHA document with no familyRef is still one family); an episode with neither is a family
    of its own. An EHA document holds one family: children of different families in one would
    be written as siblings, each family's record showing the others (`adapters.eha_json`)."""
    families: dict[tuple[str, str | int], list[Episode]] = {}
    for n, episode in enumerate(episodes):
        key: tuple[str, str | int] = ("", n)
        if episode.family_ref is not None:
            key = ("ref", episode.family_ref)
        else:
            extension = episode.extensions.get(EhaJson.name)
            part = extension.get("family") if isinstance(extension, dict) else None
            if isinstance(part, dict):
                key = ("document", json.dumps(part, sort_keys=True, default=str))
        families.setdefault(key, []).append(episode)
    return list(families.values())


def _family_documents(target: EhaJson, family: list[Episode], notes: list[Problem]) -> list[bytes]:
    """A family's document; episodes without a family_ref that the writer does not take as one
    family (the same document's children given twice, say) are written one per episode."""
    try:
        return [_written(target, family, notes)]
    except AdapterError:
        if len(family) < 2 or family[0].family_ref is not None:
            raise
    return [_written(target, [episode], notes) for episode in family]


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
    """The target's documents, each as its pieces, made as the episodes come: one per episode,
    one per family (EHA), or one for them all. National JSON is written episode by episode; a
    register and an EHA family need their episodes all at once."""
    if not target.many_per_document:
        for episode in episodes:
            yield iter((_written(target, [episode], notes),))
    elif isinstance(target, NationalJson):
        yield target.pieces(episodes)
    elif isinstance(target, EhaJson):
        for family in _families(episodes):
            for document in _family_documents(target, family, notes):
                yield iter((document,))
    else:
        yield iter((_written(target, list(episodes), notes),))


def _internal(exc: Exception) -> _Failure:
    """A fault of this program, said without its text (which may quote a document's values)."""
    return _Failure("internal_error", f"{type(exc).__name__} (a fault of cafx, not of the input)")


def _combines(target: Adapter) -> bool:
    """Does one document of the target hold the episodes of any number of inputs?"""
    return isinstance(target, NationalJson | CafRegisterCsv)


@dataclass(slots=True)
class _Run:
    """One run of the command: how its inputs are read, and what it failed at as a whole."""

    source_format: str
    target: Adapter
    progress: Progress
    task: TaskID
    failures: list[str] = field(default_factory=list)  # of the run, not of one input

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
        notes: list[Problem] = []

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
                    if piece != b"[]\n" or any(o.summary is not None for o in outcomes):
                        sys.stdout.buffer.write(piece)
            else:
                documents = [b"".join(p) for p in _documents(self.target, every(), notes)]
                if len(documents) > 1:  # one input, one episode per document: several
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
        if outcomes:
            outcomes[-1].written_with += notes
        return outcomes


# -- writing the results -----------------------------------------------------------------------------


class _NotPutBack(OSError):
    """A commit failed and what it had done could not all be undone: a replaced file's old
    contents are kept under the hidden names given (never deleted), a new file that could not be
    removed is named, and the input's results are half in place."""

    def __init__(self, cause: BaseException, kept: list[Path], left: list[Path]) -> None:
        reason = _reason(cause) if isinstance(cause, OSError) else type(cause).__name__
        said = [f"the old contents kept in {', '.join(map(str, kept))}"] if kept else []
        said += [f"written and not removed: {', '.join(map(str, left))}"] if left else []
        code = cause.errno if isinstance(cause, OSError) and cause.errno else errno.EIO
        super().__init__(code, f"{reason}; not all undone: {'; '.join(said)}")


def _make(folder: Path, made: list[Path]) -> None:
    """`folder` and its missing parents created, as `mkdir(parents=True)`; each one made is added
    to `made` as it is made, the outermost first (for a rollback to take away again)."""
    missing = [folder, *folder.parents]
    missing = missing[: next(i for i, d in enumerate(missing) if d.is_dir())]
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to remove
        made.append(directory)


def _backup(destination: Path) -> Path:
    """The file at `destination` kept under a hidden name beside it (a hard link, or a copy on a
    file system without them); a copy that fails part-way is removed."""
    before = destination.with_name(f".cafx-{uuid.uuid4().hex}.old")
    try:
        os.link(destination, before, follow_symlinks=False)
    except OSError:  # a file system without hard links
        try:
            shutil.copyfile(destination, before, follow_symlinks=False)
        except BaseException:
            with contextlib.suppress(OSError):
                before.unlink(missing_ok=True)
            raise
    return before


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Rename every temporary onto its destination, or none of them: a file replaced is kept (as
    a hard link, or a copy) until all are in place, and put back if a later rename fails or the
    run is interrupted (any exception). A backup is removed only once all are in place, or once
    it is put back: one that cannot be put back is kept and named (`_NotPutBack`). Directories
    made for the results are removed again on a rollback, when they are empty."""
    done: list[tuple[Path, Path | None]] = []  # destination, what it was before
    made: list[Path] = []
    try:
        for _, destination in pairs:  # before any rename: a directory in the way
            if destination.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        for temporary, destination in pairs:
            _make(destination.parent, made)
            before = _backup(destination) if os.path.lexists(destination) else None
            done.append((destination, before))
            os.replace(temporary, destination)
    except BaseException as exc:
        kept: list[Path] = []  # backups not put back
        left: list[Path] = []  # new files not removed
        for destination, before in reversed(done):
            try:  # put back what can be; the first error is said
                if before is None:
                    destination.unlink(missing_ok=True)
                elif _same_file(before, destination):  # its rename failed: the original stands
                    before.unlink()  # (a rename onto another link of one file does nothing)
                else:
                    os.replace(before, destination)
            except OSError:
                (left if before is None else kept).append(before or destination)
        for directory in reversed(made):
            with contextlib.suppress(OSError):  # not empty: something else is in it now
                directory.rmdir()
        if not (kept or left):
            raise
        failed = _NotPutBack(exc, kept, left)
        if isinstance(exc, Exception):
            raise failed from exc
        exc.add_note(f"cafx adapt: {failed.strerror}")  # an interruption: said with it
        raise
    for _, before in done:
        if before is not None:
            with contextlib.suppress(OSError):
                before.unlink(missing_ok=True)


def _commit_all(outcomes: list[_Outcome]) -> None:
    """Once every input is translated: each input's results renamed into place, all or none of
    them. Two inputs never write the same file: the later one is refused, naming the other."""
    taken: dict[Path, Path] = {}  # destination -> the input written there
    for outcome in outcomes:
        pairs, outcome.pending = outcome.pending, []
        if not pairs:
            continue
        try:
            other = next((taken[d] for _, d in pairs if d in taken), None)
            if other is not None:
                outcome.failure = _Failure(
                    "output_name_taken", f"its result has the name of {other}'s, written before"
                )
                continue
            _commit(pairs)
        except OSError as exc:
            outcome.failure = _Failure("unsupported_format", f"cannot write: {_reason(exc)}")
            continue
        except Exception as exc:  # a fault of ours, rolled back: the other inputs go on
            outcome.failure = _internal(exc)
            continue
        finally:
            for temporary, _ in pairs:  # gone once renamed; what is left, the failure left
                temporary.unlink(missing_ok=True)
        outcome.outputs = [d for _, d in pairs]
        taken.update((d, outcome.source.path) for d in outcome.outputs)


# -- the summary -------------------------------------------------------------------------------------


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


def _report(console: Console, outcomes: list[_Outcome], failures: list[str]) -> None:
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
        for note in o.written_with:
            console.print(f"[yellow]{where}[/]: written: {escape(str(note))}")
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


# -- the command -------------------------------------------------------------------------------------


def _size(item: _Input) -> int:
    try:
        return item.path.stat().st_size if item.problem is None else 0
    except OSError:
        return 0


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
    rejected, 2 unusable input or output, or a usage error.
    """
    console = Console(stderr=True, emoji=False, highlight=False)  # paths are shown as they are
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
            sys.exit(EXIT_UNUSABLE)
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
                _commit_all(outcomes)
        finally:
            for outcome in outcomes:  # an interruption or a fault: no temporary is left
                for temporary, _ in outcome.pending:
                    temporary.unlink(missing_ok=True)
    _report(console, outcomes, run.failures)
    unusable = bool(run.failures) or any(o.failure and o.failure.unusable for o in outcomes)
    rejected = any(
        (o.failure and not o.failure.unusable) or (o.summary and o.summary.rejected_count)
        for o in outcomes
    )
    sys.exit(EXIT_UNUSABLE if unusable else EXIT_REJECTED if rejected else EXIT_OK)
