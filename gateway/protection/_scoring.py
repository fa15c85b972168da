"""Name, date and identifier comparisons behind `match_candidates` (see `_matching` for the bands).

Names are compared on the folded forms of `_names`, with rapidfuzz: the mean of Jaro-Winkler
(forgiving of typos and transposed letters, rewarding a shared beginning) and the optimal string
alignment similarity (which penalises length differences, so Kate / Katherine does not score like a
misspelling). The name score is the product of the given-name and family-name scores: both must agree.

A score alone cannot tell a misspelling from a twin's name: Michael / Michaela scores like Mohammed /
Mohammad. So `NameAgreement` also says when given names differ at their ending, the way a boy's and a
girl's form of one name do; the matcher then caps the match below `found` (see `_matching`).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from rapidfuzz.distance import OSA, JaroWinkler

from schemas import IdentifierError, normalise_nhs_number, normalise_postcode, normalise_upn

from ._names import name_tokens, phonetic_key

__all__ = ["Folded", "NameAgreement", "dob_agreement", "identifier_agreement", "name_score"]

# -- name scoring constants ----------------------------------------------------------------------
# A fuzzy name score never equals an exact one.
FUZZY_CEILING = 0.99
# Added when family names share a phonetic bucket AND are already this similar (Smith and Snead share
# a Soundex code, not a spelling).
PHONETIC_BONUS = 0.1
PHONETIC_BONUS_FROM = 0.7
# One family name is a part of the other (double-barrelled: Smith / Smith-Jones).
FAMILY_PART_SCORE = 0.9
# One side lists fewer given names: all present, first the same (Zoe / Zoe Mae) or not (Mae / Zoe Mae);
# else the first given names alone are compared, scaled down.
GIVEN_SUBSET_SCORE = 0.95
GIVEN_SUBSET_OTHER_FIRST = 0.85
GIVEN_FIRST_ONLY_FACTOR = 0.95
# The query gave a family name only.
GIVEN_UNKNOWN_FACTOR = 0.8
# Most boy's / girl's forms of a name differ in their last letter or add letters (Antonio / Antonia,
# Michael / Michaela, Louis / Louise); these pairs of endings do neither (Francis / Frances,
# Jesse / Jessie).
GENDERED_INNER_ENDINGS = frozenset({frozenset({"is", "es"}), frozenset({"e", "ie"})})


# -- name scores ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Folded:
    given: tuple[str, ...]
    family_tokens: tuple[str, ...]
    family: str
    family_key: str

    @classmethod
    def of(cls, given_names: str, family_name: str) -> Folded:
        family = name_tokens(family_name)
        return cls(name_tokens(given_names), family, "".join(family), phonetic_key(family_name))

    def swapped(self) -> Folded | None:
        """The family name taken as the given names and the other way round (Wei Zhang entered as
        given "Zhang", family "Wei"); None without both."""
        if not self.given or not self.family_tokens:
            return None
        family = " ".join(self.given)
        return Folded(self.family_tokens, self.given, "".join(self.given), phonetic_key(family))


@dataclass(frozen=True, slots=True)
class NameAgreement:
    """`score` in [0, 1]; `exact` once folded; `another_form`: the given names may be two children's
    (a boy's and a girl's form of one name), so the names alone never make this child certain."""

    score: float
    exact: bool
    another_form: bool = False


def _similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return (JaroWinkler.normalized_similarity(a, b) + OSA.normalized_similarity(a, b)) / 2


def _family_score(q: Folded, c: Folded) -> float:
    if q.family == c.family:
        return 1.0 if q.family else 0.0
    score = _similarity(q.family, c.family)
    if score >= PHONETIC_BONUS_FROM and q.family_key == c.family_key:
        score += PHONETIC_BONUS
    q_parts = {t for t in q.family_tokens if len(t) > 1}
    c_parts = {t for t in c.family_tokens if len(t) > 1}
    if q_parts and c_parts and (q_parts <= c_parts or c_parts <= q_parts):
        score = max(score, FAMILY_PART_SCORE)
    return min(score, FUZZY_CEILING)


def _given_score(q: tuple[str, ...], c: tuple[str, ...]) -> float:
    if "".join(q) == "".join(c):
        return 1.0
    if not q or not c:
        return 0.0
    score = max(
        _similarity("".join(q), "".join(c)),
        _similarity("".join(sorted(q)), "".join(sorted(c))),  # the same names in another order
    )
    if len(q) != len(c):  # middle names recorded on one side only
        short, long_ = sorted((q, c), key=len)
        if set(short) <= set(long_):
            subset = GIVEN_SUBSET_SCORE if short[0] == long_[0] else GIVEN_SUBSET_OTHER_FIRST
            score = max(score, subset)
        else:
            score = max(score, GIVEN_FIRST_ONLY_FACTOR * _similarity(short[0], long_[0]))
    return min(score, FUZZY_CEILING)


def _differ_at_ending(a: str, b: str) -> bool:
    """Two different given names that differ where a boy's and a girl's form of a name do: one
    extends the other, their last letters differ, or their endings are a pair of
    `GENDERED_INNER_ENDINGS`. A difference inside the name (Mohammed / Mohammad, a swapped pair of
    letters) reads as a spelling variant."""
    if a == b:
        return False
    if a.startswith(b) or b.startswith(a) or a[-1] != b[-1]:
        return True
    stem = len(os.path.commonprefix([a, b]))
    return frozenset({a[stem:], b[stem:]}) in GENDERED_INNER_ENDINGS


def _another_form(q: tuple[str, ...], c: tuple[str, ...]) -> bool:
    if "".join(q) == "".join(c) or sorted(q) == sorted(c):
        return False  # the same names, perhaps in another order
    if len(q) != len(c) and (set(q) <= set(c) or set(c) <= set(q)):
        return False  # a middle name recorded on one side only
    return any(_differ_at_ending(a, b) for a, b in zip(q, c, strict=False))


def name_score(q: Folded, c: Folded) -> NameAgreement:
    """The product of the names' scores, so both names must agree for a high score."""
    family = _family_score(q, c)
    if not q.given:
        return NameAgreement(family * GIVEN_UNKNOWN_FACTOR, exact=False)
    given = _given_score(q.given, c.given)
    return NameAgreement(
        given * family,
        exact=given == 1.0 and family == 1.0,
        another_form=bool(c.given) and _another_form(q.given, c.given),
    )


# -- dates and identifiers -----------------------------------------------------------------------


def dob_agreement(a: dt.date | None, b: dt.date | None) -> str:
    if a is None or b is None:
        return "unknown"
    if a == b:
        return "exact"
    if a.year == b.year and a.day == b.month and a.month == b.day:
        return "near"  # day and month swapped (a US-ordered entry)
    x, y = a.isoformat(), b.isoformat()
    diffs = [i for i in range(len(x)) if x[i] != y[i]]
    if len(diffs) == 1:
        return "near"  # one digit mistyped
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and x[diffs[0]] == y[diffs[1]]:
        if x[diffs[1]] == y[diffs[0]]:
            return "near"  # two adjacent digits swapped
    return "conflict"


def _compact(kind: str, value: str | None) -> str:
    """The identifier as the blind index keys it (`943-476-5919` is `9434765919`), so a query the
    index found is not then scored a conflict; a value that is no valid identifier, spaces out."""
    if not value:
        return ""
    try:
        return normalise_nhs_number(value) if kind == "nhs_number" else normalise_upn(value)
    except IdentifierError:
        return "".join(value.split()).upper()


def identifier_agreement(kind: str, q: str | None, c: str | None) -> str | None:
    """ "match", "conflict" or None (unknown on a side, or a temporary UPN)."""
    a, b = _compact(kind, q), _compact(kind, c)
    if not a or not b:
        return None
    if a == b:
        return "match"
    # A temporary UPN (final letter) stands in for an unknown permanent one: no evidence either way.
    if kind == "upn" and (a[-1].isalpha() or b[-1].isalpha()):
        return None
    return "conflict"


def _postcode(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalise_postcode(value)
    except IdentifierError:
        return None


def postcode_agreement(q: str | None, c: str | None) -> str | None:
    """ "match", "conflict" or None (unknown on a side, or no postcode as given): whole postcodes,
    `nw1  4ab` being `NW1 4AB`."""
    a, b = _postcode(q), _postcode(c)
    if a is None or b is None:
        return None
    return "match" if a == b else "conflict"
