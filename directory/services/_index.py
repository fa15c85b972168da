"""An in-memory index of services for search (Open Referral UK query parameters plus ours).

Columns are numpy arrays, one entry per service, so each filter is one vectorised pass over 20,000
services (microseconds) rather than a Python loop: ages, authority, taxonomy term, words of the
text (each query word matches the indexed words it begins, from three letters), distance from a point
to the nearest of a service's locations, proximity. Ranking: text relevance, then distance, then name.
Eligibility is worked out once per (authority, access rule) pair and only for the page returned.

Ages follow the Open Referral UK API: `minimum_age=X` keeps services whose own minimum age is at least
X, `maximum_age=Y` those whose own maximum is at most Y (so both keep the services whose whole range
lies within X..Y). Ours, `age=N`, keeps the services a child aged N may attend: minimum <= N <= maximum.
A service that states no minimum age takes children from birth (0); one that states no maximum has no
upper limit.

The index is immutable: the node builds a new one after an import and swaps it in.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from ._access import Access
from ._eligibility import Child, Verdict, eligibility
from ._geo import EARTH_RADIUS_M, locate_postcode
from ._oruk import ServiceRecord
from ._text import tokens, unmatchable, weighted_tokens

__all__ = ["Hit", "Query", "SearchResult", "ServiceIndex", "judge"]

_SEARCHABLE = frozenset({"active", "temporarily closed"})  # inactive and defunct are not offered
_PREFIX_FROM = 3

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Query:
    text: str | None = None
    taxonomy_term_id: str | None = None
    minimum_age: float | None = None  # ORUK: the service's minimum age is at least this
    maximum_age: float | None = None  # ORUK: the service's maximum age is at most this
    age: float | None = None  # ours: the service takes a child of this age
    origin: tuple[float, float] | None = None  # lat, lon (degrees)
    proximity_m: float | None = None
    authority: str | None = None
    child: Child | None = None
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True, slots=True)
class Hit:
    record: ServiceRecord
    authority: str
    relevance: float
    distance_m: float | None
    verdict: Verdict | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    hits: list[Hit] = field(default_factory=list)


def _points(record: ServiceRecord) -> list[tuple[float, float]]:
    """Where a service is: each location's coordinates, or else its address's district centroid."""
    found = []
    for at in record.service.service_at_locations:
        location = at.location
        if location is None:
            continue
        lat, lon = location.latitude, location.longitude
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            found.append((float(lat), float(lon)))
            continue
        for address in location.addresses:
            if centroid := locate_postcode(address.postal_code):
                found.append(centroid)
                break
    return found


def judge(query: Query, authority: str, records: Sequence[ServiceRecord]) -> list[Hit]:
    """The services of `authority` among `records` that `query` finds, scored as the index scores
    its own hits (relevance, distance, verdict from the records themselves), best first. How a node
    reads what another member sent: it takes neither that member's figures nor its filtering on
    trust (a member on another release may ignore a parameter it does not know)."""
    if not records:
        return []
    index = ServiceIndex([(authority, record) for record in records])
    return index.search(replace(query, page=1, per_page=len(records))).hits


class ServiceIndex:
    def __init__(self, entries: Sequence[tuple[str, ServiceRecord]]) -> None:
        """`entries`: (authority GSS code, record) for every service the node holds."""
        self._records = [record for _, record in entries]
        self._authorities = [authority for authority, _ in entries]
        n = len(entries)
        self._codes = {a: i for i, a in enumerate(sorted(set(self._authorities)))}
        self._authority: Ints = np.array([self._codes[a] for a in self._authorities], np.int64)
        classes: dict[tuple[str, Access], int] = {}
        self._class: Ints = np.array(
            [classes.setdefault((a, r.access), len(classes)) for a, r in entries], np.int64
        )
        self._classes = list(classes)
        self._searchable: Bools = np.array(
            [r.service.status in _SEARCHABLE for r in self._records], np.bool_
        )
        self._min_age: Floats = np.array(
            [
                0.0 if r.service.minimum_age is None else r.service.minimum_age
                for r in self._records
            ],
            np.float64,
        )
        self._max_age: Floats = np.array(
            [
                math.inf if r.service.maximum_age is None else r.service.maximum_age
                for r in self._records
            ],
            np.float64,
        )
        order = sorted(range(n), key=lambda i: (self._records[i].service.name.lower(), i))
        self._name_rank: Ints = np.empty(n, np.int64)
        self._name_rank[order] = np.arange(n)
        self._build_points()
        self._build_words()
        self._build_terms()

    def _build_points(self) -> None:
        owners, lats, lons = [], [], []
        for number, record in enumerate(self._records):
            for lat, lon in _points(record):
                owners.append(number)
                lats.append(lat)
                lons.append(lon)
        self._pt_owner: Ints = np.array(owners, np.int64)
        self._pt_lat: Floats = np.radians(np.array(lats, np.float64))
        self._pt_lon: Floats = np.radians(np.array(lons, np.float64))
        self._pt_cos: Floats = np.cos(self._pt_lat)
        located = np.unique(self._pt_owner)
        self._located: Ints = located
        self._starts: Ints = np.searchsorted(self._pt_owner, located)

    def _build_words(self) -> None:
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for number, record in enumerate(self._records):
            for word, weight in weighted_tokens(record.service).items():
                ids, weights = postings.setdefault(word, ([], []))
                ids.append(number)
                weights.append(weight)
        self._vocabulary = sorted(postings)
        self._postings = {
            word: (np.array(ids, np.int64), np.array(weights, np.float64))
            for word, (ids, weights) in postings.items()
        }

    def _build_terms(self) -> None:
        terms: dict[str, set[int]] = {}
        for number, record in enumerate(self._records):
            for attribute in record.service.attributes:
                keys = {attribute.taxonomy_term_id}
                if (term := attribute.taxonomy_term) is not None:
                    keys |= {term.id, term.term}
                for key in keys - {None}:
                    assert key is not None  # noqa: S101 - for the type checker
                    terms.setdefault(key, set()).add(number)
        self._terms = {key: np.array(sorted(ids), np.int64) for key, ids in terms.items()}

    def __len__(self) -> int:
        return len(self._records)

    @property
    def authorities(self) -> frozenset[str]:
        return frozenset(self._codes)

    def _word_scores(self, word: str) -> tuple[Bools, Floats]:
        """Which services hold `word` (or, from three letters, a word it begins) and how strongly."""
        n = len(self._records)
        found: Bools = np.zeros(n, np.bool_)
        score: Floats = np.zeros(n, np.float64)
        if len(word) < _PREFIX_FROM:
            matches = [word] if word in self._postings else []
        else:
            start = bisect.bisect_left(self._vocabulary, word)
            end = bisect.bisect_left(self._vocabulary, word + "\uffff", lo=start)
            matches = self._vocabulary[start:end]
        for match in matches:
            ids, weights = self._postings[match]
            found[ids] = True
            score[ids] = np.maximum(score[ids], weights)  # ids of one word are distinct
        return found, score

    def distances(self, lat: float, lon: float) -> Floats:
        """Metres from (lat, lon) to each service's nearest location (inf where none is known)."""
        result: Floats = np.full(len(self._records), np.inf)
        if not len(self._pt_owner):
            return result
        phi, lam = math.radians(lat), math.radians(lon)
        a = (
            np.sin((self._pt_lat - phi) / 2) ** 2
            + math.cos(phi) * self._pt_cos * np.sin((self._pt_lon - lam) / 2) ** 2
        )
        metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        result[self._located] = np.minimum.reduceat(metres, self._starts)
        return result

    def search(self, query: Query) -> SearchResult:
        mask = self._searchable.copy()
        if query.authority is not None:
            code = self._codes.get(query.authority, -1)
            mask &= self._authority == code
        if query.taxonomy_term_id is not None:
            term: Bools = np.zeros(len(self._records), np.bool_)
            term[self._terms.get(query.taxonomy_term_id, np.empty(0, np.int64))] = True
            mask &= term
        if query.minimum_age is not None:
            mask &= self._min_age >= query.minimum_age
        if query.maximum_age is not None:
            mask &= self._max_age <= query.maximum_age
        if query.age is not None:
            mask &= (self._min_age <= query.age) & (self._max_age >= query.age)
        if query.text is not None and unmatchable(query.text):
            mask[:] = False
        relevance: Floats = np.zeros(len(self._records), np.float64)
        for word in dict.fromkeys(tokens(query.text or "")):
            found, score = self._word_scores(word)
            mask &= found
            relevance += score
        distance: Floats | None = None
        if query.origin is not None:
            distance = self.distances(*query.origin)
            if query.proximity_m is not None:
                mask &= distance <= query.proximity_m
        chosen = np.flatnonzero(mask)
        far = distance[chosen] if distance is not None else np.zeros(len(chosen))
        order = np.lexsort((self._name_rank[chosen], far, -relevance[chosen]))
        first = (query.page - 1) * query.per_page
        page = chosen[order[first : first + query.per_page]]
        verdicts: dict[int, Verdict] = {}
        hits = []
        for number in page.tolist():
            verdict = None
            if query.child is not None:
                klass = int(self._class[number])
                if klass not in verdicts:
                    authority, access = self._classes[klass]
                    verdicts[klass] = eligibility(authority, access, query.child)
                verdict = verdicts[klass]
            metres = None if distance is None else float(distance[number])
            hits.append(
                Hit(
                    self._records[number],
                    self._authorities[number],
                    float(relevance[number]),
                    metres if metres is not None and math.isfinite(metres) else None,
                    verdict,
                )
            )
        return SearchResult(len(chosen), hits)
