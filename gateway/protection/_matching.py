"""Finding a child: scoring decrypted candidates against an existence-check query (protocol 3.4).

The blind indexes narrow the search to a few rows (same NHS number, UPN, date of birth or family-name
bucket); this module decrypts nothing and stores nothing, it scores those rows (names as in
`_scoring`). There is no nickname dictionary: Bob does not find Robert, nor Kate Katherine, unless the
record lists "Bob" as a name the child is known as (`Candidate.other_names`).

The confidence is built so that its bands mean something to the existence check:

- 1.0: an NHS number (or UPN, when the NHS numbers and the dates of birth do not disagree) is the
  same.
- `NAME_DOB_CONFIDENCE` (0.95): same date of birth and the same names once folded ("name+dob
  exact"). Not 1.0: two children can share a common name and a birthday.
- same date of birth and similar names: 0.95 x the name score ("name+dob fuzzy"); at least
  `FOUND_THRESHOLD` only for close variants of both names (Ó Briain / O'Brien, Mohammed / Mohammad).
- at most `POSSIBLE_ONLY` (below `FOUND_THRESHOLD`) when the names could be another child's or
  another order's: given names that differ at their ending as a boy's and a girl's form of one name
  do (Michael / Michaela, Antonio / Antonia: twins share the family name and the birthday), or the
  given and family names matched the other way round (Wei Zhang / Zhang Wei).
- a near-miss date of birth (day and month swapped, one digit wrong or two adjacent digits swapped),
  an unknown one, or a conflicting NHS number / UPN multiplies the score down, so that such a match
  can at best be a possible match (a person then looks), never `found`.

`judge` (`classify`) turns the scores into the protocol's answer: found / not_found / ambiguous.
The bands are deliberately cautious: a wrong `found` would tell a practitioner about another child
(a twin, say), while `ambiguous` only sends them to the lead CAF contact. The postcode given with a
check only breaks a tie between children recorded at different postcodes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from schemas import Child

from ._names import name_tokens
from ._scoring import (
    Folded,
    NameAgreement,
    dob_agreement,
    identifier_agreement,
    name_score,
    postcode_agreement,
)

__all__ = [
    "DOB_CONFLICT_FACTOR",
    "DOB_NEAR_FACTOR",
    "DOB_UNKNOWN_FACTOR",
    "FOUND_MARGIN",
    "FOUND_THRESHOLD",
    "IDENTIFIER_DISAGREEMENT_CONFIDENCE",
    "NAME_DOB_CONFIDENCE",
    "NHS_CONFLICT_FACTOR",
    "POSSIBLE_MATCH",
    "POSSIBLE_ONLY",
    "UPN_CONFLICT_FACTOR",
    "Candidate",
    "Match",
    "MatchBasis",
    "MatchOutcome",
    "NameQuery",
    "PersonName",
    "Verdict",
    "classify",
    "has_letters",
    "judge",
    "match_candidates",
]

# -- thresholds (the protocol's answer) ----------------------------------------------------------
# `found`: the best child at or above FOUND_THRESHOLD, leading every other possible match by
# FOUND_MARGIN. Below POSSIBLE_MATCH a candidate is not reported; at or above it, it can make the
# answer `ambiguous`.
FOUND_THRESHOLD = 0.85
FOUND_MARGIN = 0.2
POSSIBLE_MATCH = 0.65
# -- confidence of each kind of evidence ---------------------------------------------------------
# Same folded names and date of birth: strong, but not an identifier.
NAME_DOB_CONFIDENCE = 0.95
# Same UPN but a different NHS number or date of birth (UPNs are re-issued in error): a person
# must look.
IDENTIFIER_DISAGREEMENT_CONFIDENCE = POSSIBLE_MATCH
# The ceiling of names that could be another child's (a twin) or in another order: a possible match.
# Within FOUND_MARGIN of an exact match (0.95), so a twin on record beside the child asked about
# still makes the answer ambiguous, as before this ceiling.
POSSIBLE_ONLY = 0.8
# Factors: a likely typing error in the date of birth, or none on one side: at best a possible match.
DOB_NEAR_FACTOR = 0.8
DOB_UNKNOWN_FACTOR = 0.8
# A different date of birth: a different child, unless an identifier says otherwise.
DOB_CONFLICT_FACTOR = 0.3
# NHS numbers are check-digited and lifelong, so disagreement is decisive; UPNs are re-issued in
# error more often, so their disagreement weighs less (and a temporary UPN's not at all).
NHS_CONFLICT_FACTOR = 0.3
UPN_CONFLICT_FACTOR = 0.7


class MatchBasis(StrEnum):
    NHS_NUMBER = "nhs_number"
    UPN = "upn"
    NAME_DOB_EXACT = "name+dob exact"
    NAME_DOB_FUZZY = "name+dob fuzzy"
    NAME_ONLY = "name only"


class MatchOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class PersonName:
    given_names: str
    family_name: str


def has_letters(family_name: str) -> str:
    """A family name a query can match on (a pydantic validator: ValueError otherwise)."""
    if not name_tokens(family_name):
        raise ValueError("a family name needs letters")
    return family_name


@dataclass(frozen=True, slots=True, kw_only=True)
class NameQuery:
    """The match keys of an existence check: a family name or an identifier at least."""

    given_names: str = ""
    family_name: str = ""
    date_of_birth: dt.date | None = None
    nhs_number: str | None = None
    upn: str | None = None
    postcode: str | None = None  # breaks a tie only (`judge`); never found on its own

    def __post_init__(self) -> None:
        if not name_tokens(self.family_name) and not (self.nhs_number or self.upn):
            raise ValueError("a query needs a family name with letters, an NHS number or a UPN")


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A decrypted row that shared a blind-index bucket with the query; `ref` is opaque to us.

    `ref` should identify the child (e.g. a child id shared by their episodes): `classify` counts
    distinct refs as distinct children.
    """

    ref: str
    given_names: str
    family_name: str
    date_of_birth: dt.date | None = None
    nhs_number: str | None = None
    upn: str | None = None
    other_names: tuple[PersonName, ...] = ()
    postcode: str | None = None  # of the child's address

    @classmethod
    def from_child(cls, ref: str, child: Child) -> Candidate:
        """From the national model: `known_as` and `previous_names` become other names."""
        others: list[PersonName] = []
        if child.known_as:
            others.append(PersonName(child.known_as, child.family_name))
            if len(child.known_as.split()) > 1:
                others.append(_split_full_name(child.known_as))
        for previous in child.previous_names:
            if len(previous.split()) > 1:
                others.append(_split_full_name(previous))
            else:  # a single word is most often an earlier family name
                others.append(PersonName(child.given_names, previous))
        return cls(
            ref=ref,
            given_names=child.given_names,
            family_name=child.family_name,
            date_of_birth=child.date_of_birth,
            nhs_number=child.identifiers.nhs_number,
            upn=child.identifiers.upn,
            other_names=tuple(others),
            postcode=child.address.postcode if child.address else None,
        )

    @property
    def names(self) -> tuple[PersonName, ...]:
        return (PersonName(self.given_names, self.family_name), *self.other_names)


def _split_full_name(text: str) -> PersonName:
    *given, family = text.split()
    return PersonName(" ".join(given), family)


@dataclass(frozen=True, slots=True)
class Match:
    """A scored candidate. `reasons` are stable codes (never values) for the console to show."""

    ref: str
    confidence: float
    basis: MatchBasis
    name_score: float
    reasons: tuple[str, ...] = field(default=())
    postcode: str | None = None  # "match", "conflict" or None: `postcode_agreement`


# -- scoring -------------------------------------------------------------------------------------


def _ceiling(name: NameAgreement) -> float:
    return POSSIBLE_ONLY if name.another_form else 1.0


def _rank(name: NameAgreement) -> tuple[float, bool]:
    return min(NAME_DOB_CONFIDENCE * name.score, _ceiling(name)), name.exact


def _best_name(q: Folded, candidate: Candidate) -> tuple[NameAgreement, bool]:
    """The best agreement with any of the record's names, each in the order given and swapped (a
    swapped order is never exact, and at most a possible match); and whether an other name gave it."""
    best, via_alias = NameAgreement(0.0, exact=False), False
    swapped = q.swapped()
    for index, other in enumerate(candidate.names):
        c = Folded.of(other.given_names, other.family_name)
        tries = [name_score(q, c)]
        if swapped is not None:
            tries.append(
                NameAgreement(name_score(swapped, c).score, exact=False, another_form=True)
            )
        for name in tries:
            if _rank(name) > _rank(best):
                best, via_alias = name, index > 0
    return best, via_alias


def _score(query: NameQuery, q: Folded, candidate: Candidate) -> Match:
    nhs = identifier_agreement("nhs_number", query.nhs_number, candidate.nhs_number)
    upn = identifier_agreement("upn", query.upn, candidate.upn)
    reasons = [
        f"{kind}.{agreement}"
        for kind, agreement in (("nhs_number", nhs), ("upn", upn))
        if agreement
    ]
    name = NameAgreement(0.0, exact=False)
    if q.family:
        name, via_alias = _best_name(q, candidate)
        reasons.append("name.exact" if name.exact else "name.fuzzy")
        if via_alias:
            reasons.append("name.other_name")
    dob = dob_agreement(query.date_of_birth, candidate.date_of_birth)
    reasons.append(f"dob.{dob}")
    postcode = postcode_agreement(query.postcode, candidate.postcode)
    if postcode:
        reasons.append(f"postcode.{postcode}")
    score = round(name.score, 4)

    if nhs == "match":
        return Match(candidate.ref, 1.0, MatchBasis.NHS_NUMBER, score, tuple(reasons), postcode)
    if upn == "match":
        # A UPN re-issued in error can be another child's: the NHS number or birth date says so.
        disagree = nhs == "conflict" or dob == "conflict"
        confidence = IDENTIFIER_DISAGREEMENT_CONFIDENCE if disagree else 1.0
        return Match(candidate.ref, confidence, MatchBasis.UPN, score, tuple(reasons), postcode)

    confidence = NAME_DOB_CONFIDENCE * name.score
    if dob == "exact":
        basis = MatchBasis.NAME_DOB_EXACT if name.exact else MatchBasis.NAME_DOB_FUZZY
    elif dob == "near":
        basis, confidence = MatchBasis.NAME_DOB_FUZZY, confidence * DOB_NEAR_FACTOR
    elif dob == "unknown":
        basis, confidence = MatchBasis.NAME_ONLY, confidence * DOB_UNKNOWN_FACTOR
    else:
        basis, confidence = MatchBasis.NAME_ONLY, confidence * DOB_CONFLICT_FACTOR
    if nhs == "conflict":
        confidence *= NHS_CONFLICT_FACTOR
    if upn == "conflict":
        confidence *= UPN_CONFLICT_FACTOR
    confidence = min(confidence, _ceiling(name))
    return Match(candidate.ref, round(confidence, 4), basis, score, tuple(reasons), postcode)


def match_candidates(
    query: NameQuery, candidates: Iterable[Candidate], *, min_confidence: float = POSSIBLE_MATCH
) -> list[Match]:
    """Score each candidate; keep those at or above `min_confidence`, best first (ties by ref)."""
    folded = Folded.of(query.given_names, query.family_name)
    scored = (_score(query, folded, candidate) for candidate in candidates)
    kept = [m for m in scored if m.confidence >= min_confidence]
    return sorted(kept, key=lambda m: (-m.confidence, m.ref))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The existence check's answer, and the child it found (`Match.ref`)."""

    outcome: MatchOutcome
    ref: str | None = None
    by_postcode: bool = False  # found only because the postcode set the other children apart


def judge(matches: Sequence[Match]) -> Verdict:
    """The existence check's answer (protocol 3.4) from scored matches, one child per `ref` (its
    best match; give each child's `postcode` as agreed by any of its records).

    `found` needs a best child at or above `FOUND_THRESHOLD` that leads every other possible match
    by `FOUND_MARGIN` (an exact Oliver at 0.95 over his twin Olivia at 0.73). Failing that, the
    postcode given with the check breaks a tie, and only a tie: a child tied for the best score, at
    or above `FOUND_THRESHOLD` and recorded at that postcode, is found when every other possible
    match is recorded at another one (two children of one name and birthday in two streets). A
    child at the postcode who scores below another (an NHS number, a closer name) is never
    preferred to it. Twins at one address, or a child whose record has no postcode, still make it
    `ambiguous`; none makes it `not_found`.
    """
    best: dict[str, Match] = {}
    for match in matches:
        if match.confidence >= POSSIBLE_MATCH:
            kept = best.get(match.ref)
            if kept is None or match.confidence > kept.confidence:
                best[match.ref] = match
    if not best:
        return Verdict(MatchOutcome.NOT_FOUND)
    first, *others = sorted(best.values(), key=lambda m: (-m.confidence, m.ref))
    if first.confidence >= FOUND_THRESHOLD and all(
        round(first.confidence - other.confidence, 6) >= FOUND_MARGIN for other in others
    ):
        return Verdict(MatchOutcome.FOUND, first.ref)
    at_postcode = [m for m in best.values() if m.postcode == "match"]
    if (
        len(at_postcode) == 1
        and first.confidence >= FOUND_THRESHOLD
        and at_postcode[0].confidence == first.confidence  # tied for best, never behind
        and all(m.postcode == "conflict" for m in best.values() if m is not at_postcode[0])
    ):
        return Verdict(MatchOutcome.FOUND, at_postcode[0].ref, by_postcode=True)
    return Verdict(MatchOutcome.AMBIGUOUS)


def classify(matches: Sequence[Match]) -> MatchOutcome:
    """`judge`'s answer alone."""
    return judge(matches).outcome
