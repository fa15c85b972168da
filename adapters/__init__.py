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

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Adapter",
    "AdapterError",
    "ErrorCode",
    "Fate",
    "FidelityReport",
    "FieldReport",
    "Rejection",
    "Translation",
    "adapter_names",
    "detect_adapter",
    "get_adapter",
    "parse_json",
    "parse_xml",
]
