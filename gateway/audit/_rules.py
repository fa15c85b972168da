"""What a new audit entry may hold (DESIGN 3.8): opaque identifiers and codes, never personal data.

The audit log is read by DPOs and auditors and kept longer than the data it describes, so it must not
become a second copy of that data. Names and free text cannot be recognised reliably, so the rules admit
only what an identifier or a code looks like: no whitespace (no "Jane Smith", no sentences), bounded
lengths that fit the storage columns, dotted lower-case action and reason codes. NHS numbers can be
recognised (ten digits, modulus 11 check), so any field or detail that is one is refused outright.

These rules apply to drafts only. Entries read back from storage are checked by their hashes instead: a
verifier that refused to read a row it dislikes could not report what was done to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from schemas import IdentifierError, normalise_nhs_number

from ._canonical import CanonicalError, canonical_json

__all__ = [
    "AuditRuleError",
    "check_code",
    "check_details",
    "check_identifier",
]

_ACTION = re.compile(
    r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+"
)  # resource.verb, e.g. consent.withdraw
_REASON = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")  # a wire error code or a rule name
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]*")  # no "@": an e-mail address is personal
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DETAIL_TEXT = re.compile(r"[!-~]*")  # printable ASCII without space: codes and ids, never prose
_TEN_DIGITS = re.compile(r"\d[\d\s-]{8,}\d")

MAX_DETAIL_TEXT = 200
MAX_DETAILS_BYTES = 2048
MAX_DETAIL_ITEMS = 64


class AuditRuleError(ValueError):
    """A draft breaks a rule; the message names the field and the rule, never the value."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"audit entry field {field!r} breaks rule {rule}")
        self.field = field
        self.rule = rule


def _is_nhs_number(text: str) -> bool:
    if not _TEN_DIGITS.fullmatch(text):
        return False
    try:
        normalise_nhs_number(text)
    except IdentifierError:
        return False
    return True


def check_identifier(field: str, value: str, max_length: int) -> None:
    """An opaque id (client, member, lead contact, episode, request): bounded, no spaces, no NHS number."""
    if not 0 < len(value) <= max_length or not _IDENTIFIER.fullmatch(value):
        raise AuditRuleError(field, "audit.identifier")
    if _is_nhs_number(value):
        raise AuditRuleError(field, "audit.no_nhs_number")


def check_code(field: str, value: str, max_length: int) -> None:
    """A dotted lower-case code: `action` must name a resource and a verb, `reason` may be one word."""
    pattern = _ACTION if field == "action" else _REASON
    if len(value) > max_length or not pattern.fullmatch(value):
        raise AuditRuleError(field, f"audit.{field}_code")


def _check_detail(path: str, value: object, depth: int) -> None:
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT or not _DETAIL_TEXT.fullmatch(value):
            raise AuditRuleError(path, "audit.details_text")
        if _is_nhs_number(value):
            raise AuditRuleError(path, "audit.no_nhs_number")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if _is_nhs_number(str(abs(value))):
            raise AuditRuleError(path, "audit.no_nhs_number")
    elif depth >= 3:
        raise AuditRuleError(path, "audit.details_depth")
    elif isinstance(value, Mapping):
        if len(value) > MAX_DETAIL_ITEMS:
            raise AuditRuleError(path, "audit.details_size")
        for key, item in value.items():
            if not isinstance(key, str) or not _DETAIL_KEY.fullmatch(key):
                raise AuditRuleError(path, "audit.details_key")
            _check_detail(f"{path}.{key}", item, depth + 1)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_DETAIL_ITEMS:
            raise AuditRuleError(path, "audit.details_size")
        for index, item in enumerate(value):
            _check_detail(f"{path}[{index}]", item, depth + 1)
    else:
        raise AuditRuleError(path, "audit.details_type")  # floats included: see _canonical


def check_details(details: Mapping[str, object]) -> None:
    """A small JSON object of codes, ids, counts and flags: at most three levels and 2 KiB canonical."""
    if not isinstance(details, Mapping):
        raise AuditRuleError("details", "audit.details_type")
    _check_detail("details", details, 0)
    try:
        size = len(canonical_json(details))
    except CanonicalError as exc:
        raise AuditRuleError("details", exc.rule) from exc
    if size > MAX_DETAILS_BYTES:
        raise AuditRuleError("details", "audit.details_size")
