"""`cafx audit verify`: one streaming pass over the chain and its checkpoints (DESIGN 3.8).

Entries and checkpoints are read in ascending sequence order (`ORDER BY sequence`), merged like two sorted
files: memory stays constant and time linear however long the log. The walk stops at the first problem,
because after it nothing can be vouched for: a break is reported where the chain first stops verifying.

At each entry the checks run in this order, and the first that fails names the problem:

    sequence_gap / sequence_disorder   its sequence is not the previous one + 1 (rows deleted / duplicated)
    hash_mismatch                      its content does not give its hash (edited, or unreadable)
    broken_link                        its prev_hash is not the previous entry's hash (deleted, inserted or
                                       reordered entries whose own hashes were recomputed)
    checkpoint_signature_invalid       a checkpoint at this sequence is not signed by the node's key over
                                       these exact values for this node's chain
    checkpoint_mismatch                a genuine checkpoint names another hash at this sequence (the chain
                                       before it was rewritten with recomputed hashes)
    checkpoint_missing                 no checkpoint at a multiple of `every` (one was deleted to hide a
                                       rewrite, or an attacker appended past the point one was due)
and after the last entry:
    truncated                          a genuine checkpoint names a sequence beyond the last entry

What it cannot see (the limit checkpoints exist to bound): anyone who can write the table can rewrite,
delete or append entries AFTER the last checkpoint, recomputing hashes, since hashing needs no key. With
`every` set, at most `every - 1` entries can be forged or removed at the tail unnoticed. Deleting both the
tail entries and the tail checkpoints rolls the log back to an earlier checkpoint, which is only visible
against a copy kept elsewhere: pass such witness checkpoints (`gateway.audit_witness`: the newest kept beside
the signing key, those logged) in the `checkpoints` stream, in order, and the rollback shows as `truncated`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

from joserfc.jwk import ECKey, KeySet, OKPKey

from ._canonical import CanonicalError
from ._checkpoint import DEFAULT_EVERY, Checkpoint, signature_valid, verifying_algorithms
from ._entry import AuditEntry, MalformedAuditRow, entry_hash, genesis_hash

__all__ = ["Problem", "ProblemKind", "VerifyResult", "verify"]


class ProblemKind(StrEnum):
    """Stable names for what `verify` found; the API and the CLI expose them as they are."""

    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_DISORDER = "sequence_disorder"
    HASH_MISMATCH = "hash_mismatch"
    BROKEN_LINK = "broken_link"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint_signature_invalid"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    CHECKPOINT_MISSING = "checkpoint_missing"
    TRUNCATED = "truncated"


_DETAILS = {
    ProblemKind.SEQUENCE_GAP: "entries are missing before this sequence number",
    ProblemKind.SEQUENCE_DISORDER: "an entry repeats or goes back to an earlier sequence number",
    ProblemKind.HASH_MISMATCH: "the entry's content does not match its hash",
    ProblemKind.BROKEN_LINK: "the entry's prev_hash is not the hash of the entry before it",
    ProblemKind.CHECKPOINT_SIGNATURE_INVALID: "the checkpoint is not validly signed by this node",
    ProblemKind.CHECKPOINT_MISMATCH: "a signed checkpoint names a different hash at this sequence",
    ProblemKind.CHECKPOINT_MISSING: "no checkpoint where one is due",
    ProblemKind.TRUNCATED: "a signed checkpoint names an entry beyond the end of the chain",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """The first problem: `sequence` is the first sequence number that could not be vouched for."""

    kind: ProblemKind
    sequence: int
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`last_sequence`/`last_hash`: the last entry that passed every check (0 and the genesis hash if
    none). `anchored_sequence`: the last entry covered by a genuine checkpoint; only entries up to it
    are proven authentic, those after it are merely linked."""

    checked: int
    last_sequence: int
    last_hash: str
    anchored_sequence: int
    checkpoints_read: int
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of `GET /api/v1/audit/verify`: ids and hashes only."""
        problem = self.problem
        return {
            "ok": self.ok,
            "checked": self.checked,
            "last_sequence": self.last_sequence,
            "last_hash": self.last_hash,
            "anchored_sequence": self.anchored_sequence,
            "checkpoints_read": self.checkpoints_read,
            "problem": None
            if problem is None
            else {
                "kind": problem.kind.value,
                "sequence": problem.sequence,
                "detail": problem.detail,
            },
        }


@dataclass(frozen=True, slots=True)
class _Unreadable:
    sequence: int | None  # a checkpoint row that `Checkpoint.from_row` refused


class _Checkpoints:
    """The checkpoint stream, one ahead of the entries; rows that cannot be read become `_Unreadable`."""

    def __init__(self, checkpoints: Iterable[Checkpoint]) -> None:
        self._rows: Iterator[Checkpoint] = iter(checkpoints)
        self._last = 0
        self.pulled = 0

    def next(self) -> Checkpoint | _Unreadable | None:
        try:
            checkpoint: Checkpoint | _Unreadable = next(self._rows)
        except StopIteration:
            return None
        except MalformedAuditRow as exc:
            checkpoint = _Unreadable(exc.sequence)
        self.pulled += 1
        if checkpoint.sequence is not None:
            if checkpoint.sequence < self._last:
                raise ValueError("checkpoints must be given in ascending sequence order")
            self._last = checkpoint.sequence
        return checkpoint


def verify(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: OKPKey | ECKey | KeySet,
    node_id: str,
    *,
    every: int | None = DEFAULT_EVERY,
) -> VerifyResult:
    """Walk `node_id`'s chain once and report the first problem, if any (see the module docstring).

    `public_key` is the node's verifying key, or its key set when keys were rotated (checkpoints name
    their `kid`). `every` is the checkpoint interval the node runs with; None skips `checkpoint_missing`
    (for a chain whose interval changed). Both streams may be generators and may raise
    `MalformedAuditRow` for a row they cannot read. Raises ValueError only for a caller's mistake:
    checkpoints out of order."""
    if every is not None and every < 1:
        raise ValueError("the checkpoint interval must be at least 1")
    algorithms = verifying_algorithms(public_key)
    feed = _Checkpoints(checkpoints)
    prev_hash = genesis_hash(node_id)
    expected = 1  # the sequence the next entry must have
    checked = anchored = 0

    def stop(kind: ProblemKind, sequence: int, detail: str | None = None) -> VerifyResult:
        problem = Problem(kind, sequence, detail or _DETAILS[kind])
        return VerifyResult(checked, expected - 1, prev_hash, anchored, feed.pulled, problem)

    def genuine(checkpoint: Checkpoint | _Unreadable) -> TypeGuard[Checkpoint]:
        if isinstance(checkpoint, _Unreadable):
            return False
        return signature_valid(checkpoint, public_key, node_id, algorithms)

    pending = feed.next()
    rows = iter(entries)
    while True:
        if pending is not None and (pending.sequence is None or pending.sequence < expected):
            # Unplaceable: no sequence, or one no entry can have (only <= 0 gets here, given the order).
            if pending.sequence is None:
                return stop(ProblemKind.CHECKPOINT_SIGNATURE_INVALID, expected)
            return stop(ProblemKind.CHECKPOINT_MISMATCH, pending.sequence)
        try:
            entry = next(rows)
        except StopIteration:
            break
        except MalformedAuditRow as exc:
            checked += 1
            sequence = expected if exc.sequence is None else exc.sequence
            if sequence != expected:
                kind = (
                    ProblemKind.SEQUENCE_GAP
                    if sequence > expected
                    else ProblemKind.SEQUENCE_DISORDER
                )
                return stop(kind, expected)
            return stop(ProblemKind.HASH_MISMATCH, expected, f"the stored row is unreadable: {exc}")
        checked += 1
        sequence = entry.sequence
        if sequence != expected:
            kind = (
                ProblemKind.SEQUENCE_GAP if sequence > expected else ProblemKind.SEQUENCE_DISORDER
            )
            return stop(kind, expected)
        try:
            intact = entry_hash(entry) == entry.hash
        except CanonicalError:  # content no sealed entry can have
            intact = False
        if not intact:
            return stop(ProblemKind.HASH_MISMATCH, sequence)
        if entry.prev_hash != prev_hash:
            return stop(ProblemKind.BROKEN_LINK, sequence)
        while pending is not None and pending.sequence == sequence:
            if not genuine(pending):
                return stop(ProblemKind.CHECKPOINT_SIGNATURE_INVALID, sequence)
            if pending.hash != entry.hash:
                return stop(ProblemKind.CHECKPOINT_MISMATCH, sequence)
            anchored = sequence
            pending = feed.next()
        if every is not None and anchored != sequence and sequence % every == 0:
            return stop(ProblemKind.CHECKPOINT_MISSING, sequence)
        prev_hash, expected = entry.hash, sequence + 1

    if pending is not None:
        if not genuine(pending):
            where = expected if pending.sequence is None else pending.sequence
            return stop(ProblemKind.CHECKPOINT_SIGNATURE_INVALID, where)
        return stop(ProblemKind.TRUNCATED, expected)
    return VerifyResult(checked, expected - 1, prev_hash, anchored, feed.pulled, None)
