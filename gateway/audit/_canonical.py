"""Canonical JSON for hashing and signing: the subset of RFC 8785 (JCS) the audit chain needs.

A hash chain is only as good as its serialisation: two honest encoders must produce the same bytes for the
same entry, today and in ten years, or verification reports tampering that never happened. RFC 8785 fixes
those bytes: object members sorted by their UTF-16 code units (not by code points: the two orders differ
for characters above U+FFFF), no insignificant whitespace, strings escaped as ECMAScript's
`JSON.stringify` does (only `"`, `\\` and C0 controls; `\\b \\t \\n \\f \\r` short forms, other controls as
lower-case `\\u00xx`), UTF-8 output.

The subset: numbers are integers within the I-JSON safe range (|n| <= 2**53 - 1), whose RFC 8785 form is
plain decimal. Floats are refused rather than implemented (ECMAScript number formatting is the hard part of
the RFC and audit entries never need fractions), as are non-string keys and lone surrogates, which have no
UTF-8 encoding. No library is used: none is installed, and this subset is small enough to read in full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeAlias

__all__ = ["MAX_SAFE_INTEGER", "CanonicalError", "JsonValue", "canonical_json"]

JsonValue: TypeAlias = (
    "None | bool | int | str | list[JsonValue] | tuple[JsonValue, ...] | Mapping[str, JsonValue]"
)

MAX_SAFE_INTEGER = (
    2**53 - 1
)  # RFC 7493 (I-JSON) 2.2: beyond this, numbers lose precision in IEEE 754
_MAX_DEPTH = 32


class CanonicalError(ValueError):
    """The value has no canonical form under the subset above; `rule` names what it breaks."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequence of UTF-16 code units does (RFC 8785 3.2.3).
    return key.encode("utf-16-be", "surrogatepass")


def _normalise(value: object, depth: int) -> object:
    kind = type(value)
    if kind is str or kind is bool or value is None:  # exact types first: the common case, and fast
        return value
    if isinstance(value, int):  # bool cannot be subclassed, so every bool returned above
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise CanonicalError("canonical.integer_range", "integer outside the I-JSON safe range")
    if isinstance(value, str):
        return value
    if depth >= _MAX_DEPTH:
        raise CanonicalError("canonical.depth", "value nested too deeply")
    if isinstance(value, Mapping):
        keys = list(value)
        if not all(isinstance(key, str) for key in keys):
            raise CanonicalError("canonical.key_type", "object keys must be strings")
        if all(key.isascii() for key in keys):
            keys.sort()  # the same order: ASCII code points are single UTF-16 code units
        else:
            keys.sort(key=_utf16_key)
        return {key: _normalise(value[key], depth + 1) for key in keys}
    if isinstance(value, list | tuple):
        return [_normalise(item, depth + 1) for item in value]
    if isinstance(value, float):
        raise CanonicalError("canonical.float", "floating-point numbers are not supported")
    raise CanonicalError("canonical.type", f"{type(value).__name__} is not a JSON value")


def canonical_json(value: object) -> bytes:
    """The RFC 8785 bytes of `value`; raises `CanonicalError` outside the subset described above."""
    text = json.dumps(
        _normalise(value, 0), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError("canonical.surrogate", "string holds a lone surrogate") from exc
