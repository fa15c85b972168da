"""The tamper-evident audit chain (DESIGN 3.8): every tampering is named, at the right place.

The property tests build a random chain with the real `seal` and `make_checkpoint`, tamper with it the
way someone with write access to the tables could (with or without recomputing hashes, never with the
node's key), and assert the exact kind and sequence `verify` reports. Where the design's limit applies
(the tail after the last checkpoint), the tests assert that limit too, so it stays a known one.
"""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, KeySet, OKPKey

from gateway.audit import (
    CHECKPOINT_TYPE,
    AuditDraft,
    AuditEntry,
    AuditRuleError,
    CanonicalError,
    Checkpoint,
    MalformedAuditRow,
    Outcome,
    ProblemKind,
    VerifyResult,
    canonical_json,
    checkpoint_due,
    entry_hash,
    genesis_hash,
    make_checkpoint,
    seal,
    verify,
)

NODE = "E09000007"  # Camden
OTHER_NODE = "E09000012"  # Hackney
T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=60, deadline=None)


@functools.cache
def node_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", auto_kid=True)


@functools.cache
def attacker_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", auto_kid=True)


def public(key: OKPKey | ECKey) -> OKPKey | ECKey:
    return type(key).import_key(key.as_dict(private=False))


# --- building chains ---------------------------------------------------------------------------------

ids = st.from_regex(r"[a-z][a-z0-9.:-]{0,20}", fullmatch=True)
codes = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
actions = st.sampled_from(
    ["episode.read", "episode.update", "consent.withdraw", "disclosure.refused", "tac.join"]
)
detail_values = (
    st.none() | st.booleans() | st.integers(-1000, 1000) | codes | st.lists(codes, max_size=3)
)
drafts = st.builds(
    AuditDraft,
    actor=ids,
    action=actions,
    outcome=st.sampled_from(Outcome),
    subject=st.none() | ids,
    reason=st.none() | codes,
    request_id=st.none() | st.uuids().map(str),
    details=st.dictionaries(codes, detail_values, max_size=4),
)


@dataclass(frozen=True)
class Chain:
    entries: list[AuditEntry]
    checkpoints: list[Checkpoint]
    every: int

    @property
    def n(self) -> int:
        return len(self.entries)

    def checkpointed(self) -> list[int]:
        return [c.sequence for c in self.checkpoints]

    def first_checkpoint_from(self, sequence: int) -> int | None:
        return next((c for c in self.checkpointed() if c >= sequence), None)


def build(drafts: Sequence[AuditDraft], every: int, key: OKPKey | ECKey | None = None) -> Chain:
    signing_key = key if key is not None else node_key()
    entries: list[AuditEntry] = []
    checkpoints: list[Checkpoint] = []
    head: AuditEntry | None = None
    for index, draft in enumerate(drafts):
        at = T0 + timedelta(seconds=index, microseconds=index * 7)
        head = seal(replace(draft, at=at), head, node_id=NODE)
        entries.append(head)
        if checkpoint_due(head.sequence, every):
            checkpoints.append(make_checkpoint(head, signing_key, NODE, signed_at=at))
    return Chain(entries, checkpoints, every)


@st.composite
def chains(draw: st.DrawFn, min_size: int = 0, max_size: int = 30) -> Chain:
    every = draw(st.integers(1, 8))
    return build(draw(st.lists(drafts, min_size=min_size, max_size=max_size)), every)


def check(
    chain: Chain,
    entries: Sequence[AuditEntry] | None = None,
    checkpoints: Sequence[Checkpoint] | None = None,
    *,
    key: OKPKey | ECKey | KeySet | None = None,
    node: str = NODE,
) -> VerifyResult:
    """Verify through generators, as the node streams rows: nothing may rely on len() or indexing."""
    return verify(
        (e for e in (chain.entries if entries is None else entries)),
        (c for c in (chain.checkpoints if checkpoints is None else checkpoints)),
        key if key is not None else public(node_key()),
        node,
        every=chain.every,
    )


def found(result: VerifyResult) -> tuple[ProblemKind, int] | None:
    return None if result.problem is None else (result.problem.kind, result.problem.sequence)


def reseal(entry: AuditEntry) -> AuditEntry:
    """What an attacker without the key can do: give an edited entry a self-consistent hash."""
    return replace(entry, hash=entry_hash(entry))


def rechain(entries: Sequence[AuditEntry], start: int) -> list[AuditEntry]:
    """Renumber and recompute every link and hash from list position `start` on: a perfect forgery
    that only a signed checkpoint can expose."""
    out = list(entries[:start])
    for entry in entries[start:]:
        prev = out[-1] if out else None
        moved = replace(
            entry,
            sequence=prev.sequence + 1 if prev else 1,
            prev_hash=prev.hash if prev else genesis_hash(NODE),
        )
        out.append(reseal(moved))
    return out


CONTENT_FIELDS = ["at", "actor", "action", "subject", "outcome", "reason", "request_id", "details"]


def edited(entry: AuditEntry, field: str) -> AuditEntry:
    """`entry` with one field changed to a different value of the right type."""
    changes: dict[str, Any] = {
        "at": entry.at + timedelta(microseconds=1),
        "actor": entry.actor + "x",
        "action": "episode.delete" if entry.action != "episode.delete" else "episode.read",
        "subject": None if entry.subject is not None else "ep-1",
        "outcome": "refused" if entry.outcome != "refused" else "success",
        "reason": None if entry.reason is not None else "edited",
        "request_id": None if entry.request_id is not None else "req-1",
        "details": {**entry.details, "zz_edited": True},
        "prev_hash": "0" * 64 if entry.prev_hash != "0" * 64 else "1" * 64,
        "hash": "0" * 64 if entry.hash != "0" * 64 else "1" * 64,
        "details_float": {"ratio": 0.5},  # content no sealed entry can have at all
    }
    name = "details" if field == "details_float" else field
    return replace(entry, **{name: changes[field]})


# --- an honest chain ---------------------------------------------------------------------------------


@PROPERTY
@given(chains())
def test_an_untampered_chain_always_verifies(chain: Chain) -> None:
    result = check(chain)
    assert found(result) is None and result.ok
    assert result.checked == chain.n
    assert result.last_sequence == chain.n
    assert result.last_hash == (chain.entries[-1].hash if chain.entries else genesis_hash(NODE))
    assert result.anchored_sequence == max(chain.checkpointed(), default=0)
    assert result.checkpoints_read == len(chain.checkpoints)
    assert [e.sequence for e in chain.entries] == list(range(1, chain.n + 1))


@PROPERTY
@given(chains(min_size=1))
def test_each_entry_links_to_the_one_before_from_a_genesis_bound_to_the_node(chain: Chain) -> None:
    assert chain.entries[0].prev_hash == genesis_hash(NODE)
    for before, after in zip(chain.entries, chain.entries[1:], strict=False):
        assert after.prev_hash == before.hash
    assert found(check(chain, node=OTHER_NODE)) == (ProblemKind.BROKEN_LINK, 1)


# --- edits ------------------------------------------------------------------------------------------


@PROPERTY
@given(chains(min_size=1), st.data())
def test_an_edited_field_is_a_hash_mismatch_at_that_entry(
    chain: Chain, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, chain.n))
    field = data.draw(st.sampled_from([*CONTENT_FIELDS, "prev_hash", "hash", "details_float"]))
    entries = list(chain.entries)
    entries[k - 1] = edited(entries[k - 1], field)
    assert found(check(chain, entries)) == (ProblemKind.HASH_MISMATCH, k)


@PROPERTY
@given(chains(min_size=1), st.data())
def test_a_renumbered_entry_is_a_sequence_problem(chain: Chain, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, chain.n))
    new = data.draw(st.integers(-3, chain.n + 3).filter(lambda s: s != k))
    entries = list(chain.entries)
    entries[k - 1] = replace(entries[k - 1], sequence=new)
    kind = ProblemKind.SEQUENCE_GAP if new > k else ProblemKind.SEQUENCE_DISORDER
    assert found(check(chain, entries)) == (kind, k)


@PROPERTY
@given(chains(min_size=1), st.data())
def test_an_edit_with_its_hash_recomputed_breaks_the_next_link_or_a_checkpoint(
    chain: Chain, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, chain.n))
    entries = list(chain.entries)
    entries[k - 1] = reseal(edited(entries[k - 1], data.draw(st.sampled_from(CONTENT_FIELDS))))
    if k in chain.checkpointed():
        expected = (ProblemKind.CHECKPOINT_MISMATCH, k)
    elif k < chain.n:
        expected = (ProblemKind.BROKEN_LINK, k + 1)
    else:
        expected = (
            None  # the limit: the unsigned tail can be rewritten (DESIGN 3.8, _verify docstring)
        )
    assert found(check(chain, entries)) == expected


@PROPERTY
@given(chains(min_size=1), st.data())
def test_a_rewritten_suffix_is_caught_by_the_first_checkpoint_after_the_edit(
    chain: Chain, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, chain.n))
    entries = list(chain.entries)
    entries[k - 1] = edited(entries[k - 1], data.draw(st.sampled_from(CONTENT_FIELDS)))
    forged = rechain(entries, k - 1)
    c = chain.first_checkpoint_from(k)
    assert found(check(chain, forged)) == (
        None if c is None else (ProblemKind.CHECKPOINT_MISMATCH, c)
    )
    # ... and deleting those checkpoints to hide it leaves a hole where the first one was due.
    kept = [cp for cp in chain.checkpoints if cp.sequence < k]
    assert found(check(chain, forged, kept)) == (
        None if c is None else (ProblemKind.CHECKPOINT_MISSING, c)
    )


# --- deletions --------------------------------------------------------------------------------------


@PROPERTY
@given(chains(min_size=1), st.data())
def test_deleted_entries_are_a_gap_or_at_the_tail_a_truncation(
    chain: Chain, data: st.DataObject
) -> None:
    gone = data.draw(st.sets(st.integers(1, chain.n), min_size=1))
    entries = [e for e in chain.entries if e.sequence not in gone]
    k = min(gone)
    if any(e.sequence > k for e in entries):
        expected: tuple[ProblemKind, int] | None = (ProblemKind.SEQUENCE_GAP, k)
    elif chain.first_checkpoint_from(k) is not None:
        expected = (ProblemKind.TRUNCATED, k)
    else:
        expected = None  # the limit: a tail after the last checkpoint
    assert found(check(chain, entries)) == expected


@PROPERTY
@given(chains(min_size=1), st.data())
def test_a_deletion_hidden_by_renumbering_and_rehashing_is_caught_by_checkpoints(
    chain: Chain, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, chain.n))
    forged = rechain([e for e in chain.entries if e.sequence != k], k - 1)
    c = chain.first_checkpoint_from(k)
    if c is None:
        expected: tuple[ProblemKind, int] | None = None
    elif c <= chain.n - 1:
        expected = (ProblemKind.CHECKPOINT_MISMATCH, c)
    else:
        expected = (ProblemKind.TRUNCATED, chain.n)
    assert found(check(chain, forged)) == expected
    # Renumbered without rehashing, the sequence number is an edit like any other.
    renumbered = [
        e if e.sequence < k else replace(e, sequence=e.sequence - 1) for e in chain.entries
    ]
    del renumbered[k - 1]
    if k < chain.n:
        assert found(check(chain, renumbered)) == (ProblemKind.HASH_MISMATCH, k)


@PROPERTY
@given(chains(min_size=1), st.data())
def test_truncation_after_a_checkpoint_is_detected(chain: Chain, data: st.DataObject) -> None:
    last_checkpoint = max(chain.checkpointed(), default=0)
    t = data.draw(st.integers(0, chain.n))
    result = check(chain, chain.entries[:t])
    if t < last_checkpoint:
        assert found(result) == (ProblemKind.TRUNCATED, t + 1)
        assert result.last_sequence == t
    else:
        assert found(result) is None  # the limit: nothing signed names what came after


# --- insertions -------------------------------------------------------------------------------------


@PROPERTY
@given(chains(), drafts, st.data())
def test_an_inserted_forgery_is_caught_by_a_checkpoint_or_the_next_sequence(
    chain: Chain, draft: AuditDraft, data: st.DataObject
) -> None:
    p = data.draw(st.integers(1, chain.n + 1))
    prev = chain.entries[p - 2] if p > 1 else None
    # No key is needed to seal; the time is one no genuine entry has, so this is not a replay.
    forgery = seal(replace(draft, at=T0 - timedelta(days=1)), prev, node_id=NODE)
    entries = [*chain.entries[: p - 1], forgery, *chain.entries[p - 1 :]]
    if p <= chain.n:
        if p in chain.checkpointed():
            expected: tuple[ProblemKind, int] | None = (ProblemKind.CHECKPOINT_MISMATCH, p)
        else:
            expected = (ProblemKind.SEQUENCE_DISORDER, p + 1)
    elif checkpoint_due(p, chain.every):
        expected = (ProblemKind.CHECKPOINT_MISSING, p)
    else:
        expected = None  # the limit: an append after the last checkpoint, before the next is due
    assert found(check(chain, entries)) == expected

    rewritten = rechain(entries, p)  # the rest renumbered and rehashed too
    c = chain.first_checkpoint_from(p)
    if c is not None:
        expected = (ProblemKind.CHECKPOINT_MISMATCH, c)
    elif checkpoint_due(chain.n + 1, chain.every):
        expected = (ProblemKind.CHECKPOINT_MISSING, chain.n + 1)
    else:
        expected = None
    assert found(check(chain, rewritten)) == expected


@PROPERTY
@given(chains(), drafts, st.data())
def test_a_clumsy_forgery_is_caught_where_it_stands(
    chain: Chain, draft: AuditDraft, data: st.DataObject
) -> None:
    p = data.draw(st.integers(1, chain.n + 1))
    prev = chain.entries[p - 2] if p > 1 else None
    genuine = seal(replace(draft, at=T0 - timedelta(days=1)), prev, node_id=NODE)
    unhashed = replace(genuine, actor=genuine.actor + "x")  # hash not recomputed
    unlinked = reseal(replace(genuine, prev_hash="ab" * 32))  # hash right, link wrong
    for forgery, kind in (
        (unhashed, ProblemKind.HASH_MISMATCH),
        (unlinked, ProblemKind.BROKEN_LINK),
    ):
        entries = [*chain.entries[: p - 1], forgery, *chain.entries[p - 1 :]]
        assert found(check(chain, entries)) == (kind, p)
    if prev is not None:  # a genuine entry replayed right after itself
        replayed = [*chain.entries[: p - 1], prev, *chain.entries[p - 1 :]]
        assert found(check(chain, replayed)) == (ProblemKind.SEQUENCE_DISORDER, p)


# --- reordering -------------------------------------------------------------------------------------


@PROPERTY
@given(chains(min_size=2), st.data())
def test_swapped_entries_are_detected_at_the_first_of_the_two(
    chain: Chain, data: st.DataObject
) -> None:
    i, j = sorted(data.draw(st.lists(st.integers(1, chain.n), min_size=2, max_size=2, unique=True)))
    ei, ej = chain.entries[i - 1], chain.entries[j - 1]

    def swapped(at_i: AuditEntry, at_j: AuditEntry) -> list[AuditEntry]:
        entries = list(chain.entries)
        entries[i - 1], entries[j - 1] = at_i, at_j
        return entries

    # Rows read out of order: the stream jumps ahead.
    assert found(check(chain, swapped(ej, ei))) == (ProblemKind.SEQUENCE_GAP, i)
    # Contents exchanged, sequence numbers left in place: each is an edited entry.
    moved_j, moved_i = replace(ej, sequence=i), replace(ei, sequence=j)
    assert found(check(chain, swapped(moved_j, moved_i))) == (ProblemKind.HASH_MISMATCH, i)
    # ... with their own hashes recomputed: the links no longer hold.
    resealed = swapped(reseal(moved_j), reseal(moved_i))
    assert found(check(chain, resealed)) == (ProblemKind.BROKEN_LINK, i)
    # ... with everything from i on rehashed: only a checkpoint can tell.
    c = chain.first_checkpoint_from(i)
    assert found(check(chain, rechain(swapped(moved_j, moved_i), i - 1))) == (
        None if c is None else (ProblemKind.CHECKPOINT_MISMATCH, c)
    )


# --- checkpoints ------------------------------------------------------------------------------------


@st.composite
def checkpointed_chains(draw: st.DrawFn) -> Chain:
    """Chains with at least one checkpoint: the interval is at most the length."""
    chosen = draw(st.lists(drafts, min_size=1, max_size=30))
    return build(chosen, draw(st.integers(1, min(8, len(chosen)))))


def with_checkpoint(chain: Chain, index: int, checkpoint: Checkpoint) -> list[Checkpoint]:
    checkpoints = list(chain.checkpoints)
    checkpoints[index] = checkpoint
    return sorted(checkpoints, key=lambda c: c.sequence)  # as ORDER BY sequence reads them


@PROPERTY
@given(checkpointed_chains(), st.data())
def test_a_checkpoint_signed_with_another_key_is_invalid(chain: Chain, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(chain.checkpoints) - 1))
    original = chain.checkpoints[index]
    entry = chain.entries[original.sequence - 1]
    forged = make_checkpoint(entry, attacker_key(), NODE, signed_at=original.signed_at)
    result = check(chain, checkpoints=with_checkpoint(chain, index, forged))
    assert found(result) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, original.sequence)
    other_node = make_checkpoint(entry, node_key(), OTHER_NODE, signed_at=original.signed_at)
    result = check(chain, checkpoints=with_checkpoint(chain, index, other_node))
    assert found(result) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, original.sequence)


@PROPERTY
@given(checkpointed_chains(), st.data())
def test_a_rewrite_resigned_with_another_key_is_caught_at_the_first_forged_checkpoint(
    chain: Chain, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, chain.n))
    entries = list(chain.entries)
    entries[k - 1] = edited(entries[k - 1], data.draw(st.sampled_from(CONTENT_FIELDS)))
    forged_entries = rechain(entries, k - 1)
    forged_checkpoints = [
        cp
        if cp.sequence < k
        else make_checkpoint(forged_entries[cp.sequence - 1], attacker_key(), NODE)
        for cp in chain.checkpoints
    ]
    c = chain.first_checkpoint_from(k)
    assert found(check(chain, forged_entries, forged_checkpoints)) == (
        None if c is None else (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, c)
    )


@PROPERTY
@given(checkpointed_chains(), st.data())
def test_an_edited_checkpoint_row_no_longer_matches_its_signature(
    chain: Chain, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(chain.checkpoints) - 1))
    cp = chain.checkpoints[index]
    other = chain.checkpoints[index - 1] if index else None
    edits = [
        replace(cp, hash="ab" * 32),
        replace(cp, signed_at=cp.signed_at + timedelta(microseconds=1)),
        replace(cp, signature=cp.signature[:-4]),
        replace(cp, signature=""),
    ]
    if other is not None:
        edits.append(replace(cp, signature=other.signature))
    for forged in edits:
        result = check(chain, checkpoints=with_checkpoint(chain, index, forged))
        assert found(result) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, cp.sequence)


@PROPERTY
@given(checkpointed_chains(), st.data())
def test_a_moved_or_deleted_checkpoint_is_detected(chain: Chain, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(chain.checkpoints) - 1))
    c = chain.checkpoints[index].sequence
    taken = set(chain.checkpointed())
    new = data.draw(st.integers(1, chain.n + 5).filter(lambda s: s not in taken))
    moved = with_checkpoint(chain, index, replace(chain.checkpoints[index], sequence=new))
    expected = (
        (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, new)
        if new < c
        else (ProblemKind.CHECKPOINT_MISSING, c)
    )
    assert found(check(chain, checkpoints=moved)) == expected
    deleted = [cp for cp in chain.checkpoints if cp.sequence != c]
    assert found(check(chain, checkpoints=deleted)) == (ProblemKind.CHECKPOINT_MISSING, c)
    unchecked = verify(chain.entries, deleted, public(node_key()), NODE, every=None)
    assert unchecked.ok  # the interval check is what catches a deleted checkpoint


@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{2,40}(\.[A-Za-z0-9_-]{0,60}){2}"))
@settings(deadline=None)
def test_a_garbage_signature_is_invalid_and_never_raises(signature: str) -> None:
    chain = build([AuditDraft("client-1", "episode.read", Outcome.SUCCESS)], 1)
    forged = replace(chain.checkpoints[0], signature=signature)
    assert found(check(chain, checkpoints=[forged])) == (
        ProblemKind.CHECKPOINT_SIGNATURE_INVALID,
        1,
    )


def _resigned(checkpoint: Checkpoint, header: dict[str, Any], key: OKPKey, alg: str) -> Checkpoint:
    token = jws.deserialize_compact(
        checkpoint.signature, public(node_key()), algorithms=["Ed25519"]
    )
    return replace(
        checkpoint, signature=jws.serialize_compact(header, token.payload, key, algorithms=[alg])
    )


def test_other_algorithms_and_types_are_refused_without_warnings() -> None:
    """pytest turns warnings into errors: the deprecated EdDSA must be refused before joserfc warns."""
    chain = build([AuditDraft("client-1", "episode.read", Outcome.SUCCESS)], 1)
    cp = chain.checkpoints[0]
    with pytest.warns(UserWarning, match="RFC 9864"):
        eddsa = _resigned(cp, {"alg": "EdDSA", "typ": CHECKPOINT_TYPE}, node_key(), "EdDSA")
    other_type = _resigned(cp, {"alg": "Ed25519", "typ": "JWT"}, node_key(), "Ed25519")
    no_type = _resigned(cp, {"alg": "Ed25519"}, node_key(), "Ed25519")
    unsigned = replace(cp, signature=".".join([*cp.signature.split(".")[:2], ""]))
    unsigned_none = replace(cp, signature="eyJhbGciOiJub25lIn0." + cp.signature.split(".")[1] + ".")
    genuine = _resigned(cp, {"alg": "Ed25519", "typ": CHECKPOINT_TYPE}, node_key(), "Ed25519")
    for forged in (eddsa, other_type, no_type, unsigned, unsigned_none):
        assert found(check(chain, checkpoints=[forged])) == (
            ProblemKind.CHECKPOINT_SIGNATURE_INVALID,
            1,
        )
    assert check(chain, checkpoints=[genuine]).ok  # the re-signing itself is sound


def test_rotated_keys_verify_against_the_key_set_and_p256_keys_work() -> None:
    six = [
        AuditDraft("client-1", "episode.read", Outcome.SUCCESS, subject=f"ep-{i}") for i in range(6)
    ]
    old, new = node_key(), OKPKey.generate_key("Ed25519", auto_kid=True)
    chain = build(six, 2)
    rotated = [
        cp if cp.sequence <= 2 else make_checkpoint(chain.entries[cp.sequence - 1], new, NODE)
        for cp in chain.checkpoints
    ]
    keys = KeySet([public(old), public(new)])
    assert check(chain, checkpoints=rotated, key=keys).ok
    assert found(check(chain, checkpoints=rotated, key=public(old))) == (
        ProblemKind.CHECKPOINT_SIGNATURE_INVALID,
        4,
    )
    p256 = ECKey.generate_key("P-256")
    chain = build(six, 3, key=p256)
    assert check(chain, key=public(p256)).ok
    assert found(check(chain)) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 3)
    with pytest.raises(ValueError, match="Ed25519 or a P-256"):
        make_checkpoint(chain.entries[0], ECKey.generate_key("P-384"), NODE)


def test_checkpoints_out_of_order_are_a_caller_error_and_sequence_zero_a_mismatch() -> None:
    chain = build([AuditDraft("client-1", "episode.read", Outcome.SUCCESS)] * 4, 2)
    with pytest.raises(ValueError, match="ascending"):
        verify(chain.entries, chain.checkpoints[::-1], public(node_key()), NODE, every=None)
    zero = replace(chain.checkpoints[0], sequence=0)
    result = check(chain, checkpoints=[zero, *chain.checkpoints])
    assert found(result) == (ProblemKind.CHECKPOINT_MISMATCH, 0)
    assert result.checked == 0


# --- rows as stored ---------------------------------------------------------------------------------


@PROPERTY
@given(chains(min_size=1))
def test_rows_read_back_as_the_same_entries_and_checkpoints(chain: Chain) -> None:
    assert [AuditEntry.from_row(e.to_row()) for e in chain.entries] == chain.entries
    assert [Checkpoint.from_row(c.to_row()) for c in chain.checkpoints] == chain.checkpoints
    row = chain.entries[0].to_row()
    assert isinstance(row["details"], str) and isinstance(row["at"], str)
    assert row["at"].endswith("Z") and len(row["at"]) == 27


ROW_EDITS: list[tuple[str, object]] = [
    ("details", '{"n": 1}'),  # same value, other spelling: the stored text is evidence too
    ("details", '{"n":1.5}'),
    ("details", "[]"),
    ("details", "{"),
    ("details", None),
    ("at", "2025-04-01T09:00:00+00:00"),
    ("at", "2025-04-01T09:00:00Z"),
    ("at", "2025-13-01T09:00:00.000000Z"),
    ("actor", None),
    ("reason", 7),
    ("sequence", "1"),
    ("sequence", True),
]


@pytest.mark.parametrize(("column", "value"), ROW_EDITS)
def test_an_unreadable_row_is_reported_as_a_hash_mismatch(column: str, value: object) -> None:
    chain = build([AuditDraft("client-1", "episode.read", Outcome.SUCCESS, subject="ep-1")] * 3, 5)
    rows = [e.to_row() for e in chain.entries]
    rows[1][column] = value
    with pytest.raises(MalformedAuditRow) as caught:
        AuditEntry.from_row(rows[1])
    assert caught.value.field == column
    streamed = verify((AuditEntry.from_row(r) for r in rows), [], public(node_key()), NODE)
    assert found(streamed) == (ProblemKind.HASH_MISMATCH, 2)
    assert streamed.problem is not None and repr(column) in streamed.problem.detail


def test_an_unreadable_checkpoint_row_is_an_invalid_checkpoint() -> None:
    chain = build([AuditDraft("client-1", "episode.read", Outcome.SUCCESS)] * 4, 2)
    rows = [c.to_row() for c in chain.checkpoints]
    rows[1]["signed_at"] = "yesterday"
    streamed = verify(
        chain.entries, (Checkpoint.from_row(r) for r in rows), public(node_key()), NODE, every=2
    )
    assert found(streamed) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 4)


# --- drafts: no personal data -----------------------------------------------------------------------

NHS = "9434765919"  # a valid NHS number (checksum holds)


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"subject": NHS}, "subject", "audit.no_nhs_number"),
        ({"request_id": NHS}, "request_id", "audit.no_nhs_number"),
        ({"details": {"child": "943-476-5919"}}, "details.child", "audit.no_nhs_number"),
        ({"details": {"child": int(NHS)}}, "details.child", "audit.no_nhs_number"),
        ({"details": {"ids": ["ep-1", NHS]}}, "details.ids[1]", "audit.no_nhs_number"),
        ({"details": {"note": "Jane Smith"}}, "details.note", "audit.details_text"),
        ({"details": {"note": "Zoë"}}, "details.note", "audit.details_text"),
        ({"details": {"ratio": 0.5}}, "details.ratio", "audit.details_type"),
        ({"details": {"Bad Key": 1}}, "details", "audit.details_key"),
        ({"details": {"a": {"b": {"c": {"d": 1}}}}}, "details.a.b.c", "audit.details_depth"),
        ({"details": {"big": 2**60}}, "details", "canonical.integer_range"),
        ({"details": {f"k{i}": "x" * 200 for i in range(12)}}, "details", "audit.details_size"),
        ({"actor": "jane.smith@example.org"}, "actor", "audit.identifier"),
        ({"actor": "Jane Smith"}, "actor", "audit.identifier"),
        ({"subject": ""}, "subject", "audit.identifier"),
        ({"action": "Episode Read"}, "action", "audit.action_code"),
        ({"action": "read"}, "action", "audit.action_code"),
        ({"reason": "Consent withdrawn by mum"}, "reason", "audit.reason_code"),
        ({"outcome": "maybe"}, "outcome", "audit.outcome"),
    ],
)
def test_a_draft_refuses_personal_data_and_names_only_the_rule(
    changes: dict[str, Any], field: str, rule: str
) -> None:
    base: dict[str, Any] = {"actor": "client-1", "action": "episode.read", "outcome": "success"}
    with pytest.raises(AuditRuleError) as caught:
        AuditDraft(**{**base, **changes})
    assert (caught.value.field, caught.value.rule) == (field, rule)
    for value in ("9434765919", "943-476-5919", "Jane", "Zoë", "mum"):
        assert value not in str(caught.value)


def test_a_draft_accepts_codes_ids_and_counts_and_freezes_them() -> None:
    details: dict[str, Any] = {"sections": ["health", "education"], "count": 3, "peer": "E09000012"}
    draft = AuditDraft(
        "client:camden-ecaf",
        "disclosure.refused",
        Outcome.REFUSED,
        subject="3f2c9a1e-7d",
        reason="consent_withdrawn",
        request_id="req-5",
        details=details,
    )
    details["sections"].append("x")
    entry = seal(draft, None, node_id=NODE)
    assert entry.details == {"sections": ("health", "education"), "count": 3, "peer": "E09000012"}
    assert entry.outcome == "refused" and entry.sequence == 1 and entry.at.tzinfo is UTC
    assert entry.hash == entry_hash(entry)
    with pytest.raises(TypeError):
        entry.details["count"] = 4  # type: ignore[index]
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditDraft("client-1", "episode.read", Outcome.SUCCESS, at=datetime(2025, 1, 1))


def test_sealing_continues_the_sequence_and_the_hash_is_stable() -> None:
    """A golden vector: if this hash changes, every stored chain stops verifying."""
    draft = AuditDraft(
        "client-1", "episode.read", Outcome.SUCCESS, subject="ep-1", details={"n": 1}, at=T0
    )
    first = seal(draft, None, node_id=NODE)
    second = seal(draft, first, node_id=NODE)
    assert (second.sequence, second.prev_hash) == (2, first.hash)
    assert first.to_row()["at"] == "2025-04-01T09:00:00.000000Z"
    assert genesis_hash(NODE) != genesis_hash(OTHER_NODE)
    assert first.hash == GOLDEN_FIRST_HASH


# Recomputed by hand from the docstring of gateway/audit/_entry.py with hashlib and json.dumps(sort_keys).
GOLDEN_FIRST_HASH = "0f6dcf87827fcc2e38489fcf95012a0190589d2d6091d563e7e27ee320c51496"


# --- canonical JSON (RFC 8785) ----------------------------------------------------------------------


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    """RFC 8785 3.2.3: the emoji (surrogates D83D DE00) sorts before U+FB33, unlike code point order."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json(value).startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":')


def test_canonical_json_escapes_strings_as_rfc_8785_does() -> None:
    """The string example of RFC 8785 3.2.2.2."""
    value = json.loads('{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/"}')
    expected = r'{"string":"€$\u000f\nA' + "'" + r'B\"\\\\\"/"}'
    assert canonical_json(value) == expected.encode("utf-8")
    assert canonical_json({"b": [True, None, -1], "a": {}}) == b'{"a":{},"b":[true,null,-1]}'


@pytest.mark.parametrize(
    "value", [1.0, float("nan"), 2**53, -(2**53), {1: "x"}, "\ud800", b"bytes", {"a": [object()]}]
)
def test_canonical_json_refuses_what_it_cannot_spell_one_way(value: object) -> None:
    with pytest.raises(CanonicalError):
        canonical_json(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_round_trips_and_ignores_insertion_order(value: object, rnd: Any) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert (
        canonical_json(json.loads(text)) == text
    )  # a fixed point: re-canonicalising changes nothing
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        assert canonical_json(dict(items)) == text


# --- scale ------------------------------------------------------------------------------------------


def _fast_chain(n: int) -> Iterator[AuditEntry]:
    """Entries sealed as `seal` does, without re-checking the same draft 100,000 times."""
    prev_hash = genesis_hash(NODE)
    for sequence in range(1, n + 1):
        entry = AuditEntry(
            sequence=sequence,
            at=T0 + timedelta(microseconds=sequence),
            actor="client-1",
            action="episode.read",
            subject=f"ep-{sequence}",
            outcome="success",
            reason=None,
            request_id=f"req-{sequence}",
            details={"sections": ["health"], "n": sequence},
            prev_hash=prev_hash,
            hash="",
        )
        entry = reseal(entry)
        prev_hash = entry.hash
        yield entry


class _Sampled:
    """The entry stream, noting how many memory blocks are live every 1,000 entries it hands out."""

    def __init__(self, entries: Iterator[AuditEntry]) -> None:
        self._entries = entries
        self.samples: list[int] = []

    def __iter__(self) -> Iterator[AuditEntry]:
        for index, entry in enumerate(self._entries):
            if index % 1000 == 0:
                self.samples.append(sys.getallocatedblocks())
            yield entry

    @property
    def growth(self) -> int:
        return max(self.samples) - self.samples[0]


def test_verify_streams_100000_entries_in_constant_memory() -> None:
    """No time is asserted (it is about a second here); memory is, through live allocation counts
    (tracemalloc would make this 20 times slower)."""
    n, every = 100_000, 100
    checkpoints = [
        make_checkpoint(e, node_key(), NODE, signed_at=T0)
        for e in _fast_chain(n)
        if checkpoint_due(e.sequence, every)
    ]
    key = public(node_key())
    # Collections of earlier tests' garbage during a measurement would hide growth: keep them out.
    gc.collect()
    stream = _Sampled(_fast_chain(n))
    result = verify(stream, iter(checkpoints), key, NODE, every=every)
    gc.collect()
    gc.disable()
    try:
        hoarded = _Sampled(_fast_chain(20_000))
        kept = list(hoarded)  # what a verifier that materialised its input would do
    finally:
        gc.enable()
    assert result.ok and result.checked == n and result.anchored_sequence == n
    assert result.checkpoints_read == n // every and len(stream.samples) == n // 1000
    # Each entry holds a dozen blocks: keeping them would add over a million; streaming adds ~none.
    assert stream.growth < 20_000, stream.growth  # a hundredth of what keeping them would take
    assert hoarded.growth > 100_000 and len(kept) == 20_000  # so the measure can fail
