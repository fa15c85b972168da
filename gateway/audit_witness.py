"""Witnesses of the audit chain, kept outside its database.

Checkpoints fix the chain up to the last one in the database, but someone who can write the
database can delete entries and checkpoints together: the chain then simply ends earlier, and the
node carries on signing after it. Only a copy of a checkpoint kept elsewhere shows that. The node
keeps two, both written once the checkpoint has committed:

- a file beside its signing key (`<stem>.checkpoint.json`), holding the newest checkpoint this
  node signed, never moved back; `verify` reads it (a database that ends before it is
  `truncated`, one that holds another hash there is `checkpoint_mismatch`);
- a log line, "audit checkpoint", with the checkpoint's sequence, hash, time and signature, which
  the log stream carries off the machine: `cafx audit verify --witness FILE` takes such lines
  (JSON, one a line) as witnesses too.

A witness is only a signed checkpoint, verified like any other: one not signed by the node's keys
is `checkpoint_signature_invalid`. A key directory the node cannot write (a read-only mount) keeps
no file: the log line is then the witness.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from .audit import Checkpoint, MalformedAuditRow
from .files import write_atomically

__all__ = ["merged", "note_checkpoint", "read_witness", "witness_file", "witnesses_in"]

log = logging.getLogger("cafx.audit")

CHECKPOINT_LOGGED = "audit checkpoint"  # the message of a checkpoint's log line
_UNWRITABLE: set[Path] = set()  # witness files this process could not write
_WRITING = threading.Lock()


def witness_file(signing_key_file: Path) -> Path:
    """Where the newest checkpoint this node signed is kept: beside its signing key file."""
    return signing_key_file.with_name(f"{signing_key_file.stem}.checkpoint.json")


def _checkpoint(record: object, member_id: str) -> Checkpoint | None:
    """A witness in a file or a log line of this node, or None (another node's, or no checkpoint)."""
    if not isinstance(record, dict) or record.get("node") != member_id:
        return None
    try:
        return Checkpoint.from_row(record)
    except MalformedAuditRow:
        return None


def read_witness(path: Path, member_id: str) -> Checkpoint | None:
    """The checkpoint kept in `path`, or None when there is none (or it cannot be read: logged)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("audit witness not readable (%s)", type(exc).__name__)
        return None
    try:
        found = _checkpoint(json.loads(text), member_id)
    except ValueError:
        found = None
    if found is None:
        log.warning("audit witness file holds no checkpoint of this node")
    return found


def note_checkpoint(checkpoint: Checkpoint, member_id: str, path: Path | None) -> None:
    """A checkpoint has committed: log it, and keep it in `path` unless a newer one is there."""
    record = {"node": member_id, **checkpoint.to_row()}  # ids, hashes and a signature only
    log.info(CHECKPOINT_LOGGED, extra=record)
    if path is None:
        return
    with _WRITING:  # checkpoints noted in worker threads: the file never moves back
        kept = read_witness(path, member_id)
        if kept is not None and kept.sequence >= checkpoint.sequence:
            return  # another replica on this host may be ahead
        try:
            write_atomically(path, json.dumps(record, indent=2) + "\n", 0o644)  # nothing secret
        except OSError as exc:  # a read-only key directory: the log line is the witness
            if path not in _UNWRITABLE:  # said once, not at every checkpoint
                _UNWRITABLE.add(path)
                log.warning("audit witness not written (%s)", type(exc).__name__)


def witnesses_in(lines: Iterable[str], member_id: str) -> list[Checkpoint]:
    """This node's checkpoints in JSON lines (its log, or witness files), by sequence; other lines
    are passed over."""
    found: dict[tuple[int, str], Checkpoint] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        checkpoint = _checkpoint(record, member_id)
        if checkpoint is not None:
            found[(checkpoint.sequence, checkpoint.signature)] = checkpoint
    return sorted(found.values(), key=lambda c: c.sequence)


def merged(stored: Iterable[Checkpoint], witnesses: list[Checkpoint]) -> Iterator[Checkpoint]:
    """The stored checkpoints (ascending) with the witnesses (ascending) placed among them."""
    pending = iter(witnesses)
    witness = next(pending, None)
    for checkpoint in stored:
        while witness is not None and witness.sequence <= checkpoint.sequence:
            yield witness
            witness = next(pending, None)
        yield checkpoint
    while witness is not None:
        yield witness
        witness = next(pending, None)
