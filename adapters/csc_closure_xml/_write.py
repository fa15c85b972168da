"""National episode -> closing summary, restoring what `extensions` kept."""

from __future__ import annotations

from lxml import etree
from pydantic import JsonValue

from schemas import Episode

from .._base import AdapterError
from ._codes import FORMAT, GENDER_TO_CIN, NS, NS_PREFIX, ROOT, ROOT_ORDER
from ._tree import append_json, merge_json

__all__ = ["write"]

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _sub(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, NS_PREFIX + name).text = text


def _case(episode: Episode) -> etree._Element:
    case = etree.Element(NS_PREFIX + "Case")
    _sub(case, "CaseNumber", episode.local_ref)
    _sub(case, "LA", episode.home_authority)
    return case


def _child(episode: Episode) -> etree._Element:
    child, data = etree.Element(NS_PREFIX + "Child"), episode.child
    name = etree.SubElement(child, NS_PREFIX + "Name")
    _sub(name, "Given", data.given_names)
    _sub(name, "Family", data.family_name)
    _sub(child, "BirthDate", data.date_of_birth.isoformat() if data.date_of_birth else None)
    _sub(child, "Sex", GENDER_TO_CIN[data.gender])
    _sub(child, "NHSNo", data.identifiers.nhs_number)
    _sub(child, "UPN", data.identifiers.upn)
    _sub(child, "Ethnicity", data.ethnicity.value if data.ethnicity else None)
    _sub(child, "Postcode", data.address.postcode if data.address else None)
    return child


def _professionals(episode: Episode, extras: JsonValue) -> etree._Element:
    container = etree.Element(NS_PREFIX + "ContinuingProfessionals")
    own = extras if isinstance(extras, list) else []
    for index, member in enumerate(episode.tac_members):
        professional = etree.SubElement(container, NS_PREFIX + "Professional")
        _sub(professional, "Name", member.name)
        _sub(professional, "Agency", member.organisation)
        _sub(professional, "AgencyType", member.agency_type.value)
        extra = own[index] if index < len(own) else None
        if isinstance(extra, dict):
            merge_json(professional, extra)
    return container


def _national(episode: Episode, ext: dict[str, JsonValue]) -> dict[str, etree._Element]:
    """The elements the national fields fill, by root child name."""
    built = {"Case": _case(episode), "Child": _child(episode)}
    if episode.lead_professional is not None:
        preferred = etree.Element(NS_PREFIX + "PreferredLeadProfessional")
        preferred.text = episode.lead_professional.name
        built["PreferredLeadProfessional"] = preferred
    if episode.tac_members:
        built["ContinuingProfessionals"] = _professionals(episode, ext.get("#tac_members"))
    return built


def write(episode: Episode) -> bytes:
    kept = episode.extensions.get(FORMAT, {})
    root = etree.Element(NS_PREFIX + ROOT, nsmap={None: NS})
    try:
        built = _national(episode, kept)
        for name in ROOT_ORDER:
            element, value = built.get(name), kept.get(name)
            if element is not None:
                root.append(element)
                if isinstance(value, dict):  # what the national side has no place for
                    merge_json(element, value)
            elif value is not None:
                append_json(root, name, value)
        for key, value in kept.items():
            if key.startswith("@"):
                root.set(key[1:], value if isinstance(value, str) else str(value))
            elif key not in ROOT_ORDER and not key.startswith("#"):
                append_json(root, key, value)
    except ValueError:  # lxml refuses control characters, and names that are not XML names
        raise AdapterError(
            "schema_violation",
            "the episode or its extensions hold a name or character XML cannot carry",
        ) from None
    text = kept.get("#text")  # stray text directly in the root, kept like the rest
    root.text = f"\n{text}\n" if isinstance(text, str) and text else "\n"
    for element in root:
        element.tail = "\n"
    return _DECLARATION + etree.tostring(root, encoding="UTF-8")
