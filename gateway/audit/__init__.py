"""The tamper-evident audit log (DESIGN 3.8): a hash chain of entries with signed checkpoints.

Every API call that reads or changes personal data is audited. An entry records who (`actor`), did what
(`action`), to which opaque id (`subject`), how it ended (`outcome`, `reason`), under which request, with a
few codes in `details`; never a name, an NHS number or free text (see `_rules`). Each entry carries the
hash of the one before it (`_entry`: RFC 8785 canonical JSON, SHA-256, a genesis bound to the node id);
every `every` entries the node signs a checkpoint (`_checkpoint`: compact JWS, RFC 7515, Ed25519 or
ES256). `verify` (`_verify`) streams over both and names the first edit, deletion, insertion, reordering
or truncation, with the limit stated there: the tail after the last checkpoint is only hash-linked.

Appending, as the node does it (one writer at a time; the entry and its checkpoint in one transaction):

    entry = seal(AuditDraft(client_id, "episode.read", Outcome.SUCCESS, subject=episode_id,
                            request_id=request_id), head, node_id=member_id)
    insert audit_entries <- entry.to_row()
    if checkpoint_due(entry.sequence, settings.audit_checkpoint_every):
        insert audit_checkpoints <- make_checkpoint(entry, signing_key, member_id).to_row()

Verifying (`cafx audit verify`, `GET /api/v1/audit/verify`), both tables read ORDER BY sequence:

    verify((AuditEntry.from_row(r) for r in entry_rows), (Checkpoint.from_row(r) for r in cp_rows),
           public_key, member_id, every=settings.audit_checkpoint_every).as_dict()

Pure logic: no storage, no I/O, no clock except `datetime.now` when a draft has no time.
"""

from ._canonical import CanonicalError, JsonValue, canonical_json
from ._checkpoint import (
    CHECKPOINT_TYPE,
    DEFAULT_EVERY,
    Checkpoint,
    checkpoint_due,
    make_checkpoint,
    signature_valid,
)
from ._entry import (
    AuditDraft,
    AuditEntry,
    MalformedAuditRow,
    Outcome,
    entry_hash,
    format_timestamp,
    genesis_hash,
    parse_timestamp,
    seal,
)
from ._naming import naming
from ._rules import AuditRuleError
from ._verify import Problem, ProblemKind, VerifyResult, verify

__all__ = [
    "CHECKPOINT_TYPE",
    "DEFAULT_EVERY",
    "AuditDraft",
    "AuditEntry",
    "AuditRuleError",
    "CanonicalError",
    "Checkpoint",
    "JsonValue",
    "MalformedAuditRow",
    "Outcome",
    "Problem",
    "ProblemKind",
    "VerifyResult",
    "canonical_json",
    "checkpoint_due",
    "entry_hash",
    "format_timestamp",
    "genesis_hash",
    "make_checkpoint",
    "naming",
    "parse_timestamp",
    "seal",
    "signature_valid",
    "verify",
]
