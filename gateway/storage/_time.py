"""Datetimes read back from the database. Columns are `DateTime(timezone=True)` and always written in
UTC, but SQLite has no time zone type and hands them back naive: this makes them aware again."""

from __future__ import annotations

import datetime as dt
from typing import overload

__all__ = ["aware_utc"]


@overload
def aware_utc(moment: dt.datetime) -> dt.datetime: ...
@overload
def aware_utc(moment: None) -> None: ...
def aware_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """`moment` as stored, with UTC attached when the driver dropped it (None stays None)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)
