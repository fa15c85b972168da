"""Subject access on the receiving side: which episodes this borough received are about a child
(DESIGN 3.8: the sharing register is "queryable per child").

What a node holds is found by its blind indexes (`EpisodeStore.search`). What it received is another
borough's episode, kept only as a sealed copy whose sections may not even include the child. So
when a request is answered with an episode (an existence check that found one, a disclosure), the
child it is about is indexed in `requested_children` under the request's id: the practitioner's
match keys, and the child section when the holder disclosed it. A query meets those rows by the same
blind indexes, opens the requests they point at, and scores their children as a search scores held
episodes; each child is the holder's episode (`Candidate.ref` is its id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Child, IdentifierError, Problem, normalise_nhs_number, normalise_upn

from ..errors import BadRequest, SchemaViolation
from ..protection import (
    POSSIBLE_MATCH,
    Candidate,
    KeyRing,
    Match,
    NameQuery,
    match_candidates,
    query_terms,
    record_terms,
)
from ..storage import insert_on_conflict
from ..storage._tables import requested_children

if TYPE_CHECKING:  # practitioner.py indexes through this module
    from ..episodes import EpisodeStore
    from .practitioner import PractitionerRequests

__all__ = [
    "CHILD_KEYS",
    "IDENTIFYING_KEYS",
    "ChildEpisode",
    "child_query",
    "children_named",
    "episodes_of_child",
    "index_requested_child",
    "requests_meeting",
    "scored",
]


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


def children_named(document: Mapping[str, Any]) -> list[Candidate]:
    """The child an answered request is about, as candidates for the episode its answer names: none
    when the answer names no episode (not found, ambiguous, refused, not answered yet)."""
    answer = document.get("answer") or {}
    episode_ref = answer.get("episode_ref")
    if not isinstance(episode_ref, str):
        return []
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


async def index_requested_child(
    connection: AsyncConnection, request_id: str, document: Mapping[str, Any], ring: KeyRing
) -> None:
    """Index the child of an answered request (nothing when the answer names no episode)."""
    rows = {
        (term.kind.value, term.digest)
        for child in children_named(document)
        for term in record_terms(child, ring)
    }
    if rows:
        await connection.execute(
            insert_on_conflict(connection, requested_children)
            .values([{"request_id": request_id, "kind": k, "value": v} for k, v in sorted(rows)])
            .on_conflict_do_nothing()
        )


async def requests_meeting(
    connection: AsyncConnection, query: NameQuery, ring: KeyRing
) -> list[str]:
    """The requests whose child shares a blind index with `query` (identifiers already checked by
    the search of held episodes that comes first)."""
    terms = query_terms(query, ring)
    if not terms:
        return []
    meets = or_(
        *(
            (requested_children.c.kind == t.kind.value) & (requested_children.c.value == t.digest)
            for t in terms
        )
    )
    rows = await connection.execute(select(requested_children.c.request_id).where(meets).distinct())
    return sorted(row.request_id for row in rows)


def scored(query: NameQuery, documents: list[Mapping[str, Any]]) -> list[Match]:
    """Each received episode's best match with `query` at `POSSIBLE_MATCH` or above, best first."""
    best: dict[str, Match] = {}
    candidates = [child for document in documents for child in children_named(document)]
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
    connection: AsyncConnection,
    query: NameQuery,
    store: EpisodeStore,
    requests: PractitionerRequests,
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
        for m in await requests.received_about(connection, query)
        if m.ref not in held  # moved here since: listed as held
    ]
