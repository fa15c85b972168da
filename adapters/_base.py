"""What every adapter is and returns: the adapter protocol, fidelity reports, and adapter errors.

DESIGN section 5: each format has `detect`, `to_national` (with a fidelity report that accounts for every
local field) and `from_national`. One local document may hold several episodes (a family-level EHA,
a CSV register), so `to_national` returns a `Translation` with a list of episodes, and `from_national`
takes a sequence.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from schemas import Episode, Problem

__all__ = [
    "Adapter",
    "AdapterError",
    "ErrorCode",
    "Fate",
    "FidelityReport",
    "FieldReport",
    "Rejection",
    "Translation",
    "utc_now",
]

ErrorCode = Literal["unsupported_format", "schema_violation", "payload_too_large"]


class AdapterError(ValueError):
    """A whole document cannot be used. `code` is a stable wire code (DESIGN 3.4), `location` an
    XPath, JSON pointer or `row N, column C`; the message never quotes the document's values."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        location: str = "/",
        problems: Sequence[Problem] = (),
    ) -> None:
        super().__init__(f"{code} at {location}: {message}")
        self.code: ErrorCode = code
        self.message = message
        self.location = location
        self.problems = list(problems)  # every located problem, when there are several


class Fate(StrEnum):
    MAPPED = "mapped"  # copied to a national field unchanged
    TRANSFORMED = "transformed"  # changed by a named rule on the way (code lists, date formats)
    EXTENDED = "extended"  # no national home: kept in `extensions` so `from_national` restores it
    REJECTED = "rejected"  # unusable; `rule` and `message` say why


@dataclass(frozen=True, slots=True)
class FieldReport:
    location: str  # where in the local document: XPath, JSON pointer, or "row N, column C"
    fate: Fate
    target: str | None = None  # national field, dotted ("child.identifiers.nhs_number")
    rule: str | None = None  # the transformation rule, or the rejection rule
    message: str | None = None  # for rejections: what is wrong (never the value)


@dataclass(slots=True)
class FidelityReport:
    format: str
    fields: list[FieldReport] = field(default_factory=list)

    def add(
        self,
        location: str,
        fate: Fate,
        target: str | None = None,
        rule: str | None = None,
        message: str | None = None,
    ) -> None:
        self.fields.append(FieldReport(location, fate, target, rule, message))

    def counts(self) -> dict[Fate, int]:
        counted = Counter(f.fate for f in self.fields)
        return {fate: counted.get(fate, 0) for fate in Fate}

    def summary(self) -> str:
        return ", ".join(f"{n} {fate.value}" for fate, n in self.counts().items())


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record of a multi-record document (a CSV row) that could not become an episode."""

    location: str
    problems: list[Problem]


@dataclass(slots=True)
class Translation:
    episodes: list[Episode]
    report: FidelityReport
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


class Adapter(Protocol):
    name: str
    media_type: str
    many_per_document: bool  # can one document hold several episodes (a family, a register)?

    def detect(self, data: bytes) -> bool:
        """Cheap sniff: does this document look like this format? Never raises."""
        ...

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        """Translate; raise `AdapterError` when the document as a whole is unusable."""
        ...

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        """Write episodes back out in this format, restoring what `extensions` kept."""
        ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
