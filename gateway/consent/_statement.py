"""One consent statement against one request (DESIGN 3.5): in force? right giver? covers? excludes?

A statement is **in force** on a day when it has been given (`given_on <= at`), is not withdrawn
(`withdrawn_on <= at` ends it: withdrawal stops sharing at once, and one dated after the day the
question is asked counts from that day) and not expired (`valid_until < at`).
It is **valid** when, in addition, the right person gave it for the child's age (see `_age`). It
**covers** a request when its recipients, purposes and sections all include what is asked:

- `share_with` empty places no limit on recipients, `purposes` empty no limit on purpose, `sections`
  None none on sections (an empty list permits no section). Partial consent in 001 is recorded as
  exclusions ("families do not want information shared with certain agencies"), and no local format
  records purposes at all, so reading an empty list as "nobody" would silently refuse everything
  imported; the reason text says when a statement places no limit, so the console shows it.
- an AgencyRef matches a recipient when every field the ref sets matches (agency name compared without
  case or extra spaces). For a permission a field the recipient does not state does not match; for an
  exclusion it does, because the exclusion cannot be ruled out.

Exclusions count from every statement in force, whoever gave it: a refusal errs on the side of the child.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from schemas import AgencyRef, Child, ConsentRole, ConsentStatement, ParentCarer, Section

from ._age import check_givers, lapsed
from ._types import (
    ALL_SECTIONS,
    ConsentRequest,
    DenialCode,
    Recipient,
    Rule,
    StatementFinding,
    agency_words,
    normalise_purpose,
    section_order,
)

__all__ = ["Evaluation", "Stage", "evaluate", "label", "purpose_text", "safe_id", "sections_text"]

# Identifiers and purpose codes are echoed in reasons only when they look like codes, never free text.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
# A purpose code has no spaces ("early_help"); a purpose written as a sentence may name the child.
_SAFE_PURPOSE: Final = re.compile(r"[A-Za-z0-9]+(?:[_.-][A-Za-z0-9]+)*")


class Stage(IntEnum):
    """How close a statement came to permitting; the closest explains a refusal best."""

    APPLIES = 0
    COVERS_BUT_INVALID = 1
    PURPOSE = 2
    SECTIONS = 3
    RECIPIENT = 4
    INVALID_AND_NOT_COVERING = 5


_COVERAGE_CODES: Final[dict[Stage, tuple[DenialCode, Rule]]] = {
    Stage.PURPOSE: (DenialCode.PURPOSE_NOT_PERMITTED, Rule.PURPOSE),
    Stage.SECTIONS: (DenialCode.CONSENT_MISSING, Rule.SECTIONS),
    Stage.RECIPIENT: (DenialCode.CONSENT_MISSING, Rule.RECIPIENT),
}


def safe_id(value: str) -> str | None:
    """An identifier as a reason may show it: only when it is a plain code, never free text."""
    return value if _SAFE_ID.fullmatch(value) else None


def label(consent_id: str, position: int) -> str:
    """How a reason names a statement: its id when that is a plain code, else its position."""
    return safe_id(consent_id) or f"#{position + 1}"


def purpose_text(purpose: str) -> str:
    raw = purpose.strip()
    if len(raw) <= 40 and _SAFE_PURPOSE.fullmatch(raw):
        return f"purpose '{normalise_purpose(raw)}'"
    return "the requested purpose"


def sections_text(sections: frozenset[Section]) -> str:
    return ", ".join(section.value for section in section_order(sections)) or "no section"


def _givers_text(statement: ConsentStatement) -> str:
    roles = {giver.role for giver in statement.given_by}
    words = [
        word
        for role, word in (
            (ConsentRole.YOUNG_PERSON, "young person"),
            (ConsentRole.PARENT_CARER, "parent/carer"),
        )
        if role in roles
    ]
    return " and ".join(words)


def _named(permitted: str, recipient: str) -> bool:
    """A permission names the recipient: the same words, numbers included, in order."""
    words = agency_words(permitted)
    return bool(words) and words == agency_words(recipient)


def _may_be_named(excluded: str, recipient: str) -> bool:
    """Could an exclusion naming `excluded` mean the recipient? Yes when either name's words all
    appear in the other ("Whittington Hospital" and "Whittington Hospital NHS Trust"): an exclusion
    errs towards refusing, where a permission needs the name as recorded. An excluded name without
    a word (punctuation only) could mean anyone; a recipient's name without one, any agency."""
    ours, theirs = set(agency_words(excluded)), set(agency_words(recipient))
    return not (ours and theirs) or ours <= theirs or theirs <= ours


def _permits(ref: AgencyRef, recipient: Recipient) -> bool:
    return (
        (ref.agency_type is None or ref.agency_type is recipient.agency_type)
        and (ref.name is None or (recipient.name is not None and _named(ref.name, recipient.name)))
        and (ref.authority is None or ref.authority == recipient.authority)
    )


def _excludes(ref: AgencyRef, recipient: Recipient) -> str | None:
    """Describe how `ref` excludes the recipient (without the agency's name), or None if it does not."""
    parts: list[str] = []
    if ref.agency_type is not None:
        if ref.agency_type is not recipient.agency_type:
            return None
        parts.append(f"agency type '{ref.agency_type.value}'")
    if ref.name is not None:
        if recipient.name is not None and not _may_be_named(ref.name, recipient.name):
            return None
        parts.append("agency name" if recipient.name else "agency name (the recipient states none)")
    if ref.authority is not None:
        if recipient.authority is not None and ref.authority != recipient.authority:
            return None
        parts.append(
            f"authority {ref.authority}"
            if recipient.authority
            else f"authority {ref.authority} (the recipient states none)"
        )
    return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything decided about one statement; `finding()` turns it into the public explanation."""

    statement: ConsentStatement
    position: int
    in_force: bool
    valid: bool
    exclusion: str | None
    covered: frozenset[Section]
    stage: Stage
    code: DenialCode | None
    rule: Rule
    why: str

    @property
    def name(self) -> str:
        statement = self.statement
        return (
            f"statement {label(statement.consent_id, self.position)} "
            f"({_givers_text(statement)}, {statement.method.value})"
        )

    def finding(self, used: frozenset[Section]) -> StatementFinding:
        if self.exclusion is not None:
            code, rule = DenialCode.CONSENT_EXCLUDED, Rule.EXCLUSION
            reason = f"{self.name} excludes this recipient by {self.exclusion} (rule {rule})"
        elif self.stage is Stage.APPLIES:
            code, rule = None, self.rule
            if used:
                reason = f"{self.name} permits {sections_text(used)} by rule {rule} ({self.why})"
            else:
                reason = (
                    f"{self.name} also covers the request ({self.why}); "
                    "other statements are the basis"
                )
        else:
            code, rule = self.code, self.rule
            reason = f"{self.name} does not apply by rule {rule}: {self.why}"
        return StatementFinding(
            consent_id=self.statement.consent_id,
            position=self.position,
            in_force=self.in_force,
            valid=self.valid,
            applies=self.stage is Stage.APPLIES and bool(used),
            excludes=self.exclusion is not None,
            code=code,
            rule=rule,
            reason=reason,
            sections=used,
        )


def _timing(
    statement: ConsentStatement, request: ConsentRequest
) -> tuple[DenialCode, Rule, str] | None:
    at = request.at
    if statement.given_on > at:
        return (
            DenialCode.CONSENT_MISSING,
            Rule.NOT_YET_GIVEN,
            "it was given after the day asked about",
        )
    if statement.withdrawn_on is not None and request.effective(statement.withdrawn_on) <= at:
        return (
            DenialCode.CONSENT_WITHDRAWN,
            Rule.WITHDRAWN,
            "it was withdrawn on or before the day asked about",
        )
    if statement.valid_until is not None and statement.valid_until < at:
        return (
            DenialCode.CONSENT_EXPIRED,
            Rule.EXPIRED,
            "its validity ended before the day asked about",
        )
    return None


def _coverage(
    statement: ConsentStatement, request: ConsentRequest
) -> tuple[Stage | None, frozenset[Section], str]:
    """Which requested sections the statement covers, or the first coverage rule it fails."""
    recipient = request.recipient
    notes: list[str] = []
    if not statement.share_with:
        notes.append("recipients")
    elif not any(_permits(ref, recipient) for ref in statement.share_with):
        return (
            Stage.RECIPIENT,
            frozenset(),
            "it does not name this recipient among those to share with",
        )
    if not statement.purposes:
        notes.append("purpose")
    else:
        wanted = normalise_purpose(request.purpose)
        if wanted not in {normalise_purpose(p) for p in statement.purposes}:
            return Stage.PURPOSE, frozenset(), f"it does not list {purpose_text(request.purpose)}"
    allowed = ALL_SECTIONS if statement.sections is None else frozenset(statement.sections)
    covered = request.requested_sections & allowed
    if not covered:
        return Stage.SECTIONS, covered, "it permits none of the sections asked for"
    return None, covered, f"it places no limit on {' or '.join(notes)}" if notes else ""


def evaluate(
    statement: ConsentStatement,
    position: int,
    request: ConsentRequest,
    child: Child,
    carers: list[ParentCarer],
) -> Evaluation:
    timing = _timing(statement, request)
    in_force = timing is None
    exclusion: str | None = None
    if in_force:
        matches = (_excludes(ref, request.recipient) for ref in statement.excluded)
        exclusion = next((m for m in matches if m is not None), None)
    givers = check_givers(child, statement, carers)
    failure = timing
    if failure is None and not givers.valid:
        failure = DenialCode.CONSENT_MISSING, givers.rule, f"not the right person: {givers.why}"
    if failure is None and lapsed(child, statement, request.at):
        failure = (
            DenialCode.CONSENT_EXPIRED,
            Rule.AGE_16_PLUS_LAPSED,
            "the young person may now be 16 or over, when only their own consent counts, and it was "
            "not theirs when given (not given by them at 16 or over, or at 12-15 judged competent)",
        )
    coverage_miss, covered, note = _coverage(statement, request)
    code: DenialCode | None
    if failure is None:
        if coverage_miss is None:
            stage, code, rule = Stage.APPLIES, None, givers.rule
            why = f"{givers.why}; {note}" if note else givers.why
        else:
            stage, (code, rule), why = coverage_miss, _COVERAGE_CODES[coverage_miss], note
    elif coverage_miss is None:
        stage, (code, rule, why) = Stage.COVERS_BUT_INVALID, failure
    else:
        # Its own failure comes first: a withdrawn statement says "withdrawn" whatever it covered.
        code, rule, why = failure
        stage, why = Stage.INVALID_AND_NOT_COVERING, f"{why}; and {note}"
    return Evaluation(
        statement=statement,
        position=position,
        in_force=in_force,
        valid=failure is None,
        exclusion=exclusion,
        covered=covered if coverage_miss is None else frozenset(),
        stage=stage,
        code=code,
        rule=rule,
        why=why,
    )
