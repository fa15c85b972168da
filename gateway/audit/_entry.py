"""Audit entries and the hash chain that links them (DESIGN 3.8).

    hash     = sha256(prev_hash || canonical(entry without "hash"))     hex, lower case
    genesis  = sha256("caf-audit/1:" || node id)                        the first entry's prev_hash

`prev_hash` is the ASCII hex of the previous hash and `canonical` is RFC 8785 JSON (see `_canonical`) of
the ten other fields, with `at` as its stored text. The canonical object already holds `prev_hash`, so the
prefix adds no strength; it is kept because it is what the design states and what an auditor re-implementing
verification from the design will write.

The genesis value is bound to the node instead of being 64 zeros, so one node's chain cannot be passed off
as another's: the first entry of a chain copied from Camden fails its link when verified as Hackney's. The
"caf-audit/1" tag versions the format: a later format starts its chains from a different genesis and can
never be confused with this one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ._canonical import CanonicalError, JsonValue, canonical_json
from ._rules import AuditRuleError, check_code, check_details, check_identifier

__all__ = [
    "AuditDraft",
    "AuditEntry",
    "MalformedAuditRow",
    "Outcome",
    "entry_hash",
    "format_timestamp",
    "genesis_hash",
    "parse_timestamp",
    "seal",
]

GENESIS_TAG = b"caf-audit/1:"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


class Outcome(StrEnum):
    """How the audited call ended; the reason code says why when it did not succeed."""

    SUCCESS = "success"
    REFUSED = "refused"  # a rule said no: consent, scope, attestation, approval
    FAILED = "failed"  # something broke: the peer was unreachable, the document invalid


class MalformedAuditRow(ValueError):
    """A stored row cannot be read back as it was written: it was edited outside the node.

    `verify` reports it as `hash_mismatch`, since no sealed entry can look like this."""

    def __init__(self, sequence: int | None, field: str, rule: str) -> None:
        where = "unknown sequence" if sequence is None else f"sequence {sequence}"
        super().__init__(f"audit row at {where}: field {field!r} breaks rule {rule}")
        self.sequence = sequence
        self.field = field
        self.rule = rule


def format_timestamp(moment: datetime) -> str:
    """UTC, ISO 8601, always six fractional digits and `Z`: one text per instant, as hashed and stored."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """The inverse of `format_timestamp`; any other spelling of the same instant is refused."""
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError("not an audit timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def genesis_hash(node_id: str) -> str:
    """The `prev_hash` of entry 1: binds the whole chain to one member id (GSS code)."""
    if not node_id:
        raise ValueError("the node id must not be empty")
    return hashlib.sha256(GENESIS_TAG + node_id.encode("utf-8")).hexdigest()


def _freeze(value: Any) -> Any:
    # Entries are values: a detail edited after sealing would silently invalidate the hash.
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """What the caller knows about an audited call; `seal` adds sequence, time and hashes.

    Checked on construction against the rules in `_rules` (ids and codes only, no personal data), so a
    bad draft fails where it is written, not when the chain is verified months later."""

    actor: str
    action: str
    outcome: Outcome
    subject: str | None = None
    reason: str | None = None
    request_id: str | None = None
    details: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)
    at: datetime | None = None  # defaults to the time of sealing

    def __post_init__(self) -> None:
        check_identifier("actor", self.actor, 200)
        check_code("action", self.action, 64)
        try:
            object.__setattr__(self, "outcome", Outcome(self.outcome))
        except ValueError:
            raise AuditRuleError("outcome", "audit.outcome") from None
        if self.subject is not None:
            check_identifier("subject", self.subject, 200)
        if self.reason is not None:
            check_code("reason", self.reason, 64)
        if self.request_id is not None:
            check_identifier("request_id", self.request_id, 64)
        check_details(self.details)
        object.__setattr__(self, "details", _freeze(self.details))
        if self.at is not None:
            format_timestamp(self.at)  # refuses naive datetimes now rather than at sealing


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One sealed entry, exactly the columns of the `audit_entries` table (`at` as a datetime here).

    Not checked against the draft rules: entries come back from storage, where anything may have been
    written, and `verify` must be able to read them in order to report what is wrong."""

    sequence: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    outcome: str
    reason: str | None
    request_id: str | None
    details: Mapping[str, JsonValue] = field(hash=False)
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        format_timestamp(self.at)  # refuses a naive datetime: its instant is unknown
        object.__setattr__(self, "at", self.at.astimezone(UTC))
        object.__setattr__(self, "details", _freeze(self.details))

    def to_row(self) -> dict[str, Any]:
        """The values to insert into `audit_entries`: `at` and `details` as the exact hashed text."""
        return {
            "sequence": self.sequence,
            "at": format_timestamp(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "outcome": self.outcome,
            "reason": self.reason,
            "request_id": self.request_id,
            "details": canonical_json(self.details).decode("utf-8"),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEntry:
        """Read a stored row back; raises `MalformedAuditRow` for anything `to_row` could not have written.

        Text that merely re-spells the same value (another timestamp format, reordered JSON keys) is refused
        too: the stored text is part of the evidence, so it must be exactly what was sealed."""
        sequence = row.get("sequence")
        seq = sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None
        if seq is None:
            raise MalformedAuditRow(None, "sequence", "audit_row.integer")
        for name in ("actor", "action", "outcome", "prev_hash", "hash"):
            if not isinstance(row.get(name), str):
                raise MalformedAuditRow(seq, name, "audit_row.text")
        for name in ("subject", "reason", "request_id"):
            if not isinstance(row.get(name), str | None):
                raise MalformedAuditRow(seq, name, "audit_row.text")
        at = row.get("at")
        try:
            moment = parse_timestamp(at) if isinstance(at, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise MalformedAuditRow(seq, "at", "audit_row.timestamp")
        details = _read_details(seq, row.get("details"))
        return cls(
            sequence=seq,
            at=moment,
            actor=row["actor"],
            action=row["action"],
            subject=row.get("subject"),
            outcome=row["outcome"],
            reason=row.get("reason"),
            request_id=row.get("request_id"),
            details=details,
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )


def _read_details(sequence: int, stored: object) -> Mapping[str, JsonValue]:
    try:
        if isinstance(stored, str):
            value = json.loads(stored)
            if isinstance(value, dict) and canonical_json(value).decode("utf-8") == stored:
                return value
        elif isinstance(stored, Mapping):  # a JSON column hands back the parsed object
            canonical_json(stored)
            return stored
    except (ValueError, RecursionError):  # bad JSON, floats, NaN, lone surrogates, absurd nesting
        pass
    raise MalformedAuditRow(sequence, "details", "audit_row.canonical_json")


def _hashed_fields(entry: AuditEntry) -> dict[str, object]:
    return {
        "sequence": entry.sequence,
        "at": format_timestamp(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "request_id": entry.request_id,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }


def entry_hash(entry: AuditEntry) -> str:
    """The hash `entry` must carry given its other fields; raises `CanonicalError` if it has none."""
    try:
        prefix = entry.prev_hash.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CanonicalError("audit.prev_hash", "prev_hash is not ASCII hex") from exc
    return hashlib.sha256(prefix + canonical_json(_hashed_fields(entry))).hexdigest()


def seal(draft: AuditDraft, prev: AuditEntry | None, *, node_id: str) -> AuditEntry:
    """The entry that follows `prev` (or starts `node_id`'s chain when `prev` is None).

    The caller must serialise appends (one writer at a time, e.g. the `audit_entries` primary key plus a
    retry, or a lock) and pass the current head: two entries sealed on the same head fork the chain."""
    if prev is None:
        sequence, prev_hash = 1, genesis_hash(node_id)
    else:
        sequence, prev_hash = prev.sequence + 1, prev.hash
    unsealed = AuditEntry(
        sequence=sequence,
        at=draft.at if draft.at is not None else datetime.now(UTC),
        actor=draft.actor,
        action=draft.action,
        subject=draft.subject,
        outcome=draft.outcome.value,
        reason=draft.reason,
        request_id=draft.request_id,
        details=draft.details,
        prev_hash=prev_hash,
        hash="",
    )
    return replace(unsealed, hash=entry_hash(unsealed))
