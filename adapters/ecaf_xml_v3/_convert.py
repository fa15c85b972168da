"""Leaf conversions for the reader: text of an element -> national value, or `Bad` with a rule.

Each converter takes the element's text (None when the element is empty) and returns the national value,
or None for "no value"; it raises `Bad` when the text cannot be used. Messages never quote the text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree

from schemas import is_gss_code

from .._xsdate import TIMEZONE_DROPPED, without_timezone

__all__ = [
    "Bad",
    "Converted",
    "Converter",
    "boolean",
    "code",
    "date",
    "free_text",
    "gss_code",
    "leaf_text",
    "short_text",
]

Converter = Callable[[str | None], Any]


class Bad(ValueError):
    """A local value cannot be used: `rule` is a stable name, `message` says why (never the value)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class Converted(Bad):
    """Not a fault: the text converts to `value`, but by a rule that changes what it says (`rule`:
    a date's time zone dropped). A `Bad`, so that the readers' fast paths, which take values as
    they convert unchanged, leave it to the general path (`Walk.value`), which reports it
    transformed. The common case never raises it, so it costs nothing there."""

    def __init__(self, value: Any, rule: str, message: str) -> None:
        super().__init__(rule, message)
        self.value = value


def leaf_text(el: etree._Element) -> str | None:
    """The text of an element that should hold only text (comments inside it are skipped)."""
    if len(el) == 0:
        return el.text
    parts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str):
            raise Bad("ecaf.not_text", "expected text, found child elements")
        parts.append(child.tail or "")
    return "".join(parts)


def short_text(text: str | None) -> str | None:
    """Names, references, telephone numbers: surrounding white space is not part of the value."""
    if text is None:
        return None
    return text.strip() or None


def free_text(text: str | None) -> str | None:
    """Narrative text (strengths, needs, reasons) is kept exactly, white space and all: it is what a
    practitioner wrote, and eCAF's exports keep it so (a reason may end with a space)."""
    return text


def date(text: str | None) -> dt.date | None:
    """An XML Schema date: YYYY-MM-DD, or with a time zone (`Z`, `+01:00`), which is dropped: the
    calendar date is kept and `Converted` says so (rule `date.timezone_dropped`)."""
    if text is None:
        return None
    value = text.strip()
    if len(value) != 10:
        day = without_timezone(value)
        if day is None:
            raise Bad("date.format", "not an ISO 8601 date (YYYY-MM-DD)")
        raise Converted(_calendar(day), TIMEZONE_DROPPED, "the date's time zone is not kept")
    if value[4] != "-" or value[7] != "-":
        raise Bad("date.format", "not an ISO 8601 date (YYYY-MM-DD)")
    return _calendar(value)


def _calendar(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Bad("date.format", "not a valid calendar date") from None


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def boolean(text: str | None) -> bool | None:
    """An XML Schema boolean: true, false, 1 or 0."""
    if text is None:
        return None
    value = _BOOLEANS.get(text.strip())
    if value is None:
        raise Bad("boolean.format", "not an XML boolean (true, false, 1, 0)")
    return value


def code(table: Mapping[str, Any], rule: str, what: str) -> Converter:
    """A code from a list; `rule` names the failure (`gender.unknown_code`)."""

    def convert(text: str | None) -> Any:
        if text is None:
            return None
        value = table.get(text.strip())
        if value is None:
            raise Bad(rule, f"not a known {what} code")
        return value

    return convert


def gss_code(text: str | None) -> str | None:
    """An ONS GSS code (a TAC member's authority)."""
    if text is None:
        return None
    value = text.strip().upper()
    if not is_gss_code(value):
        raise Bad("gss_code.format", "a GSS code is a country letter and 8 digits")
    return value
