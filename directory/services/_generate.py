"""Plausible Family Information Service records for a borough, generated from a seed (the demo data
and the benchmark's 20,000 services): varied ages, needs, costs, opening times and access rules, at
places in the borough's own postcode districts. Every record is a valid Open Referral UK service."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from typing import Any

from ._access import Access, access_attributes
from ._geo import district_centroids

__all__ = ["BOROUGH_DISTRICTS", "NEEDS_TAXONOMY", "PAN_LONDON", "generate_services"]

NEEDS_TAXONOMY = "cafx-needs"
_NAMESPACE = uuid.UUID("0c6f8d3e-2f55-4d1e-8a4c-5b8a7f0d9e21")

# The districts each demo borough's services sit in (a district may straddle two boroughs).
BOROUGH_DISTRICTS: dict[str, tuple[str, ...]] = {
    "E09000007": ("NW1", "NW3", "NW5", "NW6", "WC1H", "WC1N", "WC1X", "WC1E", "N6", "N19", "N1C"),
    "E09000012": ("E5", "E8", "E9", "N16", "N1", "E2"),
    "E09000019": ("N1", "N4", "N5", "N7", "N19", "EC1V", "EC1R"),
}
PAN_LONDON = ("Pan-London youth passport", frozenset(BOROUGH_DISTRICTS) | {"E09000030"})

_NEEDS = {
    "early-years": "Early years",
    "parenting": "Parenting support",
    "speech-language": "Speech, language and communication",
    "send": "Special educational needs and disabilities",
    "mental-health": "Emotional wellbeing and mental health",
    "youth": "Youth services",
    "domestic-abuse": "Domestic abuse",
    "housing": "Housing",
    "substance-misuse": "Drugs and alcohol",
    "school-attendance": "Education and attendance",
    "young-carers": "Young carers",
    "family-support": "Family support",
    "financial-help": "Money and benefits",
    "health": "Health",
    "sport-leisure": "Sport and leisure",
}

# name, needs, (minimum age, maximum age), what it offers
_KINDS: tuple[tuple[str, tuple[str, ...], tuple[int, int], str], ...] = (
    ("Stay and Play", ("early-years",), (0, 5), "play sessions for babies, toddlers and carers"),
    ("Baby Massage", ("early-years", "health"), (0, 1), "a five-week course for new parents"),
    ("Speech and Language Drop-in", ("speech-language", "send"), (1, 7), "advice from therapists"),
    ("Parenting Course", ("parenting", "family-support"), (0, 16), "a group course for parents"),
    ("Youth Club", ("youth", "sport-leisure"), (11, 19), "evening activities and trips"),
    ("Homework Club", ("school-attendance",), (7, 16), "quiet study with volunteer tutors"),
    ("Young Carers Group", ("young-carers", "mental-health"), (8, 18), "respite and peer support"),
    ("Emotional Wellbeing Drop-in", ("mental-health",), (5, 18), "brief help, no referral needed"),
    ("Counselling for Young People", ("mental-health",), (11, 25), "up to twelve sessions"),
    ("Domestic Abuse Family Support", ("domestic-abuse", "family-support"), (0, 18), "advocacy"),
    ("Housing Advice for Young People", ("housing",), (16, 25), "homelessness prevention"),
    ("Young People's Drug and Alcohol Service", ("substance-misuse",), (11, 21), "confidential"),
    ("SEND Information, Advice and Support", ("send",), (0, 25), "impartial advice on EHC plans"),
    ("Holiday Activities and Food", ("sport-leisure", "financial-help"), (5, 16), "free meals"),
    ("Family Hub", ("family-support", "parenting", "early-years"), (0, 19), "one front door"),
    ("Breakfast Club", ("school-attendance", "financial-help"), (4, 11), "before school"),
    ("Football Coaching", ("sport-leisure",), (6, 16), "weekly coached sessions"),
    ("Benefits and Debt Advice", ("financial-help",), (16, 99), "for parents and carers"),
    ("Health Visiting Clinic", ("health", "early-years"), (0, 5), "weighing and development"),
    ("School Nursing Drop-in", ("health",), (5, 19), "confidential health advice"),
    ("Mentoring Scheme", ("youth", "mental-health"), (10, 18), "a trained adult mentor"),
    ("Supplementary School", ("school-attendance",), (5, 16), "weekend lessons"),
    ("Autism Parents Group", ("send", "parenting"), (0, 18), "support for parents and carers"),
    ("Swimming Lessons", ("sport-leisure", "health"), (4, 14), "learn-to-swim courses"),
)
_PLACES = ("Community Centre", "Library", "Children's Centre", "Youth Hub", "Family Hub", "Clinic")
_PROVIDERS = ("Council", "Family Hubs", "Community Trust", "Youth Partnership", "Health NHS Trust")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA")


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _access(rng: random.Random) -> Access:
    roll = rng.random()
    if roll < 0.45:
        return Access("universal")
    if roll < 0.85:
        return Access("residents_only")
    return Access("cross_borough_protocol", PAN_LONDON[0], PAN_LONDON[1])


def _location(rng: random.Random, district: str, borough: str) -> dict[str, Any]:
    lat, lon = district_centroids()[district]
    location_id = _id(rng)
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    return {
        "id": location_id,
        "location_type": "physical",
        "name": f"{district} {rng.choice(_PLACES)}",
        "latitude": round(lat + rng.uniform(-0.006, 0.006), 5),
        "longitude": round(lon + rng.uniform(-0.009, 0.009), 5),
        "addresses": [
            {
                "id": _id(rng),
                "location_id": location_id,
                "address_1": f"{rng.randint(1, 240)} {rng.choice(('High', 'Park', 'Church'))} Road",
                "city": "London",
                "region": borough,
                "state_province": "Greater London",
                "postal_code": f"{district} {rng.randint(1, 9)}{rng.choice(letters)}"
                f"{rng.choice(letters)}",
                "country": "GB",
                "address_type": "physical",
            }
        ],
    }


def _term(service_id: str, need: str) -> dict[str, Any]:
    term_id = str(uuid.uuid5(_NAMESPACE, f"{NEEDS_TAXONOMY}/{need}"))
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"{service_id}/{need}")),
        "link_type": "need",
        "link_id": service_id,
        "taxonomy_term_id": term_id,
        "taxonomy_term": {
            "id": term_id,
            "name": _NEEDS[need],
            "description": _NEEDS[need],
            "taxonomy": NEEDS_TAXONOMY,
            "term": need,
        },
    }


def _service(rng: random.Random, authority: str, borough: str, districts: Sequence[str]) -> Any:
    name, needs, (low, high), offer = rng.choice(_KINDS)
    service_id = _id(rng)
    district = rng.choice(districts)
    provider = f"{borough} {rng.choice(_PROVIDERS)}"
    low = max(0, low + rng.choice((0, 0, 1)))
    high = max(low, high - rng.choice((0, 0, 1, 2)))
    access = _access(rng)
    opens = rng.choice((9, 10, 13, 15, 16))
    modified = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        minutes=rng.randint(0, 500_000)
    )
    free = rng.random() < 0.7
    slug = provider.lower().replace(" ", "")
    document: dict[str, Any] = {
        "id": service_id,
        "organization_id": str(uuid.uuid5(_NAMESPACE, provider)),
        "name": f"{district} {name}",
        "description": f"{name} in {borough}: {offer}. Ages {low} to {high}.",
        "url": f"https://fis.{borough.lower()}.example/services/{service_id}",
        "email": f"{slug}@{borough.lower()}.example",
        "status": rng.choices(("active", "temporarily closed", "inactive"), (95, 3, 2))[0],
        "minimum_age": low,
        "maximum_age": high,
        "last_modified": modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "organization": {
            "id": str(uuid.uuid5(_NAMESPACE, provider)),
            "name": provider,
            "description": f"{provider}, a provider in {borough}",
        },
        "service_at_locations": [
            {
                "id": _id(rng),
                "service_id": service_id,
                "location": _location(rng, district, borough),
            }
        ],
        "schedules": [
            {
                "id": _id(rng),
                "service_id": service_id,
                "freq": "WEEKLY",
                "byday": ",".join(sorted(rng.sample(_DAYS, rng.randint(1, 3)), key=_DAYS.index)),
                "opens_at": f"{opens:02d}:00:00",
                "closes_at": f"{opens + rng.choice((2, 3, 4)):02d}:00:00",
            }
        ],
        "cost_options": [
            {
                "id": _id(rng),
                "service_id": service_id,
                "option": "Free" if free else "Per session",
                "amount": 0 if free else rng.choice((2, 3, 5, 8)),
                "amount_description": "No charge" if free else "Concessions available",
            }
        ],
        "contacts": [
            {
                "id": _id(rng),
                "service_id": service_id,
                "name": "Duty worker",
                "email": f"{slug}@{borough.lower()}.example",
                "phones": [
                    {
                        "id": _id(rng),
                        "number": f"020 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                    }
                ],
            }
        ],
        "attributes": [_term(service_id, need) for need in needs]
        + access_attributes(service_id, access),
    }
    return document


def generate_services(
    authority: str,
    borough: str,
    count: int,
    *,
    seed: int | str = 0,
    districts: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """`count` ORUK service documents for `authority` (GSS) named `borough`; the same arguments
    always give the same services."""
    rng = random.Random(f"{authority}/{seed}")  # noqa: S311 - demo data, not secrets
    places = districts or BOROUGH_DISTRICTS.get(authority) or tuple(district_centroids())
    return [_service(rng, authority, borough, places) for _ in range(count)]
