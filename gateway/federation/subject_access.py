"""Subject access: every episode of one child this node holds or received, found by the child's match
keys (DESIGN 3.8: the sharing register is "queryable per child").

What a node holds is found by its blind indexes (`EpisodeStore.search`). What it received is another
borough's episode, kept only as sealed copies whose sections may not even include the child. So
whenever a request is answered with an episode (an existence check that found one, a disclosure),
what the request tells of the child is added to that episode's `received_children` row, sealed: the
practitioner's match keys, and the child section when the holder disclosed it. Its blind indexes
(`received_child_index`) are made as an episode's are. A disclosure asked by episode reference alone
is found through what an earlier request for the same episode told; a query scores the children so
found as a search scores held episodes (`Candidate.ref` is the holder's episode id). The row goes 7
years after the latest request answered with its episode (`retention`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Child, IdentifierError, Problem, normalise_nhs_number, normalise_upn

from ..episodes import EpisodeStore, wait_for_key
from ..errors import BadRequest, SchemaViolation
from ..protection import (
    POSSIBLE_MATCH,
    Candidate,
    KeyRing,
    Match,
    NameQuery,
    PersonName,
    ProtectionError,
    associated_data,
    match_candidates,
    open_,
    query_terms,
    record_terms,
    seal,
)
from ..storage import aware_utc, insert_on_conflict
from ..storage._tables import received_child_index, received_children

__all__ = [
    "CHILD_KEYS",
    "IDENTIFYING_KEYS",
    "ChildEpisode",
    "child_query",
    "children_named",
    "episodes_of_child",
    "received_about",
    "remember_child",
]

log = logging.getLogger("cafx.federation.subject_access")

# A child's match keys as a query string or a form names them (`GET /api/v1/episodes` and
# `/register`, the console), and those of them that an audit entry records: names, never values.
CHILD_KEYS = ("given_name", "family_name", "date_of_birth", "nhs_number", "upn")
IDENTIFYING_KEYS = frozenset({"date_of_birth", "nhs_number", "upn"})


def child_query(q: Mapping[str, str]) -> NameQuery:
    """The child named by `CHILD_KEYS` in `q`: an NHS number, a UPN, or given and family names
    with a date of birth. Raises `BadRequest` (`SchemaViolation` for a value of the wrong shape)."""
    given, family, born = q.get("given_name"), q.get("family_name"), q.get("date_of_birth")
    date_of_birth = None
    if born is not None:
        try:
            date_of_birth = dt.date.fromisoformat(born)
        except ValueError:
            raise SchemaViolation(
                "date_of_birth must be YYYY-MM-DD",
                problems=[Problem(("date_of_birth",), "date.format", "not an ISO date")],
            ) from None
    if not (q.get("nhs_number") or q.get("upn") or (given and family and date_of_birth)):
        raise BadRequest("search by nhs_number, upn, or given_name + family_name + date_of_birth")
    try:
        return NameQuery(
            given_names=given or "",
            family_name=family or "",
            date_of_birth=date_of_birth,
            nhs_number=q.get("nhs_number"),
            upn=q.get("upn"),
        )
    except ValueError:  # a family name without letters, and no identifier
        raise SchemaViolation(
            "family_name has no letters to match on",
            problems=[Problem(("family_name",), "name.letters", "a family name needs letters")],
        ) from None


def _identifier(value: object, normalise: Callable[[str], str]) -> str | None:
    """A match key's identifier as the index keeps it; one that fails its check indexes nothing
    (the holder matched on the rest)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return normalise(value)
    except IdentifierError:
        return None


def _an_episode_id(value: object) -> TypeGuard[str]:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def children_named(document: Mapping[str, Any]) -> list[Candidate]:
    """What an answered request tells of its child, as candidates for the episode its answer names:
    none when the answer names no episode (not found, ambiguous, refused, not answered yet)."""
    answer = document.get("answer") or {}
    episode_ref = answer.get("episode_ref")
    if answer.get("outcome") not in ("found", "disclosed") or not _an_episode_id(episode_ref):
        return []  # the other member's word: only an episode id spelt as ours are is kept
    children = []
    keys = document["input"].get("child")
    if keys:  # as `RequestInput` checked them
        children.append(
            Candidate(
                ref=episode_ref,
                given_names=keys["given_names"],
                family_name=keys["family_name"],
                date_of_birth=dt.date.fromisoformat(keys["date_of_birth"]),
                nhs_number=_identifier(keys.get("nhs_number"), normalise_nhs_number),
                upn=_identifier(keys.get("upn"), normalise_upn),
            )
        )
    disclosed = (answer.get("content") or {}).get("child")
    if disclosed is not None:
        try:
            children.append(Candidate.from_child(episode_ref, Child.model_validate(disclosed)))
        except ValidationError:  # `answer_is_sound` took the answer; the match keys still count
            pass
    return children


def _kept(child: Candidate) -> dict[str, Any]:
    return {
        "given_names": child.given_names,
        "family_name": child.family_name,
        "date_of_birth": None if child.date_of_birth is None else child.date_of_birth.isoformat(),
        "nhs_number": child.nhs_number,
        "upn": child.upn,
        "other_names": [[n.given_names, n.family_name] for n in child.other_names],
    }


def _candidate(episode_ref: str, kept: Mapping[str, Any]) -> Candidate:
    born = kept["date_of_birth"]
    return Candidate(
        ref=episode_ref,
        given_names=kept["given_names"],
        family_name=kept["family_name"],
        date_of_birth=None if born is None else dt.date.fromisoformat(born),
        nhs_number=kept["nhs_number"],
        upn=kept["upn"],
        other_names=tuple(PersonName(g, f) for g, f in kept["other_names"]),
    )


def _bound(episode_ref: str) -> bytes:
    return associated_data("received_children", episode_ref, "sealed")


def _opened(episode_ref: str, blob: bytes, ring: KeyRing) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = json.loads(open_(blob, ring, _bound(episode_ref)))
    return kept


# Distinct spellings of one episode's child kept at most (the latest): each answer reads and seals
# the whole list again, and a child is rarely asked for in more than a few ways.
MAX_TOLD = 32


async def remember_child(
    connection: AsyncConnection,
    document: Mapping[str, Any],
    ring: KeyRing,
    at: dt.datetime | None = None,
) -> bool:
    """Add what an answered request tells of its child to its episode's row; the row's 7 years
    count from the latest request answered with the episode (`at`: now, unless given). Whether
    the answer named an episode."""
    children = children_named(document)
    if not children:
        return False
    episode_ref, at = children[0].ref, at or dt.datetime.now(dt.UTC)
    told: list[dict[str, Any]] = []
    for kept in map(_kept, children):
        if kept not in told:
            told.append(kept)
    while True:
        row = (
            await connection.execute(
                select(received_children.c.sealed, received_children.c.updated_at)
                .where(received_children.c.episode_ref == episode_ref)
                .with_for_update()  # PostgreSQL: two answers for one episode add up, in turn
            )
        ).one_or_none()
        known = [] if row is None else _opened(episode_ref, row.sealed, ring)
        added = [k for k in told if k not in known]
        if row is not None and not added:  # told before: only the clock moves on
            await connection.execute(
                update(received_children)
                .where(
                    received_children.c.episode_ref == episode_ref,
                    received_children.c.updated_at < at,
                )
                .values(updated_at=at)
            )
            return True
        merged = [*known, *added][-MAX_TOLD:]
        sealed = seal(json.dumps(merged).encode(), ring, _bound(episode_ref))
        latest = at if row is None else max(at, aware_utc(row.updated_at))
        values = {"updated_at": latest, "key_id": sealed.key_id, "sealed": sealed.to_bytes()}
        if row is not None:
            # Compare and swap: SQLite takes no row lock, and `cafx register reindex` may write
            # beside the node; an addition made meanwhile is read again, never written over.
            changed = await connection.execute(
                update(received_children)
                .where(
                    received_children.c.episode_ref == episode_ref,
                    received_children.c.sealed == row.sealed,
                )
                .values(**values)
            )
            if changed.rowcount == 1:
                break
            continue
        inserted = await connection.execute(
            insert_on_conflict(connection, received_children)
            .values(episode_ref=episode_ref, **values)
            .on_conflict_do_nothing()
            .returning(received_children.c.episode_ref)
        )
        if inserted.first() is not None:
            break  # else another transaction made the row first: add to it
    terms = {
        (term.kind.value, term.digest)
        for kept in added
        for term in record_terms(_candidate(episode_ref, kept), ring)
    }
    if terms:
        await connection.execute(
            insert_on_conflict(connection, received_child_index)
            .values([{"episode_ref": episode_ref, "kind": k, "value": v} for k, v in sorted(terms)])
            .on_conflict_do_nothing()
        )
    return True


async def received_about(
    connection: AsyncConnection, query: NameQuery, ring: KeyRing
) -> list[Match]:
    """The received episodes whose child matches `query` at `POSSIBLE_MATCH` or above, one match
    each (its best), best first. The identifiers must have been checked (`query_terms` raises)."""
    terms = query_terms(query, ring)
    if not terms:
        return []
    meets = or_(
        *(
            (received_child_index.c.kind == t.kind.value)
            & (received_child_index.c.value == t.digest)
            for t in terms
        )
    )
    refs = select(received_child_index.c.episode_ref).where(meets).distinct()
    rows = await connection.execute(
        select(received_children.c.episode_ref, received_children.c.sealed).where(
            received_children.c.episode_ref.in_(refs)
        )
    )
    candidates = []
    for row in rows:
        try:
            told = _opened(row.episode_ref, row.sealed, ring)
        except ProtectionError as exc:  # as a search meets a row that does not open
            wait_for_key(exc)
            log.warning(
                "received episode %s left out: it does not open (%s)", row.episode_ref, exc.rule
            )
            continue
        candidates += [_candidate(row.episode_ref, kept) for kept in told]
    best: dict[str, Match] = {}
    for match in match_candidates(query, candidates, min_confidence=POSSIBLE_MATCH):
        best.setdefault(match.ref, match)  # best first: the first of each episode is its best
    return sorted(best.values(), key=lambda m: (-m.confidence, m.ref))


@dataclass(frozen=True, slots=True)
class ChildEpisode:
    """An episode found for a child: held here, or another member's that this borough received."""

    episode_id: str
    confidence: float
    basis: str  # `MatchBasis` value
    held: bool


async def episodes_of_child(
    connection: AsyncConnection, query: NameQuery, store: EpisodeStore
) -> list[ChildEpisode]:
    """Every episode of the child of `query` this node holds or received, held first, each list
    best match first. Raises `SchemaViolation` for an identifier that fails its check."""
    found = [
        ChildEpisode(str(e.episode_id), m.confidence, m.basis.value, held=True)
        for m, e in await store.search(connection, query)  # checks the identifiers first
    ]
    held = {f.episode_id for f in found}
    return found + [
        ChildEpisode(m.ref, m.confidence, m.basis.value, held=False)
        for m in await received_about(connection, query, store.ring)
        if m.ref not in held  # moved here since: listed as held
    ]
