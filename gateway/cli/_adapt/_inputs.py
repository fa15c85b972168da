"""Finding the inputs of `cafx adapt` (files, and the files under directories) and reading
them; where `--out` may not be."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters import AdapterError
from adapters.caf_register_csv import MAX_REGISTER_BYTES

LARGE = 1_000_000  # bytes: a register this big gets a progress bar of its own, row by row


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path
    relative: Path  # where its results go below --out: its path below the DIR named (`_inputs`)
    problem: str | None = None  # why it cannot be read at all (a directory not listed, a FIFO)


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


def _size(item: _Input) -> int:
    try:
        return item.path.stat().st_size if item.problem is None else 0
    except OSError:
        return 0
