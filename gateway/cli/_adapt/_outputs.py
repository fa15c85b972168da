"""The documents `cafx adapt` makes of an input, and their commit: renamed into place all
together or not at all."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from adapters import Adapter, AdapterError, not_carried, write_document
from adapters.caf_register_csv import CafRegisterCsv
from adapters.eha_json import EhaJson
from adapters.national import NationalJson
from schemas import Episode

from ._inputs import _reason
from ._report import _Failure, _internal, _Outcome, _WriteNotes

_EXTENSIONS = {"application/json": ".json", "application/xml": ".xml", "text/csv": ".csv"}


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


def _family_documents(target: EhaJson, family: list[Episode], notes: _WriteNotes) -> list[bytes]:
    """A family's document; episodes without a family_ref that the writer does not take as one
    family (the same document's children given twice, say) are written one per episode."""
    try:
        return [_written(target, family, notes)]
    except AdapterError:
        if len(family) < 2 or family[0].family_ref is not None:
            raise
    return [_written(target, [episode], notes) for episode in family]


def _written(target: Adapter, group: list[Episode], notes: _WriteNotes) -> bytes:
    """One document in the target format; what its writer had to choose (an EHA family whose
    children's episodes hold different copies of a family-level part), and the values the
    document does not give back, go to `notes`."""
    written = write_document(target, group)
    notes.add(written.warnings)
    notes.add(not_carried(target, group, written.data))  # counted as found: never all held
    return written.data


def _documents(
    target: Adapter, episodes: Iterator[Episode], notes: _WriteNotes
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


def _combines(target: Adapter) -> bool:
    """Does one document of the target hold the episodes of any number of inputs?"""
    return isinstance(target, NationalJson | CafRegisterCsv)


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
