"""Local service search: queries per second and p50/p99 latency over 20,000 services (the 33 London
authorities' generated FIS records) for a mixed query set: words of text, a child's age, distance from
a postcode district with or without a proximity limit, eligibility for a child living in one borough
and at school in another, now and then one authority. Target: p99 under 20 ms.

In process, over the same `ServiceIndex` the node searches (no HTTP). Baseline, measured in the same
run on the same services and queries: a plain linear scan in Python that checks each service in turn
(words, ages, distance by haversine, eligibility) and sorts the matches the same way.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass

from directory.services import (
    Child,
    Query,
    ServiceIndex,
    ServiceRecord,
    district_centroids,
    eligibility,
    generate_services,
    haversine_m,
    stored_record,
)
from directory.services._text import tokens, weighted_tokens
from schemas import authority_by_gss

from ._report import Figure

SERVICES = 20_000
QUERIES = 2_000
BASELINE_QUERIES = 100
LONDON = [f"E09{n:06d}" for n in range(1, 34)]
WORDS = ("youth", "club", "play", "parenting", "counselling", "send", "advice", "swim", "family")


def _services() -> list[tuple[str, ServiceRecord]]:
    per_borough = math.ceil(SERVICES / len(LONDON))
    entries = []
    for gss in LONDON:
        authority = authority_by_gss(gss)
        name = authority.name if authority else gss
        for document in generate_services(gss, name, per_borough, seed="bench"):
            entries.append((gss, stored_record(document)))
    return entries[:SERVICES]


def _queries(rng: random.Random) -> list[Query]:
    districts = list(district_centroids())
    queries = []
    for _ in range(QUERIES):
        age = rng.randint(0, 18) if rng.random() < 0.7 else None
        origin = district_centroids()[rng.choice(districts)] if rng.random() < 0.8 else None
        queries.append(
            Query(
                text=" ".join(rng.sample(WORDS, rng.randint(1, 2))) if rng.random() < 0.6 else None,
                age=age,
                origin=origin,
                proximity_m=rng.choice((1_000.0, 3_000.0, 10_000.0))
                if origin and rng.random() < 0.5
                else None,
                authority=rng.choice(LONDON) if rng.random() < 0.2 else None,
                child=Child(rng.choice(LONDON), rng.choice(LONDON)) if rng.random() < 0.7 else None,
                per_page=20,
            )
        )
    return queries


@dataclass
class _Scan:
    """The baseline: every service checked in turn, in plain Python."""

    entries: list[tuple[str, ServiceRecord]]

    def __post_init__(self) -> None:
        self.words = [weighted_tokens(r.service) for _, r in self.entries]
        self.points = [
            [
                (float(at.location.latitude), float(at.location.longitude))
                for at in r.service.service_at_locations
                if at.location
                and at.location.latitude is not None
                and at.location.longitude is not None
            ]
            for _, r in self.entries
        ]

    def search(self, query: Query) -> int:
        wanted = tokens(query.text or "")
        found = []
        for number, (authority, record) in enumerate(self.entries):
            service = record.service
            if service.status not in ("active", "temporarily closed"):
                continue
            if query.authority and authority != query.authority:
                continue
            if query.age is not None and not (
                (service.minimum_age or 0)
                <= query.age
                <= (math.inf if service.maximum_age is None else service.maximum_age)
            ):
                continue
            words = self.words[number]
            score = 0.0
            for word in wanted:
                best = max((w for key, w in words.items() if key.startswith(word)), default=0.0)
                if not best:
                    break
                score += best
            else:
                distance = math.inf
                if query.origin is not None:
                    distance = min(
                        (haversine_m(*query.origin, lat, lon) for lat, lon in self.points[number]),
                        default=math.inf,
                    )
                    if query.proximity_m is not None and distance > query.proximity_m:
                        continue
                found.append((-score, distance, service.name.lower(), number))
        found.sort()
        for *_, number in found[: query.per_page]:
            if query.child is not None:
                authority, record = self.entries[number]
                eligibility(authority, record.access, query.child)
        return len(found)


def _latencies(search: object, queries: list[Query]) -> list[float]:
    timings = []
    for query in queries:
        started = time.perf_counter()
        search(query)  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return timings


def _p(timings: list[float], q: int) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[q - 1] * 1000


def run() -> list[Figure]:
    entries = _services()
    index = ServiceIndex(entries)
    queries = _queries(random.Random(7))  # noqa: S311 - a benchmark's query mix
    _latencies(index.search, queries[:200])  # warm up
    timings = _latencies(index.search, queries)
    scan = _Scan(entries)
    baseline = _latencies(scan.search, queries[:BASELINE_QUERIES])
    label = f"{len(entries):,} services, mixed queries"
    scan_label = "linear scan in Python, same services and queries"
    return [
        Figure(
            f"directory local search: queries/s ({label})",
            len(timings) / sum(timings),
            "queries/s",
            scan_label,
            len(baseline) / sum(baseline),
        ),
        Figure(
            f"directory local search: p50 latency ({label})",
            _p(timings, 50),
            "ms",
            scan_label,
            _p(baseline, 50),
        ),
        Figure(
            f"directory local search: p99 latency ({label})",
            _p(timings, 99),
            "ms",
            scan_label,
            _p(baseline, 99),
            target="< 20 ms",
        ),
    ]
