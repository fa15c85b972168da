"""Reading one JSON field: type checks, code tables, dates, identifiers, and its fidelity entry.

Every value read is reported once at its JSON pointer (mapped, transformed with its rule, extended,
or rejected with a rule and a message). A value the episode cannot do without fails the document
with an `AdapterError` at that pointer. Messages name fields and rules, never values (they are
personal data).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from schemas import IdentifierError, london_today, problems_from

from .._base import AdapterError, Fate, FidelityReport, FieldReport
from . import _patch
from ._codes import NAME

__all__ = ["EXT", "FieldReader", "fail", "model_error"]

T = TypeVar("T")
EXT = f"extensions.{NAME}"
_DATE = re.compile(r"\s*([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})\s*\Z")


def fail(where: str, message: str) -> NoReturn:
    raise AdapterError("schema_violation", message, where or "/")


def model_error(exc: ValidationError, where: str, locations: Mapping[str, str]) -> NoReturn:
    problem = problems_from(exc)[0]
    first = str(problem.path[0]) if problem.path else ""
    fail(locations.get(first, where), f"{problem.rule}: {problem.message}")


# Report entries are immutable and the same for every document of the same shape: share them rather
# than build ~100 frozen dataclasses per document. Bounded, as unknown keys also make locations.
_ENTRIES: dict[tuple[str, Fate, str | None, str | None, str | None], FieldReport] = {}
# The same, for a key of an object: found without writing out the location ("{at}/{key}").
_KEYED: dict[tuple[str, str, Fate, str | None, str | None, str | None], FieldReport] = {}
_MAX_ENTRIES = 20_000


def _given(value: T | None) -> T:
    """Narrow a value read as required (the reader has already failed when it was absent)."""
    if value is None:  # pragma: no cover - unreachable: required readers fail first
        raise AdapterError("schema_violation", "a required value is missing")
    return value


class FieldReader:
    def __init__(self) -> None:
        self.report = FidelityReport(NAME)
        self._fields = self.report.fields

    def add(
        self,
        location: str,
        fate: Fate,
        target: str | None = None,
        rule: str | None = None,
        message: str | None = None,
    ) -> None:
        key = (location, fate, target, rule, message)
        entry = _ENTRIES.get(key)
        if entry is None:
            if len(_ENTRIES) >= _MAX_ENTRIES:
                _ENTRIES.clear()
            entry = _ENTRIES[key] = FieldReport(location, fate, target, rule, message)
        self._fields.append(entry)

    def add_key(
        self,
        at: str,
        key: str,
        fate: Fate,
        target: str | None = None,
        rule: str | None = None,
        message: str | None = None,
    ) -> None:
        """`add` for the value of `key` in the object at `at` (location "{at}/{key}")."""
        entry = _KEYED.get((at, key, fate, target, rule, message))
        if entry is None:
            if len(_KEYED) >= _MAX_ENTRIES:
                _KEYED.clear()
            entry = FieldReport(f"{at}/{key}", fate, target, rule, message)
            _KEYED[at, key, fate, target, rule, message] = entry
        self._fields.append(entry)

    # -- scalar fields --------------------------------------------------------------------------

    def unknown(self, obj: dict[str, Any], known: frozenset[str], at: str) -> None:
        """Keys nobody told us about: kept (the diff against the rendering keeps them)."""
        extra = obj.keys() - known
        if extra:
            for key in obj:
                if key in extra:
                    self.add(f"{at}/{_patch.escape(key)}", Fate.EXTENDED, EXT)

    def text(
        self,
        obj: dict[str, Any],
        key: str,
        at: str,
        target: str,
        *,
        required: bool = False,
        free: bool = False,
    ) -> str | None:
        """A string. Short values are stripped, and blank means absent unless required; free text
        is kept as it is."""
        value = obj.get(key)
        if value is None:
            if required:
                fail(f"{at}/{key}", f"{key} is required")
            if key in obj:
                self.add_key(at, key, Fate.MAPPED, target)
            return None
        if not isinstance(value, str):
            if required:
                fail(f"{at}/{key}", f"{key} must be a string")
            self.add_key(at, key, Fate.REJECTED, target, "type.string", f"{key} must be a string")
            return None
        if not value and required:
            fail(f"{at}/{key}", f"{key} must not be empty")
        text = value if free else value.strip()
        if not text and not free:
            if not required:
                self.add_key(at, key, Fate.TRANSFORMED, target, "text.blank_is_absent")
                return None
            text = value  # only blanks, but something: the national schema takes it as it is
        if text is value:
            self.add_key(at, key, Fate.MAPPED, target)
        else:
            self.add_key(at, key, Fate.TRANSFORMED, target, "text.strip")
        return text

    def date(
        self,
        obj: dict[str, Any],
        key: str,
        at: str,
        target: str,
        *,
        required: bool = False,
        must_parse: bool = False,
        future: str | None = None,
    ) -> dt.date | None:
        """dd/mm/yyyy. An impossible date is rejected, or fails the document when the episode needs
        it (`required`) or when leaving it out would change a meaning (`must_parse`). With `future`
        (a rule name), a date after today is rejected too."""
        value = obj.get(key)
        if value is None:
            if required:
                fail(f"{at}/{key}", f"{key} is required")
            if key in obj:
                self.add_key(at, key, Fate.MAPPED, target)
            return None
        match = _DATE.match(value) if isinstance(value, str) else None
        day = None
        if match:
            try:
                day = dt.date(int(match[3]), int(match[2]), int(match[1]))
            except ValueError:
                day = None
        if day is None:
            message = f"{key} is not a real date written dd/mm/yyyy"
            if required or must_parse:
                fail(f"{at}/{key}", f"{message} (rule date.dd_mm_yyyy)")
            self.add_key(at, key, Fate.REJECTED, target, "date.dd_mm_yyyy", message)
            return None
        if future is not None and day > london_today():
            self.add_key(at, key, Fate.REJECTED, target, future, f"{key} is in the future")
            return None
        self.add_key(at, key, Fate.TRANSFORMED, target, "date.dd_mm_yyyy")
        return day

    def code(
        self,
        obj: dict[str, Any],
        key: str,
        at: str,
        target: str,
        table: Mapping[str, T],
        rule: str,
        *,
        required: bool = False,
        lower: bool = False,
    ) -> T | None:
        value = obj.get(key)
        if value is None:
            if required:
                fail(f"{at}/{key}", f"{key} is required")
            if key in obj:
                self.add_key(at, key, Fate.MAPPED, target)
            return None
        found = None
        if isinstance(value, str):
            folded = value.strip()
            found = table.get(folded.lower() if lower else folded.upper())
        if found is None:
            message = f"{key} is not one of the codes of rule {rule}"
            if required:
                fail(f"{at}/{key}", message)
            self.add_key(at, key, Fate.REJECTED, target, rule, message)
            return None
        self.add_key(at, key, Fate.TRANSFORMED, target, rule)
        return found

    def flag(
        self, obj: dict[str, Any], key: str, at: str, target: str, *, required: bool = False
    ) -> bool | None:
        value = obj.get(key)
        if isinstance(value, bool):
            self.add_key(at, key, Fate.MAPPED, target)
            return value
        if required:
            fail(f"{at}/{key}", f"{key} must be true or false")
        if key in obj:
            if value is None:
                self.add_key(at, key, Fate.MAPPED, target)
            else:
                message = f"{key} must be a boolean"
                self.add_key(at, key, Fate.REJECTED, target, "type.boolean", message)
        return None

    def identifier(
        self,
        obj: dict[str, Any],
        key: str,
        at: str,
        target: str,
        normalise: Callable[[str], str],
    ) -> str | None:
        value = obj.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key in obj:
                self.add_key(at, key, Fate.MAPPED, target)
            return None
        if not isinstance(value, str):
            self.add_key(at, key, Fate.REJECTED, target, "type.string", f"{key} must be a string")
            return None
        try:
            normalised = normalise(value)
        except IdentifierError as exc:
            self.add_key(at, key, Fate.REJECTED, target, exc.rule, exc.message)
            return None
        if normalised == value:
            self.add_key(at, key, Fate.MAPPED, target)
        else:
            self.add_key(at, key, Fate.TRANSFORMED, target, "identifier.normalise")
        return normalised

    def obj(self, value: Any, where: str, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            fail(where, f"{what} must be a JSON object")
        return value

    def array(self, parent: dict[str, Any], key: str, at: str, target: str) -> list[Any]:
        """A list; the list itself is reported too, so an empty or null one is accounted for."""
        value = parent.get(key)
        if key in parent:
            self.add_key(at, key, Fate.MAPPED, target)
        if value is None:
            return []
        if not isinstance(value, list):
            fail(f"{at}/{key}", f"{key} must be a JSON array")
        return value

    # -- required values, typed as present ------------------------------------------------------

    def required_text(
        self, obj: dict[str, Any], key: str, at: str, target: str, *, free: bool = False
    ) -> str:
        return _given(self.text(obj, key, at, target, required=True, free=free))

    def required_date(self, obj: dict[str, Any], key: str, at: str, target: str) -> dt.date:
        return _given(self.date(obj, key, at, target, required=True))

    def required_code(
        self,
        obj: dict[str, Any],
        key: str,
        at: str,
        target: str,
        table: Mapping[str, T],
        rule: str,
    ) -> T:
        return _given(self.code(obj, key, at, target, table, rule, required=True))

    def required_flag(self, obj: dict[str, Any], key: str, at: str, target: str) -> bool:
        return _given(self.flag(obj, key, at, target, required=True))
