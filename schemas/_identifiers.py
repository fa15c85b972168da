"""Identifier checks for the national schema: NHS number, UPN, ULN and postcode.

Each check normalises its input (no spaces, upper case) and raises `IdentifierError` naming the rule that
failed. Messages never echo the value: identifiers are personal data.
"""

from __future__ import annotations

import re

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


class IdentifierError(ValueError):
    """An identifier failed a named rule, e.g. `nhs_number.checksum`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value).upper()


def _mod11_sum(digits: str) -> int:
    """Weights 10..2 on the first nine digits (shared by the NHS number and the ULN)."""
    return sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))


def normalise_nhs_number(value: str) -> str:
    """NHS number: 10 digits, modulus 11 check digit (11 means 0, 10 is never valid)."""
    nhs = _compact(value)
    if not re.fullmatch(r"\d{10}", nhs):
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
    if not re.fullmatch(r"\d{10}", uln):
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
    if not re.fullmatch(rf"[{UPN_ALPHABET}]\d{{11}}[0-9{UPN_ALPHABET}]", upn):
        raise IdentifierError(
            "upn.format",
            "a UPN is a check letter, 11 digits and a final digit or letter (13 characters)",
        )
    values = [int(c) for c in upn[1:12]]
    last = upn[12]
    values.append(int(last) if last.isdigit() else UPN_ALPHABET.index(last))
    total = sum(v * w for v, w in zip(values, range(2, 14), strict=True))
    if UPN_ALPHABET[total % 23] != upn[0]:
        raise IdentifierError("upn.checksum", "UPN check letter does not match")
    return upn


# Loose: an outward code (area letters, district) and an inward code (sector digit, unit letters).
_POSTCODE_LOOSE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})")
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
