"""XML Schema's `xs:date` (XSD 1.1 part 2, section 3.3.9) as the XML adapters read it.

A local XML date may carry a time zone: `2025-05-14Z`, `2025-05-14+01:00` (an offset of at most
14 hours: `(0\\d|1[0-3]):[0-5]\\d` or `14:00`). The national schema's dates carry none, so the
calendar date is kept as written and the offset dropped, reported `transformed` with
`TIMEZONE_DROPPED`. Writing back gives the date alone: the offset does not survive a round trip.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["TIMEZONE_DROPPED", "without_timezone"]

TIMEZONE_DROPPED: Final = "date.timezone_dropped"

_WITH_TIMEZONE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


def without_timezone(value: str) -> str | None:
    """`2025-05-14+01:00` -> `2025-05-14`: the calendar date of an `xs:date` written with a time
    zone, or None when `value` is not one. The date itself is left for the caller to check.
    Called only for a value that is not a plain `YYYY-MM-DD`, so plain dates cost nothing more."""
    match = _WITH_TIMEZONE.fullmatch(value)
    return match[1] if match else None
