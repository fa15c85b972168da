"""Blind indexes: equality look-ups over encrypted personal data (DESIGN 4; issue 5).

A blind index is HMAC-SHA256(index_key, kind || 0x00 || normalised value) in hex. The database
stores the index, never the identifier, so it can answer "which rows have this NHS number?" while a
reader of the database without the index key learns only which rows share a value. The kind is part
of the message, so a date of birth and a UPN that happened to normalise to the same text still get
different indexes, and an index of one kind cannot be replayed as another.

Kinds and their normalisation:

==================  ==========================================================================
nhs_number          `schemas.normalise_nhs_number` (spaces removed, mod-11 check)
upn                 `schemas.normalise_upn` (upper case, check letter)
dob                 ISO 8601 date (YYYY-MM-DD)
name_dob            family-name skeleton (see `_names`) + "|" + ISO date: exact name + birth look-up
family_name_key     a coarse phonetic code of the family name (`_names.phonetic_key`)
==================  ==========================================================================

The family-name key is the candidate bucket for fuzzy matching. Its coarseness is the trade-off:
a coarse code ("a165" for every O'Brien, Ó Briain, OBrian, Abram ...) puts more rows in a bucket,
so fewer spelling variants are missed and an index value says less about the name (many names share
it), at the cost of decrypting more candidates per look-up. A fine key (the skeleton itself) would
leak exact-name equality and miss every misspelling. The dob bucket complements it for family names
that changed or are spelled beyond the phonetic code's reach (Cohen -> Kohn is fine, Smith -> Jones
is not): look-ups query both and score the union (see `query_terms`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from enum import StrEnum
from typing import NamedTuple

from schemas import normalise_nhs_number, normalise_upn

from ._errors import ProtectionError
from ._keys import KeyRing
from ._names import name_skeleton, phonetic_key

__all__ = ["IndexKind", "IndexValueError", "NameDob", "blind_index", "normalise_for_index"]


class IndexKind(StrEnum):
    NHS_NUMBER = "nhs_number"
    UPN = "upn"
    DOB = "dob"
    NAME_DOB = "name_dob"
    FAMILY_NAME_KEY = "family_name_key"


class NameDob(NamedTuple):
    """The value of a `name_dob` index: a family name and a date of birth."""

    family_name: str
    date_of_birth: dt.date | str


IndexValue = str | dt.date | NameDob


class IndexValueError(ProtectionError, ValueError):
    """A value cannot be indexed under a kind (wrong type, unparseable date, no letters)."""


def _iso_date(value: object, rule: str) -> str:
    if isinstance(value, dt.datetime):
        raise IndexValueError(rule, "a date of birth is a date, not a date and time")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise IndexValueError(
                rule, "a date of birth must be an ISO date (YYYY-MM-DD)"
            ) from None
    raise IndexValueError(rule, "a date of birth must be a date or an ISO date string")


def _text(value: object, rule: str) -> str:
    if not isinstance(value, str):
        raise IndexValueError(rule, "this index kind takes a string")
    return value


def _letters(value: str, rule: str) -> str:
    if not value:
        raise IndexValueError(rule, "a family name must contain at least one letter")
    return value


def normalise_for_index(kind: IndexKind | str, value: IndexValue) -> str:
    """The text that gets HMAC'd; raises `schemas.IdentifierError` or `IndexValueError` (no values)."""
    kind = IndexKind(kind)
    if kind is IndexKind.NHS_NUMBER:
        return normalise_nhs_number(_text(value, "index.nhs_number"))
    if kind is IndexKind.UPN:
        return normalise_upn(_text(value, "index.upn"))
    if kind is IndexKind.DOB:
        return _iso_date(value, "index.dob")
    if kind is IndexKind.NAME_DOB:
        if not isinstance(value, NameDob):
            raise IndexValueError("index.name_dob", "a name_dob index takes a NameDob")
        skeleton = _letters(name_skeleton(value.family_name), "index.name_dob")
        return f"{skeleton}|{_iso_date(value.date_of_birth, 'index.name_dob')}"
    return _letters(phonetic_key(_text(value, "index.family_name_key")), "index.family_name_key")


def blind_index(kind: IndexKind | str, value: IndexValue, ring: KeyRing) -> str:
    """HMAC-SHA256(index_key, kind || 0x00 || normalised value), 64 hex characters."""
    kind = IndexKind(kind)
    message = (
        kind.value.encode("ascii") + b"\x00" + normalise_for_index(kind, value).encode("utf-8")
    )
    return hmac.new(ring.index_key, message, hashlib.sha256).hexdigest()
