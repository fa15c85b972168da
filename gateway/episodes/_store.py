"""Episodes at rest: each one sealed whole (AES-256-GCM envelope, bound to its row), found through
blind indexes, changed under optimistic concurrency.

Every method takes the caller's connection, so a change, its index rows and its audit entry commit
together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Episode, IdentifierError, Problem

from ..errors import Conflict, NotFound, SchemaViolation
from ..protection import (
    Candidate,
    KeyRing,
    Match,
    NameQuery,
    associated_data,
    match_candidates,
    open_,
    query_terms,
    record_terms,
    seal,
)
from ..storage._tables import episode_index, episodes

__all__ = ["EpisodeStore", "Stored", "child_ref"]


@dataclass(frozen=True, slots=True)
class Stored:
    episode: Episode
    revision: int


def child_ref(episode: Episode) -> str:
    """Who the child is, across episodes: the NHS number, else the UPN, else this episode.

    Matching treats distinct refs as distinct children, so two episodes of one child must share it.
    """
    identifiers = episode.child.identifiers
    return identifiers.nhs_number or identifiers.upn or f"episode:{episode.episode_id}"


def _bound(episode_id: str) -> bytes:
    return associated_data("episodes", episode_id, "document")


class EpisodeStore:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def _seal(self, episode: Episode) -> tuple[str, bytes]:
        document = episode.model_dump_json().encode("utf-8")
        sealed = seal(document, self.ring, _bound(str(episode.episode_id)))
        return sealed.key_id, sealed.to_bytes()

    def _open(self, episode_id: str, blob: bytes) -> Episode:
        return Episode.model_validate_json(open_(blob, self.ring, _bound(episode_id)))

    def _index_rows(self, episode: Episode) -> list[dict[str, str]]:
        candidate = Candidate.from_child(child_ref(episode), episode.child)
        episode_id = str(episode.episode_id)
        return [
            {"episode_id": episode_id, "kind": term.kind.value, "value": term.digest}
            for term in record_terms(candidate, self.ring)
        ]

    async def add(self, connection: AsyncConnection, episode: Episode) -> None:
        key_id, blob = self._seal(episode)
        now = dt.datetime.now(dt.UTC)
        await connection.execute(
            insert(episodes).values(
                id=str(episode.episode_id),
                home_authority=episode.home_authority,
                state=episode.state.value,
                source_format=episode.source.format,
                revision=1,
                created_at=now,
                updated_at=now,
                key_id=key_id,
                document=blob,
            )
        )
        rows = self._index_rows(episode)
        if rows:
            await connection.execute(insert(episode_index), rows)

    async def get(
        self, connection: AsyncConnection, episode_id: uuid.UUID | str, *, for_update: bool = False
    ) -> Stored:
        query = select(episodes.c.id, episodes.c.revision, episodes.c.document).where(
            episodes.c.id == str(episode_id)
        )
        if for_update:
            query = query.with_for_update()  # PostgreSQL row lock; SQLite serialises writers
        row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise NotFound("no such episode")
        return Stored(self._open(row.id, row.document), row.revision)

    async def replace(
        self, connection: AsyncConnection, stored: Stored, episode: Episode
    ) -> Stored:
        """Write a changed episode, if nobody changed it since `stored` was read."""
        episode_id = str(stored.episode.episode_id)
        if str(episode.episode_id) != episode_id:
            raise Conflict("an episode keeps its id")
        key_id, blob = self._seal(episode)
        result = await connection.execute(
            update(episodes)
            .where(episodes.c.id == episode_id, episodes.c.revision == stored.revision)
            .values(
                state=episode.state.value,
                revision=stored.revision + 1,
                updated_at=dt.datetime.now(dt.UTC),
                key_id=key_id,
                document=blob,
            )
        )
        if result.rowcount != 1:
            raise Conflict("the episode changed meanwhile; read it again and retry")
        await connection.execute(
            delete(episode_index).where(episode_index.c.episode_id == episode_id)
        )
        rows = self._index_rows(episode)
        if rows:
            await connection.execute(insert(episode_index), rows)
        return Stored(episode, stored.revision + 1)

    async def search(
        self, connection: AsyncConnection, query: NameQuery
    ) -> list[tuple[Match, Episode]]:
        """Candidates sharing any blind index with the query, decrypted and scored. An identifier
        that fails its check is refused `schema_violation`, with its rule (never its value)."""
        try:
            terms = query_terms(query, self.ring)
        except IdentifierError as exc:
            raise SchemaViolation(
                "an identifier is not valid", problems=[Problem((), exc.rule, exc.message)]
            ) from None
        if not terms:
            return []
        clauses = [
            (episode_index.c.kind == t.kind.value) & (episode_index.c.value == t.digest)
            for t in terms
        ]
        condition = clauses[0]
        for clause in clauses[1:]:
            condition = condition | clause
        ids = select(episode_index.c.episode_id).where(condition).distinct()
        rows = await connection.execute(
            select(episodes.c.id, episodes.c.document).where(episodes.c.id.in_(ids))
        )
        found = [self._open(row.id, row.document) for row in rows]
        by_ref: dict[str, list[Episode]] = {}
        for episode in found:
            by_ref.setdefault(child_ref(episode), []).append(episode)
        candidates = [Candidate.from_child(ref, group[0].child) for ref, group in by_ref.items()]
        results = []
        for match in match_candidates(query, candidates):
            for episode in by_ref[match.ref]:
                results.append((match, episode))
        return results
