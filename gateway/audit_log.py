"""The audit chain as the node stores it: one writer at a time appends sealed entries (and signed
checkpoints) inside the caller's transaction; `verify` streams the stored chain through
`gateway.audit.verify` in constant memory.

Checkpoints are verified against the node's current signing key and its earlier ones: a routine
signing-key rotation (`cafx federation rotate-key`, a new key file) must not make every checkpoint
signed before it look forged. The earlier public keys are kept in a history file beside the signing
key file (`signing_key_history`), which the node and `cafx audit verify` add their current key to.
It is trusted as the signing key file is: the database alone can add no key to it. A key taken out
of it (one found compromised) verifies nothing any more."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from joserfc.jwk import ECKey, KeySet, OKPKey
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .audit import (
    AuditDraft,
    AuditEntry,
    Checkpoint,
    VerifyResult,
    checkpoint_due,
    make_checkpoint,
    seal,
    verify,
)
from .audit_witness import merged, note_checkpoint, read_witness
from .files import write_atomically
from .storage import create_engine, is_sqlite, sqlite_file
from .storage._tables import audit_checkpoints, audit_entries

__all__ = ["AuditLog", "remember_signing_key", "signing_key_history"]

log = logging.getLogger("cafx.audit")

# Any fixed number: the PostgreSQL advisory lock every audit writer takes, across replicas.
_ADVISORY_LOCK = 0x43414658  # "CAFX"


class AuditLog:
    def __init__(
        self,
        engine: AsyncEngine,
        key: OKPKey,
        member_id: str,
        every: int,
        *,
        earlier_keys: Iterable[OKPKey | ECKey] = (),
        witness: Path | None = None,
    ) -> None:
        """`key` signs new checkpoints; it and `earlier_keys` (public keys this node signed with
        before, see `remember_signing_key`) verify them. `witness`: the file that keeps the newest
        checkpoint out of the database (`gateway.audit_witness`), or None."""
        self.engine, self.key, self.member_id, self.every = engine, key, member_id, every
        self.witness = witness
        self.verifying_keys = _key_set(key, earlier_keys)
        self._sqlite = is_sqlite(engine.url.render_as_string())
        self._local = asyncio.Lock()  # SQLite is one process: a lock in it serialises writers
        # SQLite only (one process, one writer at a time): the committed head of the chain, so an
        # append need not read it back. None until first read; replicas on PostgreSQL always read.
        self._head: tuple[AuditEntry | None] | None = None
        # Each open transaction's last appended entry (None before its first). Per transaction: on
        # PostgreSQL several are open at once in one process, waiting for the lock, and one that
        # rolls back must not leave its entry as the head another appends to.
        self._appended: dict[AsyncConnection, AuditEntry | None] = {}
        self._checkpointed: dict[AsyncConnection, Checkpoint] = {}  # made, not yet committed
        self._verifying = asyncio.Lock()  # one whole-chain read at a time

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that may append audit entries (and anything else with them)."""
        async with self._local if self._sqlite else _nothing():
            try:
                async with self.engine.begin() as connection:
                    if not self._sqlite:
                        await connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK}
                        )
                    self._appended[connection] = None
                    try:
                        yield connection
                    finally:
                        last = self._appended.pop(connection)
                        made = self._checkpointed.pop(connection, None)
            except BaseException:
                # Not committed: the head kept in memory may be what another writer (one that
                # should not exist) made stale; the next append reads it back.
                self._head = None
                raise
            if self._sqlite and last is not None:  # committed: the new head is known
                self._head = (last,)
        if made is not None:  # committed: kept out of the database too (a synced file write)
            await asyncio.to_thread(note_checkpoint, made, self.member_id, self.witness)

    async def _read_head(self, connection: AsyncConnection) -> AuditEntry | None:
        row = (
            await connection.execute(
                select(audit_entries).order_by(audit_entries.c.sequence.desc()).limit(1)
            )
        ).one_or_none()
        return AuditEntry.from_row(dict(row._mapping)) if row is not None else None

    async def append(self, connection: AsyncConnection, draft: AuditDraft) -> AuditEntry:
        """Seal `draft` onto the chain, in a connection of `transaction()`."""
        if connection not in self._appended:
            raise RuntimeError("audit entries are appended in AuditLog.transaction()")
        head = self._appended[connection]
        if head is None and self._sqlite and self._head is not None:
            (head,) = self._head
        elif head is None:
            head = await self._read_head(connection)
        entry = seal(draft, head, node_id=self.member_id)
        await connection.execute(insert(audit_entries).values(entry.to_row()))
        self._appended[connection] = entry  # written: the next append follows it
        if checkpoint_due(entry.sequence, self.every):
            checkpoint = make_checkpoint(entry, self.key, self.member_id)
            await connection.execute(insert(audit_checkpoints).values(checkpoint.to_row()))
            self._checkpointed[connection] = checkpoint
        return entry

    async def checkpoint_head(self) -> Checkpoint | None:
        """Sign a checkpoint of the chain's head now, unless one names it already; the checkpoint
        made, or None. Entries after the newest checkpoint could be deleted or rewritten unseen
        (hashing needs no key): run on a timer (`audit_checkpoint_seconds`), this bounds that tail
        in time as well as in count (`every`). Kept in the witness file too, once committed."""
        async with self.transaction() as connection:
            head = await self._read_head(connection)
            if head is None:
                return None
            newest = await connection.scalar(select(func.max(audit_checkpoints.c.sequence)))
            if newest is not None and newest >= head.sequence:
                return None
            checkpoint = make_checkpoint(head, self.key, self.member_id)
            await connection.execute(insert(audit_checkpoints).values(checkpoint.to_row()))
            self._checkpointed[connection] = checkpoint
        return checkpoint

    async def record(self, draft: AuditDraft) -> AuditEntry:
        """Append in a transaction of its own (for refusals, where nothing else is written)."""
        async with self.transaction() as connection:
            return await self.append(connection, draft)

    async def verify(self, witnesses: Iterable[Checkpoint] = ()) -> VerifyResult:
        """The chain checked against its checkpoints, the witness file's and `witnesses` (others
        kept out of the database: `gateway.audit_witness`)."""
        kept = read_witness(self.witness, self.member_id) if self.witness else None
        outside = sorted([*witnesses, *([kept] if kept else [])], key=lambda c: c.sequence)
        # A whole chain takes seconds to read (about 30 us an entry). A SQLite file's engine has one
        # connection, which the scan would hold from every request meanwhile: it reads through a
        # connection of its own (WAL lets it read beside the writer). An in-memory database has
        # only the one.
        url = self.engine.url.render_as_string(hide_password=False)
        engine = create_engine(url) if sqlite_file(url) else self.engine
        async with self._verifying:
            try:
                async with engine.connect() as connection:
                    return await connection.run_sync(
                        self._verify, engine is not self.engine, outside
                    )
            finally:
                if engine is not self.engine:
                    await engine.dispose()

    def _verify(
        self, connection: Connection, own_connection: bool, outside: list[Checkpoint]
    ) -> VerifyResult:
        with self._one_snapshot(connection, own_connection) as snapshot:

            def entries() -> Iterator[AuditEntry]:
                rows = snapshot.execution_options(yield_per=1000).execute(
                    select(audit_entries).order_by(audit_entries.c.sequence)
                )
                for row in rows:
                    yield AuditEntry.from_row(dict(row._mapping))

            # Read as raw rows first: a malformed row then surfaces inside `verify`, at its place.
            rows = snapshot.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.sequence)
            ).all()
            stored = (Checkpoint.from_row(dict(row._mapping)) for row in rows)
            checkpoints = merged(stored, outside)
            return verify(
                entries(), checkpoints, self.verifying_keys, self.member_id, every=self.every
            )

    @contextmanager
    def _one_snapshot(self, connection: Connection, own_connection: bool) -> Iterator[Connection]:
        """Appends go on while the chain is read: both reads must see one snapshot, or an entry and
        its checkpoint committed between them look like a missing checkpoint. PostgreSQL: a
        REPEATABLE READ transaction. A SQLite file: our own BEGIN on the scan's own connection (WAL
        holds a read transaction's snapshot from its first read to its end; the driver never begins
        one for reads). An in-memory database's one connection is everyone's: nothing of ours."""
        if not self._sqlite:
            yield connection.execution_options(isolation_level="REPEATABLE READ")
        elif not own_connection:
            yield connection
        else:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN")
            try:
                yield connection
            finally:
                connection.exec_driver_sql("ROLLBACK")  # read only: nothing to keep

    async def latest_checkpoints(self, limit: int = 10) -> list[Checkpoint]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.sequence.desc()).limit(limit)
            )
            return [Checkpoint.from_row(dict(row._mapping)) for row in rows]


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _key_set(current: OKPKey, earlier: Iterable[OKPKey | ECKey]) -> KeySet:
    """The public keys, current first, each once."""
    keys: list[OKPKey | ECKey] = []
    seen: set[str] = set()
    for key in (current, *earlier):
        public = key.as_dict(private=False)
        thumbprint = key.thumbprint()
        if thumbprint not in seen:
            seen.add(thumbprint)
            keys.append(type(key).import_key(public))
    return KeySet(keys)  # type: ignore[arg-type]  # joserfc's KeySet takes any of its key types


def signing_key_history(signing_key_file: Path) -> Path:
    """Where the public keys this node signed with are kept: beside its signing key file."""
    return signing_key_file.with_name(f"{signing_key_file.stem}.history.json")


def remember_signing_key(signing_key_file: Path, key: OKPKey) -> list[OKPKey | ECKey]:
    """Add `key`'s public part to the history (a JWK Set) and return every key in it.

    Called where the signing key is loaded (the node at start, `cafx audit verify`). A history that
    cannot be read is left as it is (never overwritten, so no key in it is lost) and logged; one that
    cannot be written (a read-only key directory) is logged, and the keys read are still used."""
    path = signing_key_history(signing_key_file)
    try:
        known = _read_history(path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("signing key history not readable (%s)", type(exc).__name__)
        return []
    if any(earlier.thumbprint() == key.thumbprint() for earlier in known):
        return known
    remembered = [*known, OKPKey.import_key(key.as_dict(private=False))]
    try:
        _write_history(path, remembered)
    except OSError as exc:
        log.warning("signing key history not written (%s)", type(exc).__name__)
    return remembered


def _read_history(path: Path) -> list[OKPKey | ECKey]:
    if not path.exists():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    keys: list[OKPKey | ECKey] = []
    for item in document["keys"]:
        if not isinstance(item, dict):
            raise TypeError("a history entry is not a JWK")
        kind = OKPKey if item.get("kty") == "OKP" else ECKey
        key = kind.import_key(item)
        if key.is_private:  # only public keys belong here
            raise ValueError("the history holds a private key")
        keys.append(key)
    return keys


def _write_history(path: Path, keys: list[OKPKey | ECKey]) -> None:
    """Atomically (a temporary file, then a rename): a crash leaves the old or the new history."""
    text = json.dumps({"keys": [key.as_dict(private=False) for key in keys]}, indent=2) + "\n"
    write_atomically(path, text, 0o644)  # public keys
