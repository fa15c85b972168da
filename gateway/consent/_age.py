"""Who may consent, by the child's age (DESIGN 3.5; 001 "Preparation and Consent"; Gillick competence).

Under 12 a person with parental responsibility consents; from 12 to 15 the young person's own consent
counts if a practitioner judged them competent, otherwise a person with parental responsibility's; from
16 the young person's own. The age is the child's age when the statement was GIVEN, so a parent's
statement given when the child was 11 stays valid at 14 (the young person can withdraw it or give their
own) -- but not beyond 16: from their 16th birthday only their own consent counts (001 asks for the
young person's consent "under the age of 16 and over the age of 12" in addition to the parent's; at 16
it is theirs alone). So a statement lapses then unless it was their own when given: at 16 or over, or at
12-15 judged competent. A child who signed beside a parent at 4, or at 13 not judged competent, has not
given their own consent, and the parent's lapses as if they had not signed.

When the date of birth is unknown the age is uncertain, and a statement is valid only if it would be
valid at every age the child could have been: for an unborn child (expected date of delivery) that is
the parent's consent; with no date at all, only a statement the young person and a person with parental
responsibility gave together satisfies every age band, and only while the child cannot have turned 16
since being too young for it to be their own: on the day it was given, or for four years when the young
person was judged competent. Failing closed here is deliberate: a wrong guess shares a child's
information on the wrong person's word.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas import Child, ConsentGiver, ConsentRole, ConsentStatement, ParentCarer

from ._types import Rule, name_words

__all__ = ["AgeBand", "GiverCheck", "age_on", "check_givers", "lapsed", "possible_bands"]

# A child expected on a date may be born up to 20 weeks early or 4 weeks late (a generous window).
_EARLIEST_BEFORE_EDD: Final = dt.timedelta(weeks=20)
_LATEST_AFTER_EDD: Final = dt.timedelta(weeks=4)


class AgeBand(StrEnum):
    UNDER_12 = "under12"
    YOUNG = "12-15"
    ADULT = "16+"


def _band(age: int) -> AgeBand:
    if age < 12:
        return AgeBand.UNDER_12
    return AgeBand.YOUNG if age < 16 else AgeBand.ADULT


def age_on(born: dt.date, on: dt.date) -> int:
    """Completed years on `on`; negative before birth. A 29 February birthday comes on 1 March."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _age_range(child: Child, on: dt.date) -> tuple[int, int] | None:
    """The youngest and oldest the child can have been on `on`, or None when nothing is known."""
    if child.date_of_birth is not None:
        age = age_on(child.date_of_birth, on)
        return age, age
    if child.expected_date_of_delivery is not None:
        edd = child.expected_date_of_delivery
        return age_on(edd + _LATEST_AFTER_EDD, on), age_on(edd - _EARLIEST_BEFORE_EDD, on)
    return None


def possible_bands(child: Child, on: dt.date) -> frozenset[AgeBand]:
    span = _age_range(child, on)
    if span is None:
        return frozenset(AgeBand)
    youngest, oldest = span
    bands = {_band(youngest), _band(oldest)}
    if bands == {AgeBand.UNDER_12, AgeBand.ADULT}:
        bands.add(AgeBand.YOUNG)
    return frozenset(bands)


def _years_before(day: dt.date, years: int) -> dt.date:
    """The last birth date that makes a child `years` old on `day`."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def _born_between(child: Child) -> tuple[dt.date | None, dt.date | None]:
    """The earliest and latest the child can have been born (None: unbounded)."""
    if child.date_of_birth is not None:
        return child.date_of_birth, child.date_of_birth
    if child.expected_date_of_delivery is not None:
        edd = child.expected_date_of_delivery
        return edd - _EARLIEST_BEFORE_EDD, edd + _LATEST_AFTER_EDD
    return None, None


def lapsed(child: Child, statement: ConsentStatement, at: dt.date) -> bool:
    """Does the statement stop counting because the child may now be 16 while it may not be the
    young person's own consent? It is their own when they gave it at 16 or over, or at 12-15 judged
    competent; signing beside a parent at 4 is not (see module doc)."""
    young_person = any(g.role is ConsentRole.YOUNG_PERSON for g in statement.given_by)
    if not young_person:
        own_from = None  # never their own
    else:
        own_from = 12 if statement.young_person_competent is True else 16
    earliest, latest = _born_between(child)
    # Lapsed if some possible birth date makes the child 16 or over now (born on or before
    # `sixteen_by`) and too young for it to be their own when it was given (born after
    # `too_young_after`).
    sixteen_by = _years_before(at, 16)
    if earliest is not None and earliest > sixteen_by:
        return False
    if own_from is None:
        return True
    too_young_after = _years_before(statement.given_on, own_from)
    return (latest is None or latest > too_young_after) and too_young_after < sixteen_by


# Words a form may put before a name; they say nothing about who it is.
_TITLES: Final = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "master", "dr", "prof", "rev", "revd", "sir", "dame", "lady"}
)


@dataclass(frozen=True, slots=True)
class _Name:
    """A person's name as parental responsibility compares it: folded words in any order ("Alex
    Testparent", "Testparent, Alex"), titles dropped, one-letter words kept apart as initials."""

    words: frozenset[str]
    initials: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Name:
        kept = [w for w in name_words(text) if w not in _TITLES]
        return cls(
            frozenset(w for w in kept if len(w) > 1), frozenset(w for w in kept if len(w) == 1)
        )

    def same_words(self, other: _Name) -> bool:
        return (self.words, self.initials) == (other.words, other.initials)

    def fits(self, other: _Name) -> bool:
        """Each of our words is one of theirs or stands for one of their initials, and each of our
        initials starts one of their words."""
        starts = {w[0] for w in other.words} | other.initials
        return all(w in other.words or w[0] in other.initials for w in self.words) and (
            self.initials <= starts
        )

    def may_be(self, other: _Name) -> bool:
        """Could both name one person ("Mr A Testparent", "Alex Testparent")? A word in common,
        and nothing in either that the other contradicts."""
        return bool(self.words & other.words) and self.fits(other) and other.fits(self)


def _has_parental_responsibility(giver: ConsentGiver, carers: list[ParentCarer]) -> bool:
    """A parent/carer giver counts unless the episode may record that same person WITHOUT it.

    Givers are matched to the recorded parents/carers by name (`_Name`): the same words count as
    recorded; otherwise every carer the giver may be must have it (fail closed). A giver who may be
    none of them but shares a word with one recorded without it, or whose initials fit that one's
    name ("A T"), is refused too: the same person written differently cannot be ruled out. Any
    other giver the episode does not list is taken at the statement's word: the local form
    recorded the role.
    """
    name = _Name.of(giver.name)
    recorded = [(_Name.of(c.name), c.parental_responsibility) for c in carers]
    same = [has for carer, has in recorded if carer.same_words(name)]
    if same:
        return any(same)
    possible = [has for carer, has in recorded if carer.may_be(name)]
    if possible:
        return all(possible)
    return not any(
        not has and (carer.words & name.words or name.fits(carer)) for carer, has in recorded
    )


@dataclass(frozen=True, slots=True)
class GiverCheck:
    """Whether the right person gave a statement, under which rule, and (without names) why."""

    valid: bool
    rule: Rule
    why: str


def _check_band(
    band: AgeBand, young_person: bool, parent: bool, competent: bool
) -> tuple[bool, Rule, str]:
    if band is AgeBand.UNDER_12:
        why = "the child was under 12: a person with parental responsibility consents"
        return parent, Rule.AGE_UNDER_12, why
    if band is AgeBand.ADULT:
        return young_person, Rule.AGE_16_PLUS, "the young person was 16 or over: their own consent"
    if competent:
        why = "the young person was 12-15 and judged competent: their own consent"
        return young_person, Rule.AGE_12_15_COMPETENT, why
    why = (
        "the young person was 12-15 and not judged competent: "
        "a person with parental responsibility consents"
    )
    return parent, Rule.AGE_12_15_PARENT, why


def check_givers(
    child: Child, statement: ConsentStatement, carers: list[ParentCarer]
) -> GiverCheck:
    """Did the right person give this statement, for the child's age on the day it was given?"""
    young_person = any(g.role is ConsentRole.YOUNG_PERSON for g in statement.given_by)
    parents = [g for g in statement.given_by if g.role is ConsentRole.PARENT_CARER]
    parent = any(_has_parental_responsibility(g, carers) for g in parents)
    competent = statement.young_person_competent is True
    bands = possible_bands(child, statement.given_on)
    checks = [_check_band(band, young_person, parent, competent) for band in sorted(bands)]
    if len(checks) == 1:
        valid, rule, why = checks[0]
        if not valid and parents and rule in (Rule.AGE_UNDER_12, Rule.AGE_12_15_PARENT):
            rule = Rule.PARENTAL_RESPONSIBILITY
            why = "the parent/carer who gave it is recorded without parental responsibility"
        return GiverCheck(valid, rule, why)
    valid = all(ok for ok, _, _ in checks)
    unborn = child.date_of_birth is None and child.expected_date_of_delivery is not None
    known = "estimated from the expected date of delivery" if unborn else "unknown"
    why = (
        f"the child's age when it was given is {known}: only consent valid at every possible age "
        "(the young person's together with a person with parental responsibility's) counts"
    )
    return GiverCheck(valid, Rule.AGE_UNKNOWN, why)
