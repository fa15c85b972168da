"""The consent engine's vocabulary: what is asked, what is answered, and the stable codes and rule ids.

Codes are the wire error codes of DESIGN 3.4 (a refusal travels as `{"error": code}`); rule ids name the
clause of DESIGN 3.5 that decided, so the console and the sharing register (3.8) can say which rule applied
without repeating any personal data.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas import AgencyType, Section, is_gss_code

from ..protection import fold, name_tokens

__all__ = [
    "ALL_SECTIONS",
    "ConsentDecision",
    "ConsentRequest",
    "DenialCode",
    "Outcome",
    "Override",
    "Recipient",
    "Rule",
    "StatementFinding",
    "agency_words",
    "name_words",
    "normalise_purpose",
]

ALL_SECTIONS: Final = frozenset(Section)
_SECTION_ORDER: Final = {section: index for index, section in enumerate(Section)}
_PURPOSE_SEPARATORS = re.compile(r"[\s_-]+")


def normalise_purpose(purpose: str) -> str:
    """Compare purposes as codes: case, surrounding space and `_` / `-` / space separators do not count.

    "Early help", "early_help" and "EARLY-HELP" are the same purpose; anything else is a different one.
    """
    return _PURPOSE_SEPARATORS.sub("_", purpose.strip()).casefold()


def section_order(sections: frozenset[Section]) -> tuple[Section, ...]:
    """Sections in the order of the national schema, so every listing is stable."""
    return tuple(sorted(sections, key=_SECTION_ORDER.__getitem__))


class Outcome(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class DenialCode(StrEnum):
    """Why a disclosure is refused; the values are the wire codes of DESIGN 3.4."""

    CONSENT_MISSING = "consent_missing"
    CONSENT_EXCLUDED = "consent_excluded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_EXPIRED = "consent_expired"
    PURPOSE_NOT_PERMITTED = "purpose_not_permitted"


class Rule(StrEnum):
    """Stable ids of the DESIGN 3.5 rules; a decision and every statement finding name one."""

    # Who may consent, by the child's age when the statement was given.
    AGE_UNDER_12 = "3.5.age.under12"
    AGE_12_15_COMPETENT = "3.5.age.12-15.competent"
    AGE_12_15_PARENT = "3.5.age.12-15.parent"
    AGE_16_PLUS = "3.5.age.16+"
    AGE_UNKNOWN = "3.5.age.unknown"
    # A statement only a parent/carer gave stops being valid when the young person turns 16.
    AGE_16_PLUS_LAPSED = "3.5.age.16+.lapsed"
    # A parent/carer giver whom the episode records without parental responsibility.
    PARENTAL_RESPONSIBILITY = "3.5.giver.parental_responsibility"
    NOT_YET_GIVEN = "3.5.not_yet_given"
    WITHDRAWN = "3.5.withdrawn"
    # The episode was closed because consent was withdrawn (001's closure outcome): every statement
    # counts as withdrawn from the closure date, whatever the local form recorded on each.
    CLOSED_CONSENT_WITHDRAWN = "3.5.closure.consent_withdrawn"
    EXPIRED = "3.5.expired"
    EXCLUSION = "3.5.exclusion"
    RECIPIENT = "3.5.recipient"
    PURPOSE = "3.5.purpose"
    SECTIONS = "3.5.sections"
    NO_STATEMENT = "3.5.no_statement"
    OVERRIDE = "3.5.override"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who would receive the information: the requesting practitioner's agency (from the attestation).

    `name` and `authority` may be unknown; an exclusion naming a field the recipient does not state is
    treated as matching (it cannot be ruled out), while a permission naming it is not.
    """

    agency_type: AgencyType
    name: str | None = None
    authority: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.agency_type, AgencyType):
            raise TypeError("recipient.agency_type must be an AgencyType")
        if self.name is not None and not self.name.strip():
            raise ValueError("recipient.name is empty")
        if self.authority is not None and not is_gss_code(self.authority):
            raise ValueError("recipient.authority is not a GSS code")


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """A disclosure question: this recipient, this purpose, these sections (None: all), on this day.

    `decided_on` is the day the question is asked (the caller's clock, a London date): a withdrawal
    or a consent_withdrawn closure dated later counts from that day, since a family's "no" cannot
    be scheduled (an end date is what `valid_until` is for). None: every date is taken as recorded,
    for a question about a day in the past.
    """

    recipient: Recipient
    purpose: str
    sections: frozenset[Section] | None
    at: dt.date
    decided_on: dt.date | None = None

    def __post_init__(self) -> None:
        if not normalise_purpose(self.purpose).strip("_"):
            raise ValueError("request.purpose is empty")
        if self.sections is not None:
            if not self.sections:
                raise ValueError("request.sections is empty: ask for None (all) or name some")
            if not all(isinstance(section, Section) for section in self.sections):
                raise TypeError("request.sections must hold Section values")

    @property
    def requested_sections(self) -> frozenset[Section]:
        return ALL_SECTIONS if self.sections is None else self.sections

    def effective(self, withdrawn_on: dt.date) -> dt.date:
        """The day a withdrawal dated `withdrawn_on` takes effect: at once when dated later."""
        if self.decided_on is None:
            return withdrawn_on
        return min(withdrawn_on, self.decided_on)


@dataclass(frozen=True, slots=True)
class Override:
    """Hook for the public-interest override (DESIGN 3.5, issue 6), decided and approved elsewhere.

    The consent engine only checks the time limit: the override is in force from `valid_from` to
    `valid_until` inclusive (the same convention as a statement's `valid_until`). The written
    justification and the second approval by a lead CAF contact are the override workflow's job; build
    an `Override` only once both exist. `sections` None means it covers every section asked for.
    """

    override_id: str
    valid_from: dt.date
    valid_until: dt.date
    sections: frozenset[Section] | None = None

    def __post_init__(self) -> None:
        if not self.override_id.strip():
            raise ValueError("override.override_id is empty")
        if self.valid_until < self.valid_from:
            raise ValueError("override.valid_until is before override.valid_from")

    def in_force(self, at: dt.date) -> bool:
        return self.valid_from <= at <= self.valid_until


@dataclass(frozen=True, slots=True)
class StatementFinding:
    """What one consent statement said about this request: the console's "why (not)" line.

    `applies` is True when the statement permitted sections (`sections`, possibly fewer than it covers
    when another statement is the basis for the rest). `excludes` is True when it is in force and
    excludes the recipient. `code` is None when the statement applies, otherwise why it did not.
    """

    consent_id: str
    position: int
    in_force: bool
    valid: bool
    applies: bool
    excludes: bool
    code: DenialCode | None
    rule: Rule
    reason: str
    sections: frozenset[Section]


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """The answer, with its reason: which rule, which statement (or override), which sections.

    `basis` maps every permitted section to the consent statement id or override id it is shared
    under: the legal basis the sharing register records (DESIGN 3.8). `overridden_code` is what consent
    alone would have answered when an override permitted instead; such a decision must be flagged on the
    episode and the register.
    """

    outcome: Outcome
    code: DenialCode | None
    rule: Rule
    consent_id: str | None
    reason: str
    permitted_sections: frozenset[Section]
    refused_sections: frozenset[Section]
    basis: tuple[tuple[Section, str], ...]
    statements: tuple[StatementFinding, ...]
    override_id: str | None = None
    overridden_code: DenialCode | None = None

    @property
    def permitted(self) -> bool:
        return self.outcome is Outcome.PERMIT

    @property
    def overridden(self) -> bool:
        """True when a public-interest override, not consent, is the basis of some section."""
        return self.override_id is not None

    def basis_for(self, section: Section) -> str | None:
        """The consent id or override id a permitted section is shared under (None: refused)."""
        return next((basis for s, basis in self.basis if s is section), None)


def name_words(name: str) -> tuple[str, ...]:
    """A person's name as the consent engine compares names: the words the matcher uses (case,
    accents, apostrophes and punctuation ignored: "Zoë-Mae" and "zoe mae"), after compatibility
    normalisation (full-width letters)."""
    return name_tokens(unicodedata.normalize("NFKC", name))


def agency_words(name: str) -> tuple[str, ...]:
    """An agency's name as the consent engine compares them: as `name_words`, but its numbers are
    words too ("Early Help Team 1" is not "Early Help Team 2", "NHS 111" is not every NHS trust),
    each read as a number: in any script's digits, without leading zeros ("Team ٢" and "Team 02"
    are "Team 2")."""
    words: list[str] = []
    current: list[str] = []
    for char in fold(unicodedata.normalize("NFKC", name)) + " ":
        if char.isdecimal():
            current.append(str(unicodedata.decimal(char)))
        elif char.isalnum():
            current.append(char)
        elif current:
            word = "".join(current)
            words.append((word.lstrip("0") or "0") if word.isascii() and word.isdigit() else word)
            current = []
    return tuple(words)
