"""Signed checkpoints over the audit chain (DESIGN 3.8): compact JWS (RFC 7515) by the node's key.

A hash chain alone proves nothing against someone who can write the table: hashing needs no secret, so
an edited entry followed by recomputed hashes is a perfectly consistent chain. A checkpoint is the node
signing "the entry at sequence N has hash H", which only the key holder can do. Everything up to the
last checkpoint is thereby fixed; what follows it is only hash-linked until the next one is due.

Payload: RFC 8785 canonical JSON of {"hash", "node", "sequence", "signed_at"}. `node` binds the checkpoint
to one chain, since members may reuse their federation key for it. Header: `alg`, `kid` when the key has
one (rotation: verify against the member's published key set), and `typ: caf-audit-checkpoint`, so a
checkpoint can never be replayed as any other JWS the same key signs (federation messages, attestations).

Algorithms are the RFC 9864 fully specified ones the member keys use (DESIGN 3.2): `Ed25519` for OKP
keys and `ES256` for P-256 keys. The polymorphic `EdDSA` is deprecated by RFC 9864 and the installed
joserfc warns on it, so it is neither produced nor accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey

from ._canonical import canonical_json
from ._entry import AuditEntry, MalformedAuditRow, format_timestamp, parse_timestamp

__all__ = [
    "CHECKPOINT_TYPE",
    "DEFAULT_EVERY",
    "Checkpoint",
    "checkpoint_due",
    "make_checkpoint",
    "signature_valid",
    "verifying_algorithms",
]

CHECKPOINT_TYPE = "caf-audit-checkpoint"
DEFAULT_EVERY = 100
_ALGORITHMS = {("OKP", "Ed25519"): "Ed25519", ("EC", "P-256"): "ES256"}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One row of `audit_checkpoints`: the columns repeat the signed payload so they can be queried."""

    sequence: int
    hash: str
    signed_at: datetime
    signature: str

    def __post_init__(self) -> None:
        format_timestamp(self.signed_at)  # refuses a naive datetime
        object.__setattr__(self, "signed_at", self.signed_at.astimezone(UTC))

    def to_row(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "hash": self.hash,
            "signed_at": format_timestamp(self.signed_at),
            "signature": self.signature,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Checkpoint:
        """Read a stored row back; raises `MalformedAuditRow` if it is not what `to_row` writes."""
        sequence = row.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise MalformedAuditRow(None, "sequence", "audit_row.integer")
        for name in ("hash", "signed_at", "signature"):
            if not isinstance(row.get(name), str):
                raise MalformedAuditRow(sequence, name, "audit_row.text")
        try:
            signed_at = parse_timestamp(row["signed_at"])
        except ValueError:
            raise MalformedAuditRow(sequence, "signed_at", "audit_row.timestamp") from None
        return cls(sequence, row["hash"], signed_at, row["signature"])


def checkpoint_due(sequence: int, every: int = DEFAULT_EVERY) -> bool:
    """Whether the entry at `sequence` must be checkpointed, in the same transaction that stores it."""
    if every < 1:
        raise ValueError("the checkpoint interval must be at least 1")
    return sequence % every == 0


def _payload(sequence: int, digest: str, signed_at: datetime, node_id: str) -> bytes:
    return canonical_json(
        {
            "sequence": sequence,
            "hash": digest,
            "signed_at": format_timestamp(signed_at),
            "node": node_id,
        }
    )


def _algorithm(key: OKPKey | ECKey) -> str:
    try:
        return _ALGORITHMS[(key.key_type, key.curve_name)]
    except KeyError:
        raise ValueError("audit checkpoints are signed with an Ed25519 or a P-256 key") from None


def make_checkpoint(
    entry: AuditEntry,
    key: OKPKey | ECKey,
    node_id: str,
    *,
    signed_at: datetime | None = None,
) -> Checkpoint:
    """Sign "`node_id`'s chain has `entry.hash` at `entry.sequence`" with the node's private key."""
    moment = signed_at if signed_at is not None else datetime.now(UTC)
    algorithm = _algorithm(key)
    header: dict[str, Any] = {"alg": algorithm, "typ": CHECKPOINT_TYPE}
    if key.kid is not None:
        header["kid"] = key.kid
    payload = _payload(entry.sequence, entry.hash, moment, node_id)
    signature = jws.serialize_compact(header, payload, key, algorithms=[algorithm])
    return Checkpoint(entry.sequence, entry.hash, moment, signature)


def verifying_algorithms(public_key: OKPKey | ECKey | KeySet) -> list[str]:
    """The algorithms a key may verify: fixed by its type, never taken from the token's header."""
    if isinstance(public_key, KeySet):
        return sorted(set(_ALGORITHMS.values()))
    return [_algorithm(public_key)]


def signature_valid(
    checkpoint: Checkpoint,
    public_key: OKPKey | ECKey | KeySet,
    node_id: str,
    algorithms: list[str] | None = None,
) -> bool:
    """Whether the JWS verifies AND signs exactly this row's values for `node_id`'s chain.

    A row whose columns were edited keeps a valid signature over the old values, so the payload is
    compared byte for byte with the one this row would have been signed with."""
    allowed = algorithms if algorithms is not None else verifying_algorithms(public_key)
    try:
        token = jws.deserialize_compact(checkpoint.signature, public_key, algorithms=allowed)
        expected = _payload(checkpoint.sequence, checkpoint.hash, checkpoint.signed_at, node_id)
    except (JoseError, ValueError, TypeError, KeyError):  # malformed, wrong key, unknown kid
        return False
    return token.headers().get("typ") == CHECKPOINT_TYPE and token.payload == expected
