"""The audit chain as the node stores it: one writer at a time appends sealed entries (and signed
checkpoints) inside the caller's transaction; `verify` streams the stored chain through
`gateway.audit.verify` in constant memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from joserfc.jwk import OKPKey
from sqlalchemy import Connection, insert, select, text
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
from .storage import create_engine, is_sqlite, sqlite_file
from .storage._tables import audit_checkpoints, audit_entries

__all__ = ["AuditLog"]

# Any fixed number: the PostgreSQL advisory lock every audit writer takes, across replicas.
_ADVISORY_LOCK = 0x43414658  # "CAFX"


class AuditLog:
    def __init__(self, engine: AsyncEngine, key: OKPKey, member_id: str, every: int) -> None:
        self.engine, self.key, self.member_id, self.every = engine, key, member_id, every
        self._sqlite = is_sqlite(engine.url.render_as_string())
        self._local = asyncio.Lock()  # SQLite is one process: a lock in it serialises writers
        # SQLite only (one process, one writer at a time): the committed head of the chain, so an
        # append need not read it back. None until first read; replicas on PostgreSQL always read.
        self._head: tuple[AuditEntry | None] | None = None
        # Each open transaction's last appended entry (None before its first). Per transaction: on
        # PostgreSQL several are open at once in one process, waiting for the lock, and one that
        # rolls back must not leave its entry as the head another appends to.
        self._appended: dict[AsyncConnection, AuditEntry | None] = {}
        self._verifying = asyncio.Lock()  # one whole-chain read at a time

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that may append audit entries (and anything else with them)."""
        async with self._local if self._sqlite else _nothing():
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
            if self._sqlite and last is not None:  # committed: the new head is known
                self._head = (last,)

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
        return entry

    async def record(self, draft: AuditDraft) -> AuditEntry:
        """Append in a transaction of its own (for refusals, where nothing else is written)."""
        async with self.transaction() as connection:
            return await self.append(connection, draft)

    async def verify(self) -> VerifyResult:
        # A whole chain takes seconds to read (about 30 us an entry). A SQLite file's engine has one
        # connection, which the scan would hold from every request meanwhile: it reads through a
        # connection of its own (WAL lets it read beside the writer). An in-memory database has
        # only the one.
        url = self.engine.url.render_as_string(hide_password=False)
        engine = create_engine(url) if sqlite_file(url) else self.engine
        async with self._verifying:
            try:
                async with engine.connect() as connection:
                    return await connection.run_sync(self._verify, engine is not self.engine)
            finally:
                if engine is not self.engine:
                    await engine.dispose()

    def _verify(self, connection: Connection, own_connection: bool) -> VerifyResult:
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
            checkpoints = (Checkpoint.from_row(dict(row._mapping)) for row in rows)
            return verify(entries(), checkpoints, self.key, self.member_id, every=self.every)

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
