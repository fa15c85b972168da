"""Episodes at rest: each one sealed whole (AES-256-GCM envelope, bound to its row), found through
blind indexes, changed under optimistic concurrency.

Every method takes the caller's connection, so a change, its index rows and its audit entry commit
together or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from pydantic import ValidationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Episode, EpisodeState, IdentifierError, Problem, problems_from

from ..errors import Conflict, NotFound, PeerUnavailable, SchemaViolation
from ..protection import (
    POSSIBLE_MATCH,
    Candidate,
    KeyRing,
    Match,
    NameQuery,
    ProtectionError,
    associated_data,
    match_candidates,
    name_tokens,
    open_,
    query_terms,
    record_terms,
    seal,
)
from ..storage._tables import episode_index, episodes

__all__ = ["EpisodeStore", "Stored", "child_ref", "wait_for_key"]

log = logging.getLogger("cafx.episodes")

_SAMPLED = 5  # indexed episodes tried, in turn, when the index key is first checked


@dataclass(frozen=True, slots=True)
class Stored:
    episode: Episode
    revision: int


def child_ref(episode: Episode) -> str:
    """Who the child is, across episodes, on this episode alone: the NHS number, else this episode.

    Matching treats distinct refs as distinct children, so two episodes of one child must share it.
    Not the UPN: UPNs are re-issued in error, and a UPN shared by two children would make them one
    (`EpisodeStore.search` links episodes on a UPN only when birth date and given name agree too).
    """
    nhs_number = episode.child.identifiers.nhs_number
    return f"nhs:{nhs_number}" if nhs_number else f"episode:{episode.episode_id}"


def _upn_key(episode: Episode) -> tuple[str, dt.date, str] | None:
    """UPN, birth date and first given name: twins share a birthday, and can share a UPN in error."""
    child = episode.child
    upn, given = child.identifiers.upn, name_tokens(child.given_names)
    if not upn or child.date_of_birth is None or not given:
        return None
    return "".join(upn.split()).upper(), child.date_of_birth, given[0]


def _children_of(episodes: Sequence[Episode]) -> dict[str, str]:
    """Episode id -> child ref among `episodes`: `child_ref`, except that an episode without an NHS
    number joins the other episodes with its UPN, birth date and first given name: the child with
    an NHS number among them when there is exactly one, else those without one (the ref of the
    first by id). Two NHS numbers are never one child.
    """
    ordered = sorted(episodes, key=lambda e: str(e.episode_id))
    by_upn: dict[tuple[str, dt.date, str], list[str]] = {}
    for episode in ordered:
        key = _upn_key(episode)
        if key is not None:
            by_upn.setdefault(key, []).append(child_ref(episode))
    refs = {}
    for episode in ordered:
        ref, key = child_ref(episode), _upn_key(episode)
        if key is not None and not episode.child.identifiers.nhs_number:
            numbered = {r for r in by_upn[key] if r.startswith("nhs:")}
            if len(numbered) == 1:
                (ref,) = numbered
            elif not numbered:
                ref = by_upn[key][0]
        refs[str(episode.episode_id)] = ref
    return refs


def _bound(episode_id: str) -> bytes:
    return associated_data("episodes", episode_id, "document")


def wait_for_key(exc: ProtectionError) -> None:
    """Raise `not_ready` when a row would not open because it is sealed under a key this node has
    not got yet (a rotation not yet copied here: it will open); else return, and the caller leaves
    the row out."""
    if exc.rule == "kek.unknown":
        raise PeerUnavailable(
            "this node has not got the key some records are sealed under (a key rotation not yet"
            " copied here): try again once it has",
            code="not_ready",
        ) from None


class EpisodeStore:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        # Set by `check_index_key` once the database's index key was recorded or compared.
        self.index_key_checked = False

    def _seal(self, episode: Episode) -> tuple[str, bytes]:
        document = episode.model_dump_json().encode("utf-8")
        sealed = seal(document, self.ring, _bound(str(episode.episode_id)))
        return sealed.key_id, sealed.to_bytes()

    def _open(self, episode_id: str, blob: bytes) -> Episode:
        return Episode.model_validate_json(open_(blob, self.ring, _bound(episode_id)))

    def open_stored(self, episode_id: str, blob: bytes) -> Episode:
        """A stored row's document, opened and validated (no I/O: callable off the event loop).
        Raises `ProtectionError` or `ValidationError` for one that no longer opens."""
        return self._open(episode_id, blob)

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
                archived_at=now if episode.state is EpisodeState.ARCHIVED else None,
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
        now = dt.datetime.now(dt.UTC)
        archived_at = (  # the first time it is archived: the start of its 6 years archived
            func.coalesce(episodes.c.archived_at, now)
            if episode.state is EpisodeState.ARCHIVED
            else None
        )
        result = await connection.execute(
            update(episodes)
            .where(episodes.c.id == episode_id, episodes.c.revision == stored.revision)
            .values(
                state=episode.state.value,
                revision=stored.revision + 1,
                updated_at=now,
                key_id=key_id,
                document=blob,
                archived_at=archived_at,
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

    async def purge(self, connection: AsyncConnection, stored: Stored) -> None:
        """Delete an episode and its blind indexes, if nobody changed it since `stored` was read
        (the caller's transaction rolls back on `Conflict`)."""
        episode_id = str(stored.episode.episode_id)
        await connection.execute(
            delete(episode_index).where(episode_index.c.episode_id == episode_id)
        )
        result = await connection.execute(
            delete(episodes).where(
                episodes.c.id == episode_id, episodes.c.revision == stored.revision
            )
        )
        if result.rowcount != 1:
            raise Conflict("the episode changed meanwhile; read it again and retry")

    async def unreadable(
        self, connection: AsyncConnection
    ) -> AsyncIterator[tuple[str, list[Problem]]]:
        """Each stored episode that no longer opens, with why: a value sealed under a key not in
        the ring (`kek.unknown` and the like), or a document the national models now refuse (a
        rule added since it was stored, such as `consents.duplicate_id`). Ids and rules only."""
        rows = await connection.stream(select(episodes.c.id, episodes.c.document))
        async for row in rows:
            try:
                self._open(row.id, row.document)
            except ProtectionError as exc:
                yield row.id, [Problem((), exc.rule, exc.message)]
            except ValidationError as exc:
                yield row.id, problems_from(exc)

    async def indexed_with_this_key(self, connection: AsyncConnection) -> bool | None:
        """Were the stored blind indexes made with this ring's index key? One indexed episode is
        opened and indexed again: under another key no digest agrees (any one agreeing is enough,
        so an index kind added or renormalised since does not count against it). The first of a
        few indexed episodes that opens is taken. None when nothing is indexed yet, or none of
        them opens (a KEK problem or a newer rule, not this one)."""
        indexed = select(episode_index.c.episode_id).distinct().limit(_SAMPLED)
        rows = await connection.execute(
            select(episodes.c.id, episodes.c.document).where(episodes.c.id.in_(indexed))
        )
        for row in rows.all():  # the first of a few that opens
            try:
                episode = self._open(row.id, row.document)
            except (ProtectionError, ValidationError):
                continue
            break
        else:
            return None
        expected = {(r["kind"], r["value"]) for r in self._index_rows(episode)}
        if not expected:
            return None
        stored = await connection.execute(
            select(episode_index.c.kind, episode_index.c.value).where(
                episode_index.c.episode_id == row.id
            )
        )
        return not expected.isdisjoint((r.kind, r.value) for r in stored)

    async def search(
        self, connection: AsyncConnection, query: NameQuery
    ) -> list[tuple[Match, Episode]]:
        """Candidates sharing any blind index with the query, decrypted and scored. An identifier
        that fails its check is refused `schema_violation`, with its rule (never its value). A
        candidate that no longer opens (`cafx episodes check` lists it) is left out with a
        warning naming its id and rule, so it does not fail every search that meets it."""
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
        found = []
        for row in rows:
            try:
                found.append(self._open(row.id, row.document))
            except ProtectionError as exc:
                wait_for_key(exc)
                log.warning(
                    "episode %s left out of a search: it does not open (%s)", row.id, exc.rule
                )
            except ValidationError as exc:
                rules = ", ".join(sorted({p.rule for p in problems_from(exc)}))
                log.warning("episode %s left out of a search: it does not open (%s)", row.id, rules)
        return _best_per_child(query, found)


def _best_per_child(query: NameQuery, found: Sequence[Episode]) -> list[tuple[Match, Episode]]:
    """Every episode's child scored on its own; each child keeps its best score, paired with every
    one of its episodes (a renamed child's older episode too); best child first, then by episode id.
    """
    refs = _children_of(found)
    candidates = [Candidate.from_child(str(e.episode_id), e.child) for e in found]
    best: dict[str, Match] = {}
    postcodes: dict[str, set[str | None]] = {}
    for match in match_candidates(query, candidates, min_confidence=0.0):  # best first
        ref = refs[match.ref]
        postcodes.setdefault(ref, set()).add(match.postcode)
        if ref not in best:
            best[ref] = replace(match, ref=ref)
    for ref, agreed in postcodes.items():  # the child's, from any of its records (`judge`)
        postcode = "match" if "match" in agreed else "conflict" if agreed == {"conflict"} else None
        best[ref] = replace(best[ref], postcode=postcode)
    kept = [m for m in best.values() if m.confidence >= POSSIBLE_MATCH]
    kept.sort(key=lambda m: (-m.confidence, m.ref))
    episodes = sorted(found, key=lambda e: str(e.episode_id))
    return [(m, e) for m in kept for e in episodes if refs[str(e.episode_id)] == m.ref]
