"""The closing summary as plain JSON (xmltodict's convention) and back.

An element with neither attributes nor child elements becomes its (stripped) text; otherwise a dict
with `@name` for attributes, child local names as keys (a list when repeated, and always for
`Service`, `Need` and `Professional`), and `#text` for text (text between child elements is
joined to it, so it is kept, though not in its place). Our namespace and no namespace read
alike; an element of another namespace keeps its Clark name (`{uri}Name`) and is written back in it.
Comments are skipped.

Reading walks the tree once (lxml's per-element cost dominates); the reader then takes the national
fields out of the result, and what remains is, as it stands, the extension.
"""

from __future__ import annotations

import json

from lxml import etree
from pydantic import JsonValue

from ._codes import NS_PREFIX

__all__ = ["append_json", "leaves", "merge_json", "to_json"]

_NS_LEN = len(NS_PREFIX)
FORCE_LIST = frozenset({"Service", "Need", "Professional"})


def to_json(element: etree._Element) -> JsonValue:
    text = element.text
    text = text.strip() if text else ""
    if not len(element) and not element.keys():  # the common case: text only
        return text
    value: dict[str, JsonValue] = {f"@{k}": v.strip() for k, v in element.items()}
    repeated: set[str] = set()
    for child in element:  # plain iteration: iterchildren(etree.Element) is twice as slow
        tail = child.tail
        if tail and not tail.isspace():  # text between elements: kept, joined to the text
            text = f"{text} {tail.strip()}" if text else tail.strip()
        tag = child.tag
        if not isinstance(tag, str):  # a comment
            continue
        key = tag[_NS_LEN:] if tag.startswith(NS_PREFIX) else tag
        item = to_json(child)
        found = value.get(key)
        if found is None:
            value[key] = [item] if key in FORCE_LIST else item
        elif key in FORCE_LIST or key in repeated:
            found.append(item)  # type: ignore[union-attr]  # a list: made one below or above
        else:
            value[key] = [found, item]
            repeated.add(key)
    if text:
        value["#text"] = text
    return value or text


def leaves(value: JsonValue, where: str, found: list[str]) -> list[str]:
    """Add the location (XPath) of every text and attribute in a `to_json` value to `found`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key[0] == "@":
                found.append(f"{where}/{key}")
            elif key == "#text":
                found.append(f"{where}/text()")
            else:
                leaves(item, f"{where}/{key}", found)
    elif isinstance(value, list):
        for index, each in enumerate(value, start=1):
            leaves(each, f"{where}[{index}]", found)
    else:
        found.append(where)
    return found


def _scalar(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tag(key: str) -> str:
    return key if key.startswith("{") else NS_PREFIX + key


def append_json(parent: etree._Element, key: str, value: JsonValue) -> None:
    """Write `value` back as element(s) named `key` under `parent`. Raises ValueError for keys or
    text XML cannot carry (the caller says where)."""
    if isinstance(value, list):
        for item in value:
            append_json(parent, key, item)
        return
    element = etree.SubElement(parent, _tag(key))
    if isinstance(value, dict):
        merge_json(element, value)
    elif value is not None and value != "":
        element.text = _scalar(value)


def merge_json(element: etree._Element, value: dict[str, JsonValue]) -> None:
    """Add attributes, text and children to an element the national side already wrote; a dict for a
    child that exists once merges into it (the Child's Name, say), anything else is appended."""
    for key, item in value.items():
        if key.startswith("@"):
            element.set(key[1:], _scalar(item))
        elif key == "#text":
            element.text = _scalar(item)
        elif isinstance(item, dict):
            tag = _tag(key)
            existing = [c for c in element.iterchildren(etree.Element) if c.tag == tag]
            if len(existing) == 1:
                merge_json(existing[0], item)
            else:
                append_json(element, key, item)
        else:
            append_json(element, key, item)
