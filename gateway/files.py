"""Files the node and the operator write beside keys (key rings, signing keys and their history,
the audit witness, the federation's files): whole or not at all, and still there after a power
cut."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: str | bytes, mode: int, *, replace: bool = True) -> None:
    """Write `data` (text in UTF-8) to `path` with `mode`: a temporary file in the same directory,
    synced, then renamed over it (or, without `replace`, linked where nothing is:
    `FileExistsError` if something is), then the directory synced, so the rename itself survives a
    crash. A crash leaves the old file or the new one, never half of one."""
    fd, temporary = tempfile.mkstemp(prefix=f".cafx-{path.stem}-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # atomic "create if absent"
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        Path(temporary).unlink(missing_ok=True)
