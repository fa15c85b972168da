"""Family-level parts: every child's episode holds a copy; which copy the document is written from.

An EHA document says once, for the family, what the national schema repeats in every child's
episode: the reference and authority, the status and closure, the assessment's header, the plan,
the lead practitioner, the consent's terms, the address, each adult, and each area or note that
applies to more than one child. Edited on the national side, one child's episode may come to hold a
copy different from its siblings'. The document can carry only one, so the writer picks it by a
stated rule and reports the pick as a warning (the part and the rule, never a value):

- `family_part.edited_copy`: one copy differs from the family's part as it was read (the reader
  keeps a digest of each part, `SEEN`); that copy is the change a user made, and it is written for
  the whole family. The other copies are as read: writing them would undo the change.
- `family_part.conflicting_copies`: several different changed copies (or nothing says which copy is
  as read: episodes from elsewhere, extensions from before digests were kept): the first child's
  changed copy in member order is written.

Two parts have a rule of their own, which comes first (and is the rule reported):

- `family_part.withdrawal_wins`: when only some copies of the consent are withdrawn, a withdrawn
  copy is written. The family has one consent in the document; a withdrawal recorded in one child's
  episode must not be lost to a sibling's copy, which would widen sharing. For the same reason, the
  consent written from differing copies shares no wider than any of them (the writer joins their
  exclusions and keeps only the agencies every copy shares with).
- `family_part.open_while_a_child_is_open`: when only some children's episodes are open (or
  potential), an open copy is written, without a closure. Closing one child's episode must not close
  the family's assessment for the others (the document has one status); the family is written
  closed, with a closure, when every child's episode is.

Digests are CRC-32s of a part's national values (models as their JSON, each part by one serializer
call where it can), so they stay valid after the episodes' own JSON round trip; a digest that cannot
be matched only makes a changed copy look like a conflict.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from schemas import (
    Address,
    Assessment,
    Closure,
    ConsentRole,
    ConsentStatement,
    ElementAssessment,
    Episode,
    EpisodeState,
    ParentCarer,
    PlanAction,
    Practitioner,
    Problem,
)

__all__ = [
    "ADDRESS",
    "NARROWED",
    "ADULT",
    "ASSESSMENT",
    "COMPETENCE",
    "CONSENT",
    "ELEMENT",
    "LEAD",
    "PLAN",
    "REFERENCE",
    "SEEN",
    "STATUS",
    "ConsentCopy",
    "ElementCopy",
    "Part",
    "digests",
    "narrowed",
    "pick",
    "young_gave",
]

T = TypeVar("T")

SEEN = "seen"  # key of the digests in extensions["eha-json"]["family"]
EDITED = "family_part.edited_copy"
CONFLICT = "family_part.conflicting_copies"
WITHDRAWN = "family_part.withdrawal_wins"
OPEN = "family_part.open_while_a_child_is_open"
NARROWED = "family_part.consent_narrowed"
_MESSAGES = {
    EDITED: "the children's episodes hold different copies of this family-level part: the copy "
    "changed since the document was read is written, for the whole family",
    CONFLICT: "the children's episodes hold differently changed copies of this family-level part "
    "(or nothing says which copy is as read): the first child's changed copy in member order is "
    "written",
    WITHDRAWN: "only some children's copies of the consent are withdrawn: a withdrawn copy is "
    "written, for the whole family",
    OPEN: "only some children's episodes are closed: the family's assessment is written open, "
    "without a closure, until every child's episode is closed",
    NARROWED: "the children's copies of the consent share with different agencies: the consent "
    "is written sharing no wider than any copy (their exclusions joined, sharing only with the "
    "agencies every copy names), so a change that widened sharing in one copy is not written",
}


def narrowed(location: str) -> Problem:
    return Problem(("consents", 0), NARROWED, _MESSAGES[NARROWED], "warning", location=location)


_OPEN_STATES = frozenset({EpisodeState.OPEN, EpisodeState.POTENTIAL})  # written "OPEN"

# What of a copy is each child's own, and so not the family's part.
_OWN_ASSESSMENT = {"elements"}
_OWN_CONSENT = {"given_by", "young_person_competent"}
_ASSESSMENT_FIELDS = tuple(n for n in Assessment.model_fields if n not in _OWN_ASSESSMENT)
_CONSENT_FIELDS = tuple(n for n in ConsentStatement.model_fields if n not in _OWN_CONSENT)
_ASSESSMENT_KEYS = set(_ASSESSMENT_FIELDS)
_CONSENT_KEYS = set(_CONSENT_FIELDS)

# The writer's copies of an element: (element, its child's ref, its entry in extensions); of the
# consent: (episode, its child's ref, the statement).
ElementCopy = tuple[ElementAssessment, str, dict[str, Any]]
ConsentCopy = tuple[Episode, str, ConsentStatement]


@dataclass(frozen=True, slots=True)
class Part(Generic[T]):
    """One kind of family-level part: how its copies compare, its digest, where it is reported."""

    equal: Callable[[T, T], bool]
    digest: Callable[[T], int]
    path: tuple[str | int, ...]
    location: str
    prefer: tuple[str, Callable[[T], bool]] | None = None  # a rule of its own: copies it wants


def pick(
    name: str,
    copies: Sequence[T],
    part: Part[T],
    seen: dict[str, Any],
    warnings: list[Problem],
    *,
    path: tuple[str | int, ...] | None = None,
    location: str | None = None,
) -> T:
    """The copy of a family-level part to write, from the episodes' copies in member order, by
    the rules above. When the copies differ, a warning names the part and the rule."""
    chosen = copies[0]
    for other in copies[1:]:
        if other is not chosen and not part.equal(chosen, other):
            break
    else:
        return chosen  # one copy, or all alike: the common case
    preferred: str | None = None
    if part.prefer is not None:
        rule, wanted = part.prefer
        chosen_ones = [c for c in copies if wanted(c)]
        if chosen_ones and len(chosen_ones) < len(copies):
            copies, preferred = chosen_ones, rule
    was = seen.get(name)
    changed = [c for c in copies if type(was) is not int or part.digest(c) != was]
    kinds: list[T] = []
    for c in changed:
        if not any(part.equal(c, k) for k in kinds):
            kinds.append(c)
    rule = preferred or (EDITED if type(was) is int and len(kinds) == 1 else CONFLICT)
    warnings.append(
        Problem(
            part.path if path is None else path,
            rule,
            _MESSAGES[rule],
            "warning",
            location=part.location if location is None else location,
        )
    )
    return changed[0] if changed else copies[0]


# -- equality: `is` first (episodes read together share their parts), then the models' `==` -----


def _same(a: Any, b: Any) -> bool:
    return a is b or bool(a == b)


def _same_fields(a: Any, b: Any, names: tuple[str, ...]) -> bool:
    if a is b:
        return True
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if x is not y and x != y:
            return False
    return True


def _same_reference(a: Episode, b: Episode) -> bool:
    return a.local_ref == b.local_ref and a.home_authority == b.home_authority


def _same_status(a: Episode, b: Episode) -> bool:
    return a.state is b.state and _same(a.closure, b.closure)


def _same_assessment(a: Assessment, b: Assessment) -> bool:
    """The assessment without its elements (each child's own, or parts of their own)."""
    return _same_fields(a, b, _ASSESSMENT_FIELDS)


def _same_consent(a: ConsentCopy, b: ConsentCopy) -> bool:
    """The consent's terms; who gave it, and the competence of the young person who did, are each
    child's own."""
    return _same_fields(a[2], b[2], _CONSENT_FIELDS)


def _same_element(a: ElementCopy, b: ElementCopy) -> bool:
    return _same(a[0], b[0])


# -- digests: CRC-32 of the national values, models as their JSON (one serializer call) ----------


def _json(value: BaseModel | None) -> bytes:
    return b"null" if value is None else value.__pydantic_serializer__.to_json(value)


def _digest(value: BaseModel | bool | None) -> int:
    """A part that is one model (an adult, an element, the address, the lead), or a flag."""
    if value is None or isinstance(value, bool):
        return zlib.crc32(repr(value).encode())
    return zlib.crc32(_json(value))


def _reference(local_ref: str | None, authority: str) -> int:
    return zlib.crc32(repr((local_ref, authority)).encode("utf-8", "surrogatepass"))


def _status(state: EpisodeState, closure: Closure | None) -> int:
    return zlib.crc32(_json(closure), zlib.crc32(state.value.encode()))


def _plan(plan: Sequence[PlanAction]) -> int:
    crc = 0
    for action in plan:
        crc = zlib.crc32(b",", zlib.crc32(_json(action), crc))
    return crc


def _assessment(a: Assessment) -> int:
    return zlib.crc32(a.__pydantic_serializer__.to_json(a, include=_ASSESSMENT_KEYS))


def _consent(c: ConsentStatement) -> int:
    return zlib.crc32(c.__pydantic_serializer__.to_json(c, include=_CONSENT_KEYS))


def young_gave(c: ConsentStatement) -> bool:
    """Is a young person among the statement's givers?"""
    for giver in c.given_by:
        if giver.role is ConsentRole.YOUNG_PERSON:
            return True
    return False


def digests(
    *,
    local_ref: str | None,
    authority: str,
    state: EpisodeState,
    closure: Closure | None,
    plan: Sequence[PlanAction],
    lead: Practitioner | None,
    address: Address | None,
    assessment: Assessment | None,
    statements: Sequence[ConsentStatement],
    adults: Sequence[ParentCarer],
    elements: Iterable[tuple[str, int, ElementAssessment]],
) -> dict[str, int]:
    """The reader's digests of the family's parts as read (`SEEN`); `elements` are (kind, index,
    element) for the areas and notes more than one child holds (only those have copies)."""
    seen = {
        "reference": _reference(local_ref, authority),
        "status": _status(state, closure),
        "plan": _plan(plan),
        "lead": _digest(lead),
        "address": _digest(address),
    }
    if assessment is not None:
        seen["assessment"] = _assessment(assessment)
    if statements:
        seen["consent"] = _consent(statements[0])
        for statement in statements:
            if young_gave(statement):
                seen["competence"] = _digest(statement.young_person_competent)
                break
    for k, adult in enumerate(adults):
        seen[f"adult/{k}"] = zlib.crc32(adult.__pydantic_serializer__.to_json(adult))
    for kind, index, element in elements:
        seen[f"{kind}/{index}"] = zlib.crc32(element.__pydantic_serializer__.to_json(element))
    return seen


# -- the parts, as the writer holds their copies --------------------------------------------------

REFERENCE: Part[Episode] = Part(
    _same_reference,
    lambda e: _reference(e.local_ref, e.home_authority),
    ("local_ref",),
    "/assessmentId",
)
STATUS: Part[Episode] = Part(
    _same_status,
    lambda e: _status(e.state, e.closure),
    ("state",),
    "/status",
    prefer=(OPEN, lambda e: e.state in _OPEN_STATES),
)
ASSESSMENT: Part[Assessment] = Part(_same_assessment, _assessment, ("assessments", 0), "/")
PLAN: Part[list[PlanAction]] = Part(_same, _plan, ("delivery_plan",), "/plan")
LEAD: Part[Practitioner | None] = Part(_same, _digest, ("lead_professional",), "/leadPractitioner")
ADDRESS: Part[Address | None] = Part(_same, _digest, ("child", "address"), "/family/address")
ADULT: Part[ParentCarer] = Part(_same, _digest, ("parents_carers",), "/family/members")
CONSENT: Part[ConsentCopy] = Part(
    _same_consent,
    lambda c: _consent(c[2]),
    ("consents", 0),
    "/consent",
    prefer=(WITHDRAWN, lambda c: c[2].withdrawn_on is not None),
)
COMPETENCE: Part[bool | None] = Part(
    _same, _digest, ("consents", 0, "young_person_competent"), "/consent/youngPersonCompetent"
)
ELEMENT: Part[ElementCopy] = Part(
    _same_element, lambda c: _digest(c[0]), ("assessments", 0, "elements"), "/areas"
)
