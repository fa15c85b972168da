"""The node's tables. Personal data lives only in `episodes.document`, sealed (AES-256-GCM envelope);
look-ups go through `episode_index` (blind indexes: HMACs of normalised values), never plaintext."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "audit_checkpoints",
    "audit_entries",
    "blind_index_key",
    "clients",
    "episode_index",
    "episodes",
    "idempotency_keys",
    "metadata",
    "register",
    "used_assertions",
    "practitioner_requests",
    "received_children",
    "received_child_index",
    "outbox",
    "inbox",
    "received_copies",
    "federation_nonces",
    "kept_metadata",
    "received_withdrawals",
    "overrides",
    "transfers",
    "disclosure_approvals",
    "notifications",
    "console_sessions",
    "directory_services",
    "directory_generation",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

episodes = Table(
    "episodes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("home_authority", String(9), nullable=False),
    Column("state", String(16), nullable=False),
    Column("source_format", String(32), nullable=False),
    Column("revision", Integer, nullable=False),  # optimistic concurrency for events
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=False),  # KEK that wraps this row's data key
    Column("document", LargeBinary, nullable=False),  # sealed national JSON
    Column("archived_at", DateTime(timezone=True), nullable=True),  # its purge clock (retention)
)

episode_index = Table(
    "episode_index",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("episode_id", String(36), ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("value", String(128), nullable=False),
    UniqueConstraint("episode_id", "kind", "value"),
    Index(None, "kind", "value"),
)

blind_index_key = Table(
    "blind_index_key",  # one row: `KeyRing.index_fingerprint()` of the key the indexes were made
    metadata,  # with, recorded at the first start; a node with another index key refuses to start
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # a short HMAC tag: not the key
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("jwks", JSON, nullable=True),  # public keys for private_key_jwt (RFC 7523)
    Column("secret_hash", String(256), nullable=True),  # client_secret_basic, development only
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

used_assertions = Table(
    "used_assertions",  # jti of client assertions seen, until they expire (replay check)
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", JSON, nullable=False),  # ids and the fidelity report: no personal data
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),  # retention
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),  # as hashed, to the microsecond
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("details", Text, nullable=False),  # canonical JSON, as hashed
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("signed_at", String(40), nullable=False),
    Column("signature", Text, nullable=False),  # compact JWS by the node key
)

register = Table(
    "register",  # the sharing register: every disclosure, both sides (DESIGN 3.8)
    metadata,
    Column("id", String(36), primary_key=True),
    Column("episode_id", String(36), nullable=False, index=True),
    Column("direction", String(8), nullable=False),  # sent | received
    Column("counterpart", String(9), nullable=False),  # the other member's GSS code
    Column("requested_by", String(200), nullable=False),
    Column("approved_by", String(200), nullable=True),  # the requesting borough's lead contact
    Column("sections", JSON, nullable=False),
    # Consent statement ids or the override id: comma-joined, or a JSON array when an id holds a comma
    # (`withdrawals.basis_text`).
    Column("basis", Text, nullable=False),
    Column("override", Boolean, nullable=False, default=False),
    Column("disclosed_at", DateTime(timezone=True), nullable=False),
    Column("receipt", Text, nullable=True),  # signed receipt (JWS)
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("second_approved_by", String(200), nullable=True),  # an override's second approver
    Column("holder_approved_by", String(200), nullable=True),  # released a held disclosure
    # The other member refused it and holds nothing of it (a transfer commit it refused): kept, as
    # the episode did go there, but no withdrawal is sent for it.
    Column("returned_at", DateTime(timezone=True), nullable=True),
    Index(None, "counterpart", "disclosed_at"),  # the latest with each member (console)
    Index(None, "requested_by", "disclosed_at"),  # per practitioner (DESIGN 3.8)
)

# --- the London protocol (issue 6) -------------------------------------------------------------

practitioner_requests = Table(
    "practitioner_requests",  # a practitioner's cross-borough request, awaiting or past verification
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(24), nullable=False),  # existence_check | disclosure | transfer
    Column("state", String(24), nullable=False, index=True),
    Column("target", String(9), nullable=False),  # GSS code of the authority asked
    Column("client_id", String(64), nullable=False),  # the borough system that raised it
    Column("role", String(100), nullable=False),  # practitioner's role, for auto-approval rules
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("decided_by", String(64), nullable=True),  # lead contact id
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # practitioner, child match keys, answer: sealed
    # awaiting_holder: the holder's id for the decision it holds, which its answer names
    Column("approval_id", String(64), nullable=True, index=True),
)

received_children = Table(
    "received_children",  # the child of an episode another member holds, as this node knows them
    metadata,  # (its requests' match keys, a disclosed child section): the register per child
    Column("episode_ref", String(36), primary_key=True),  # the holder's episode id
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

received_child_index = Table(
    "received_child_index",  # blind indexes of `received_children`, as `episode_index` is of episodes
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "episode_ref",
        String(36),
        ForeignKey("received_children.episode_ref", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(32), nullable=False),
    Column("value", String(128), nullable=False),
    UniqueConstraint("episode_ref", "kind", "value"),
    Index(None, "kind", "value"),
)

outbox = Table(
    "outbox",  # messages to other members, delivered at least once (DESIGN 3.6)
    metadata,
    Column("id", String(36), primary_key=True),  # the message id, also the receiver's dedup key
    Column("recipient", String(9), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False, index=True),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("last_error", String(64), nullable=True),  # a code, never a payload
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # the message body, sealed
)

inbox = Table(
    "inbox",  # message ids already applied: each message is applied exactly once
    metadata,
    Column("sender", String(9), primary_key=True),
    Column("message_id", String(36), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Index(None, "sender", "received_at"),  # the latest from each member (console)
)

received_copies = Table(
    "received_copies",  # what other members disclosed to us; marked when consent is withdrawn
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False, index=True),
    Column("holder", String(9), nullable=False),
    Column("episode_ref", String(36), nullable=False, index=True),
    Column("basis", Text, nullable=False),  # as in register: never cut, a withdrawal looks in it
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

received_withdrawals = Table(
    "received_withdrawals",  # consent withdrawals holders told us of, kept even when nothing matched:
    metadata,  # a disclosure answer that arrives after its withdrawal is marked on arrival
    Column("holder", String(9), primary_key=True),
    Column("episode_ref", String(36), primary_key=True),
    Column("consent_id", Text, primary_key=True),  # as long as the statement id is
    Column("received_at", DateTime(timezone=True), nullable=False),
)

federation_nonces = Table(
    "federation_nonces",  # RFC 9421 nonces seen per sender inside the clock window (replay check)
    metadata,
    Column("sender", String(9), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False, index=True),
)

kept_metadata = Table(
    "kept_metadata",  # one row: the last federation metadata accepted, so its version stays the
    metadata,  # rollback floor across restarts and replicas (DESIGN 3.1); public, signed, not sealed
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("token", Text, nullable=False),
    Column("kept_at", DateTime(timezone=True), nullable=False),
)

overrides = Table(
    "overrides",  # public-interest overrides (DESIGN 3.5): justification, second approver, time limit
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False, index=True),
    Column("requested_by", String(200), nullable=False),
    Column("approved_by", String(64), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # the written justification
)

transfers = Table(
    "transfers",  # an episode moving authority: offer -> accept -> commit (DESIGN 3.6)
    metadata,
    Column("id", String(36), primary_key=True),  # the offer id, the same on both members
    Column("direction", String(4), primary_key=True),  # out (we hold it) | in (offered to us)
    Column("episode_id", String(36), nullable=False, index=True),
    Column("counterpart", String(9), nullable=False),
    # offered | accepted | committed, or closed unmoved: withdrawn (by the holder) | declined |
    # released (by the receiver: accepted, but the episode never came)
    Column("state", String(16), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("key_id", String(64), nullable=True),
    Column("sealed", LargeBinary, nullable=True),  # the accepted lead professional
    Column("escalated_at", DateTime(timezone=True), nullable=True),  # left unanswered too long
    Column("reason", String(64), nullable=True),  # a code: why it was withdrawn or declined
    # in: the signed custody steps the offer came with, then those the committed episode came with
    Column("custody", Text, nullable=True),
    # out, committed: the statement ids of our copy once retention purged it (a JSON array), so a
    # withdrawal from the member it moved to is still passed back to those before us
    Column("kept_consent_ids", Text, nullable=True),
    Index(None, "direction", "created_at"),  # listed newest first
)

notifications = Table(
    "notifications",  # what holders told us: a TAC member added, a new lead professional
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sender", String(9), nullable=False),  # the holder (GSS)
    Column("message_id", String(36), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("episode_ref", String(36), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # the practitioner named: sealed
)

disclosure_approvals = Table(
    "disclosure_approvals",  # disclosures held for this (holder) borough's lead contact to approve
    metadata,
    Column("id", String(36), primary_key=True),  # the approval id the requester is given
    Column("requester", String(9), nullable=False),  # the home member's GSS code
    Column(
        "state", String(16), nullable=False, index=True
    ),  # pending | approved | refused | rejected
    Column("override", Boolean, nullable=False),  # relies on a public-interest override
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),  # retention
    Column("decided_by", String(100), nullable=True),  # lead contact id
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(64), nullable=True),  # disclosed | a refusal code
    Column("key_id", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # attestation claims, purpose, reason: sealed
)

console_sessions = Table(
    "console_sessions",  # lead contacts signed in to the console (issue 8); sign-ins under way
    metadata,  # are not here: they travel in a sealed cookie (gateway/console/_sessions.py)
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie: never the cookie
    Column("lead_contact_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, index=True),
)

directory_services = Table(
    "directory_services",  # public FIS records (Open Referral UK JSON, as imported): not sealed
    metadata,
    Column("id", String(36), primary_key=True),
    Column("authority", String(9), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("document", JSON, nullable=False),
)

directory_generation = Table(
    "directory_generation",  # one row, bumped by every import: nodes reload their index when it moves
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)
