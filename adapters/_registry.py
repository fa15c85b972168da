"""Every adapter by name, and detection: which adapter reads this document?"""

from __future__ import annotations

from . import caf_register_csv, csc_closure_xml, ecaf_xml_v3, eha_json
from ._base import Adapter, AdapterError
from .national import NATIONAL_JSON, NATIONAL_XML

__all__ = ["adapter_names", "detect_adapter", "get_adapter"]

# Most specific first: detection takes the first adapter that recognises a document.
_ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        NATIONAL_XML,
        NATIONAL_JSON,
        ecaf_xml_v3.ADAPTER,
        csc_closure_xml.ADAPTER,
        eha_json.ADAPTER,
        caf_register_csv.ADAPTER,
    )
}


def adapter_names() -> list[str]:
    return list(_ADAPTERS)


def get_adapter(name: str) -> Adapter:
    try:
        return _ADAPTERS[name]
    except KeyError:
        raise AdapterError(
            "unsupported_format", f"unknown format; known: {', '.join(_ADAPTERS)}"
        ) from None


def detect_adapter(data: bytes) -> Adapter:
    for adapter in _ADAPTERS.values():
        if adapter.detect(data):
            return adapter
    raise AdapterError("unsupported_format", "no adapter recognises this document")
