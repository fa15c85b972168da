"""Identifier checks for the national schema: NHS number, UPN, ULN and postcode.

Each check normalises its input (no spaces, upper case) and raises `IdentifierError` naming the rule that
failed. Messages never echo the value: identifiers are personal data.
"""

from __future__ import annotations

import re
from operator import mul

__all__ = [
    "IdentifierError",
    "normalise_nhs_number",
    "normalise_postcode",
    "normalise_uln",
    "normalise_upn",
    "postcode_is_strict",
]

UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"  # the DfE check-letter alphabet: no I, O, S
_SEPARATORS = re.compile(r"[\s\-]+")
# Compiled once: these run for every identifier of every document, often twice (adapter and model).
# ASCII digits only, as the published schemas say (`\d` would take any script's digits, whose
# blind index differs from the same number written in ASCII).
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_UPN_SHAPE = re.compile(rf"[{UPN_ALPHABET}][0-9]{{11}}[0-9{UPN_ALPHABET}]")
_MOD11_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_UPN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)  # characters 2-12; the 13th weighs 13


class IdentifierError(ValueError):
    """An identifier failed a named rule, e.g. `nhs_number.checksum`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _compact(value: str) -> str:
    # Already compact (ASCII digits and capitals only): nothing to remove, nothing to upper-case.
    # Most values are, and each is checked twice (by the adapter, then by the model).
    if value.isascii() and value.isalnum() and (value.isdigit() or value.isupper()):
        return value
    return _SEPARATORS.sub("", value).upper()


def _mod11_sum(digits: str) -> int:
    """Weights 10..2 on the first nine digits (shared by the NHS number and the ULN)."""
    # ASCII "0".."9" (`_TEN_DIGITS`): their byte values less 48 (weights 10..2 sum to 54)
    total: int = sum(map(mul, digits[:9].encode(), _MOD11_WEIGHTS))
    return total - 48 * 54


def normalise_nhs_number(value: str) -> str:
    """NHS number: 10 digits, modulus 11 check digit (11 means 0, 10 is never valid)."""
    nhs = _compact(value)
    if not _TEN_DIGITS.fullmatch(nhs):
        raise IdentifierError("nhs_number.format", "an NHS number has exactly 10 digits")
    check = 11 - _mod11_sum(nhs) % 11
    if check == 10:
        raise IdentifierError(
            "nhs_number.checksum", "NHS number check digit would be 10: not valid"
        )
    if check % 11 != int(nhs[9]):
        raise IdentifierError("nhs_number.checksum", "NHS number check digit does not match")
    return nhs


def normalise_uln(value: str) -> str:
    """Unique Learner Number: 10 digits, weights 10..2, r = sum mod 11, r = 0 invalid, check = 10 - r."""
    uln = _compact(value)
    if not _TEN_DIGITS.fullmatch(uln):
        raise IdentifierError("uln.format", "a ULN has exactly 10 digits")
    remainder = _mod11_sum(uln) % 11
    if remainder == 0:
        raise IdentifierError("uln.checksum", "ULN weighted sum is divisible by 11: not valid")
    if 10 - remainder != int(uln[9]):
        raise IdentifierError("uln.checksum", "ULN check digit does not match")
    return uln


def normalise_upn(value: str) -> str:
    """Unique Pupil Number: check letter, 11 digits, then a digit or (temporary UPN) a letter.

    Characters 2-13 are weighted 2..13; the sum mod 23 indexes `UPN_ALPHABET` and must equal
    character 1. In a temporary UPN the final letter counts as its index in that alphabet.
    """
    upn = _compact(value)
    if not _UPN_SHAPE.fullmatch(upn):
        raise IdentifierError(
            "upn.format",
            "a UPN is a check letter, 11 digits and a final digit or letter (13 characters)",
        )
    last = upn[12]
    # ASCII "0".."9" (`_UPN_SHAPE`): their byte values less 48 (weights 2..12 sum to 77)
    total = sum(map(mul, upn[1:12].encode(), _UPN_WEIGHTS)) - 48 * 77
    total += 13 * (int(last) if last.isdigit() else UPN_ALPHABET.index(last))
    if UPN_ALPHABET[total % 23] != upn[0]:
        raise IdentifierError("upn.checksum", "UPN check letter does not match")
    return upn


# Loose: an outward code (area letters, district) and an inward code (sector digit, unit letters);
# or GIR 0AA (Girobank's, the one postcode of another shape).
_POSTCODE_LOOSE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?|GIR)\s*([0-9][A-Z]{2})")
# Strict BS 7666 shapes (with the letter restrictions of each position), and GIR 0AA.
_POSTCODE_STRICT = re.compile(
    r"GIR 0AA|"
    r"(?:[A-PR-UWYZ][0-9][0-9]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9]?"
    r"|[A-PR-UWYZ][0-9][A-HJKPSTUW]|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])"
    r" [0-9][ABD-HJLNP-UW-Z]{2}"
)


def normalise_postcode(value: str) -> str:
    """UK postcode, accepted loosely and normalised to upper case with one space."""
    match = _POSTCODE_LOOSE.fullmatch(value.strip().upper())
    if match is None:
        raise IdentifierError("postcode.format", "not a UK postcode (outward code, inward code)")
    return f"{match[1]} {match[2]}"


def postcode_is_strict(normalised: str) -> bool:
    """Whether a normalised postcode also passes the strict BS 7666 pattern (else: a warning)."""
    return _POSTCODE_STRICT.fullmatch(normalised) is not None
