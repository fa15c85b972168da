"""The audit page's everyday check: from the latest signed checkpoint to the head of the chain.

Verifying the whole chain reads every entry ever written, on every view. The latest checkpoint is the
node's own signature over "entry N has hash H"; checking that signature, that entry N still has hash H
and that the entries after it (fewer than one checkpoint interval) hash and link correctly costs the
same whatever the chain's length. It does not re-read the entries before N: the whole-chain
verification (`gateway.audit.verify`, the same as `cafx audit verify`) stays one button away, and it
is also what runs whenever this check finds anything amiss, so a problem is always reported by it,
named and placed exactly; and whenever the checkpoint kept out of the database (the witness file) is
newer than the newest stored one, as after the chain was cut back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select

from ..audit import (
    AuditEntry,
    CanonicalError,
    Checkpoint,
    MalformedAuditRow,
    VerifyResult,
    checkpoint_due,
    entry_hash,
    signature_valid,
)
from ..audit_log import AuditLog
from ..audit_witness import read_witness
from ..storage._tables import audit_entries

__all__ = ["ChainCheck", "check_chain"]


@dataclass(frozen=True, slots=True)
class ChainCheck:
    result: VerifyResult
    since: int | None  # the checkpoint the check started from; None: the whole chain was verified


async def check_chain(log: AuditLog, *, whole: bool = False) -> ChainCheck:
    if not whole:
        try:
            latest = await log.latest_checkpoints(1)
            if latest and not await _behind_witness(log, latest[0]):
                tail = await _tail(log, latest[0])
                if tail is not None:
                    return ChainCheck(tail, latest[0].sequence)
        except MalformedAuditRow:
            pass  # the whole-chain verification names it
    return ChainCheck(await log.verify(), None)


async def _behind_witness(log: AuditLog, latest: Checkpoint) -> bool:
    """Is the newest stored checkpoint older than (or other than) the one kept out of the database?
    Then the chain was cut back, checkpoints and all, and only the whole verification (which reads
    the witness too) can say so."""
    if log.witness is None:
        return False
    kept = await asyncio.to_thread(read_witness, log.witness, log.member_id)
    if kept is None:
        return False
    return kept.sequence > latest.sequence or (
        kept.sequence == latest.sequence and kept.hash != latest.hash
    )


async def _tail(log: AuditLog, checkpoint: Checkpoint) -> VerifyResult | None:
    """The result from `checkpoint` to the head, or None at the first thing that is not as it must be.
    At most one checkpoint interval is read: an entry past it would need a newer checkpoint."""
    if not signature_valid(checkpoint, log.verifying_keys, log.member_id):
        return None
    async with log.engine.connect() as connection:
        rows = await connection.execute(
            select(audit_entries)
            .where(audit_entries.c.sequence >= checkpoint.sequence)
            .order_by(audit_entries.c.sequence)
            .limit(log.every + 1)
        )
        entries = [AuditEntry.from_row(dict(row._mapping)) for row in rows.all()]
    previous: AuditEntry | None = None
    for entry in entries:
        try:
            intact = entry_hash(entry) == entry.hash
        except CanonicalError:
            intact = False
        if previous is None:
            fits = entry.sequence == checkpoint.sequence and entry.hash == checkpoint.hash
        else:
            fits = (
                entry.sequence == previous.sequence + 1
                and entry.prev_hash == previous.hash
                and not checkpoint_due(entry.sequence, log.every)
            )
        if not (intact and fits):
            return None
        previous = entry
    if previous is None:  # the checkpoint names an entry that is gone
        return None
    return VerifyResult(
        checked=len(entries),
        last_sequence=previous.sequence,
        last_hash=previous.hash,
        anchored_sequence=checkpoint.sequence,
        checkpoints_read=1,
        problem=None,
    )
