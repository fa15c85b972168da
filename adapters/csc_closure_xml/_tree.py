"""The closing summary as plain JSON (xmltodict's convention) and back.

An element with neither attributes nor child elements becomes its (stripped) text; otherwise a dict
with `@name` for attributes, child local names as keys (a list when repeated, and always for
`Service`, `Need` and `Professional`), and `#text` for text (text between child elements is
joined to it, so it is kept, though not in its place). Our namespace and no namespace read
alike; an element of another namespace keeps its Clark name (`{uri}Name`) and is written back in it.
Comments and processing instructions are skipped: the text on either side runs on, joined with
nothing added (`Adeyemi<!-- x -->-Jones` is `Adeyemi-Jones`).

Reading walks the tree once (lxml's per-element cost dominates); the reader then takes the national
fields out of the result, and what remains is, as it stands, the extension.
"""

from __future__ import annotations

import json

from lxml import etree
from pydantic import JsonValue

from ._codes import NS_PREFIX

__all__ = ["append_json", "merge_json", "to_json"]

_NS_LEN = len(NS_PREFIX)
FORCE_LIST = frozenset({"Service", "Need", "Professional"})


# Tag -> key, so that each document does not slice (and hash) the same names again: a third of the
# walk. Bounded: a document with odd names uses the slow way for what does not fit.
_KEYS: dict[object, str] = {}
_KEYS_LIMIT = 1_000


def to_json(element: etree._Element) -> JsonValue:
    attributes = element.items()
    if not attributes and not len(element):  # the common case: text only
        text = element.text
        return text.strip() if text else ""
    value: dict[str, JsonValue] = {}
    for name, attribute in attributes:
        value[f"@{name}"] = attribute.strip()
    runs = [element.text or ""]  # the text between child elements, joined with a space below
    repeated: set[str] | None = None
    for child in element:  # plain iteration: iterchildren(etree.Element) is twice as slow
        tag = child.tag
        key = _KEYS.get(tag)
        if key is None:
            if not isinstance(tag, str):  # a comment or processing instruction: the text runs on
                runs[-1] += child.tail or ""
                continue
            key = tag[_NS_LEN:] if tag.startswith(NS_PREFIX) else tag
            if len(_KEYS) < _KEYS_LIMIT:
                _KEYS[tag] = key
        runs.append(child.tail or "")
        item: JsonValue
        if len(child) or child.keys():
            item = to_json(child)
        else:  # a text-only child, without the call
            item = child.text
            item = item.strip() if item else ""
        found = value.get(key)
        if found is None:
            value[key] = [item] if key in FORCE_LIST else item
        elif key in FORCE_LIST or (repeated is not None and key in repeated):
            found.append(item)  # type: ignore[union-attr]  # a list: made one below or above
        else:
            value[key] = [found, item]
            if repeated is None:
                repeated = {key}
            else:
                repeated.add(key)
    joined = "".join(runs)  # most containers hold only layout between their children: no text
    text = (
        " ".join(stripped for run in runs if (stripped := run.strip()))
        if joined and not joined.isspace()
        else ""
    )
    if not value:  # text and comments only: text, as if there were no comments
        return text
    if text:
        value["#text"] = text
    return value


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
