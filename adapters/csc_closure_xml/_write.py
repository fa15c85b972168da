"""National episode -> closing summary, restoring what `extensions` kept."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree
from pydantic import JsonValue

from schemas import Episode, Practitioner

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


def _take_text(kept: dict[str, JsonValue], key: str) -> str | None:
    """Take out the text kept for element `key` (a value the reader rejected); its attributes stay."""
    value = kept.get(key)
    if isinstance(value, str):
        del kept[key]
        return value
    if isinstance(value, dict) and isinstance(text := value.get("#text"), str):
        kept[key] = {k: v for k, v in value.items() if k != "#text"}
        return text
    return None


def _child(episode: Episode, kept: JsonValue) -> etree._Element:
    """The Child, with what extensions kept in it: a value the reader rejected goes back in its
    place, unless the national side now has a value there (a corrected NHS number, say)."""
    child, data = etree.Element(NS_PREFIX + "Child"), episode.child
    name = etree.SubElement(child, NS_PREFIX + "Name")
    _sub(name, "Given", data.given_names)
    _sub(name, "Family", data.family_name)
    values = {
        "BirthDate": data.date_of_birth.isoformat() if data.date_of_birth else None,
        "Sex": GENDER_TO_CIN[data.gender],
        "NHSNo": data.identifiers.nhs_number,
        "UPN": data.identifiers.upn,
        "Ethnicity": data.ethnicity.value if data.ethnicity else None,
        "Postcode": data.address.postcode if data.address else None,
    }
    rest = dict(kept) if isinstance(kept, dict) else {}
    for key, value in values.items():
        rejected = _take_text(rest, key)
        _sub(child, key, rejected if value is None else value)
    merge_json(child, rest)
    return child


def _extras(members: Sequence[Practitioner], kept: JsonValue) -> list[JsonValue]:
    """What each member carried beyond Name, Agency and AgencyType. An entry names the professional
    it came from (Name and Agency as read) and goes only to a member that still matches, so that
    one person's details never land on another after members are removed or reordered. Entries
    kept by position (before they named anyone) are used only while the count still matches."""
    entries = kept if isinstance(kept, list) else []
    if not any(isinstance(e, dict) and "Name" in e for e in entries):  # by position, or none
        return list(entries) if len(entries) == len(members) else [None] * len(members)
    unused = [e for e in entries if isinstance(e, dict)]
    found: list[JsonValue] = []
    for member in members:
        who = (member.name, member.organisation)
        entry = next((e for e in unused if (e.get("Name"), e.get("Agency")) == who), None)
        if entry is not None:
            unused.remove(entry)
            entry = {k: v for k, v in entry.items() if k not in ("Name", "Agency")}
        found.append(entry)
    return found


def _professionals(episode: Episode, kept: JsonValue) -> etree._Element:
    container = etree.Element(NS_PREFIX + "ContinuingProfessionals")
    members = episode.tac_members
    for member, extra in zip(members, _extras(members, kept), strict=True):
        professional = etree.SubElement(container, NS_PREFIX + "Professional")
        _sub(professional, "Name", member.name)
        _sub(professional, "Agency", member.organisation)
        _sub(professional, "AgencyType", member.agency_type.value)
        if isinstance(extra, dict):
            merge_json(professional, extra)
    return container


def _national(episode: Episode, ext: dict[str, JsonValue]) -> dict[str, etree._Element]:
    """The elements the national fields fill, by root child name, with what extensions kept in
    them."""
    built: dict[str, etree._Element] = {"Case": _case(episode)}
    if episode.lead_professional is not None:
        preferred = etree.Element(NS_PREFIX + "PreferredLeadProfessional")
        preferred.text = episode.lead_professional.name
        built["PreferredLeadProfessional"] = preferred
    if episode.tac_members:
        built["ContinuingProfessionals"] = _professionals(episode, ext.get("#tac_members"))
    for name, element in built.items():
        value = ext.get(name)
        if isinstance(value, dict):  # what the national side has no place for
            merge_json(element, value)
    built["Child"] = _child(episode, ext.get("Child"))
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
