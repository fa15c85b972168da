"""Which blind indexes to store for a child, and which to look up for a query (DESIGN 4; issue 5).

Storage keeps one (kind, digest) row per term, pointing at the encrypted record; a look-up unions the
rows of every query term, decrypts those candidates and scores them with `match_candidates`. Terms
for a record cover its other names too (known as, previous names), and each part of a
double-barrelled family name gets its own family-name bucket, so "Smith" finds "Smith-Jones".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

from ._blind import IndexKind, NameDob, blind_index
from ._keys import KeyRing
from ._matching import Candidate, NameQuery, PersonName
from ._names import name_tokens

__all__ = ["IndexTerm", "query_terms", "record_terms"]


class IndexTerm(NamedTuple):
    kind: IndexKind
    digest: str


def _family_buckets(family_name: str) -> list[str]:
    """The whole family name, plus each part of 2+ letters when it has several parts."""
    tokens = name_tokens(family_name)
    if not tokens:
        return []
    parts = [t for t in tokens if len(t) > 1] if len(tokens) > 1 else []
    return [family_name, *parts]


def _terms(
    names: Iterable[PersonName],
    date_of_birth: dt.date | None,
    nhs_number: str | None,
    upn: str | None,
    ring: KeyRing,
) -> tuple[IndexTerm, ...]:
    terms: set[IndexTerm] = set()
    if nhs_number:
        terms.add(
            IndexTerm(IndexKind.NHS_NUMBER, blind_index(IndexKind.NHS_NUMBER, nhs_number, ring))
        )
    if upn:
        terms.add(IndexTerm(IndexKind.UPN, blind_index(IndexKind.UPN, upn, ring)))
    if date_of_birth is not None:
        terms.add(IndexTerm(IndexKind.DOB, blind_index(IndexKind.DOB, date_of_birth, ring)))
    for name in names:
        if not name_tokens(name.family_name):
            continue
        if date_of_birth is not None:
            value = NameDob(name.family_name, date_of_birth)
            terms.add(IndexTerm(IndexKind.NAME_DOB, blind_index(IndexKind.NAME_DOB, value, ring)))
        for bucket in _family_buckets(name.family_name):
            digest = blind_index(IndexKind.FAMILY_NAME_KEY, bucket, ring)
            terms.add(IndexTerm(IndexKind.FAMILY_NAME_KEY, digest))
    return tuple(sorted(terms))


def record_terms(candidate: Candidate, ring: KeyRing) -> tuple[IndexTerm, ...]:
    """Every index to store for a child record (its `ref` is where the rows point)."""
    return _terms(
        candidate.names, candidate.date_of_birth, candidate.nhs_number, candidate.upn, ring
    )


def query_terms(query: NameQuery, ring: KeyRing) -> tuple[IndexTerm, ...]:
    """Every index to look up for a query; identifiers are validated (`schemas.IdentifierError`)."""
    name = PersonName(query.given_names, query.family_name)
    return _terms((name,), query.date_of_birth, query.nhs_number, query.upn, ring)
