"""Local CAF formats <-> the national schema, with a fidelity report for every field (DESIGN 5)."""

from ._base import (
    Adapter,
    AdapterError,
    ErrorCode,
    Fate,
    FidelityReport,
    FieldReport,
    Rejection,
    Translation,
)
from ._registry import adapter_names, detect_adapter, get_adapter
from ._safe import MAX_DOCUMENT_BYTES, parse_json, parse_xml
from ._written import (
    CHANGED,
    NOT_CARRIED,
    NOT_READABLE,
    Written,
    not_carried,
    write_checked,
    write_document,
)

__all__ = [
    "CHANGED",
    "MAX_DOCUMENT_BYTES",
    "NOT_CARRIED",
    "NOT_READABLE",
    "Adapter",
    "AdapterError",
    "ErrorCode",
    "Fate",
    "FidelityReport",
    "FieldReport",
    "Rejection",
    "Translation",
    "Written",
    "adapter_names",
    "detect_adapter",
    "get_adapter",
    "not_carried",
    "parse_json",
    "parse_xml",
    "write_checked",
    "write_document",
]
