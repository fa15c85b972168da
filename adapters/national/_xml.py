"""National XML (`urn:caf:national:1`) <-> national JSON values, losslessly.

Encoding and decoding follow the document shape compiled from the models (see `_shape.py` and
`schemas/_xml_schema.py` for the rules). Decoding is strict: an unknown or repeated element is an error
with its XPath. `xsd_problems` checks a tree against the shipped XSD and reports XPaths and XSD error
kinds only: libxml2's own messages quote the offending values, which may be personal data.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from lxml import etree

from schemas import Problem
from schemas._xml_schema import NAMESPACE, ROOT, shipped_xsd

from .._base import AdapterError
from .._safe import parse_xml
from ._shape import Shape, episode_shape

__all__ = ["decode", "encode", "xpath_of", "xsd_problems"]

_NS = f"{{{NAMESPACE}}}"
_NS_LEN = len(_NS)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


# --- encoding ---------------------------------------------------------------------------------


def encode(document: Mapping[str, Any]) -> bytes:
    """A national JSON document (as decoded JSON values) as national XML bytes (UTF-8)."""
    root = etree.Element(_NS + ROOT, nsmap={None: NAMESPACE})
    _encode_fields(root, document, episode_shape())
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _guess(value: Any) -> Shape:
    """Shape of a value the schema does not know (only met when encoding invalid documents)."""
    if isinstance(value, Mapping):
        return Shape("model")
    if isinstance(value, list):
        return Shape("array", item=Shape("string"))
    return Shape("string")


def _encode_fields(element: etree._Element, value: Mapping[str, Any], shape: Shape) -> None:
    for key, item in value.items():
        _encode(element, key, item, shape.fields.get(key) or _guess(item))


def _encode(parent: etree._Element, name: str, value: Any, shape: Shape) -> None:
    if value is None:
        return
    element = etree.SubElement(parent, _NS + name)
    if shape.kind == "model" and isinstance(value, Mapping):
        _encode_fields(element, value, shape)
    elif shape.kind == "array" and isinstance(value, list):
        item_shape = shape.item or Shape("string")
        for item in value:
            _encode(element, shape.item_name, item, item_shape)
    elif shape.kind == "open" and isinstance(value, Mapping):
        for key, member in value.items():
            _encode_json(element, member, key)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        _set_text(element, value if isinstance(value, str) else json.dumps(value))


def _set_text(element: etree._Element, text: str) -> None:
    try:
        element.text = text
    except ValueError:  # NUL and most control characters cannot be written in XML 1.0
        raise AdapterError(
            "schema_violation", "text has a character XML cannot hold", _where(element)
        ) from None


def _set_key(element: etree._Element, key: str) -> None:
    try:
        element.set("key", key)
    except ValueError:  # as for text: a member name XML cannot hold
        raise AdapterError(
            "schema_violation", "a member name has a character XML cannot hold", _where(element)
        ) from None


def _where(element: etree._Element) -> str:
    return "/" + "/".join(
        etree.QName(e).localname for e in reversed([element, *element.iterancestors()])
    )


def _encode_json(parent: etree._Element, value: Any, key: str | None) -> None:
    """One JSON value in the W3C json-to-xml vocabulary (`map`, `array`, `string`, ...)."""
    if isinstance(value, Mapping):
        element = etree.SubElement(parent, _NS + "map")
        for k, v in value.items():
            _encode_json(element, v, k)
    elif isinstance(value, list):
        element = etree.SubElement(parent, _NS + "array")
        for v in value:
            _encode_json(element, v, None)
    elif isinstance(value, str):
        element = etree.SubElement(parent, _NS + "string")
        _set_text(element, value)
    elif isinstance(value, bool):
        element = etree.SubElement(parent, _NS + "boolean")
        element.text = "true" if value else "false"
    elif isinstance(value, int | float):
        element = etree.SubElement(parent, _NS + "number")
        element.text = json.dumps(value)
    else:
        element = etree.SubElement(parent, _NS + "null")
    if key is not None:
        _set_key(element, key)


# --- decoding ---------------------------------------------------------------------------------


def _name(element: etree._Element, where: str) -> str:
    tag = element.tag
    if not isinstance(tag, str) or not tag.startswith(_NS):
        raise AdapterError("schema_violation", "element outside the national namespace", where)
    return tag[_NS_LEN:]


def decode(root: etree._Element) -> dict[str, Any]:
    """National XML (a parsed, trusted-shape tree) as national JSON values."""
    if _name(root, "/") != ROOT:
        raise AdapterError("unsupported_format", f"the root element must be {ROOT}", "/")
    return _decode_fields(root, episode_shape(), "/" + ROOT)


def _decode_fields(element: etree._Element, shape: Shape, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    fields = shape.fields
    # Plain iteration skipping what is not an element (comments): as iterchildren(etree.Element),
    # at half the cost. Paths are built only to descend or to say where an error is.
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(_NS):
            raise AdapterError("schema_violation", "element outside the national namespace", where)
        name = tag[_NS_LEN:]
        sub = fields.get(name)
        if sub is None:
            raise AdapterError("schema_violation", "element not allowed here", f"{where}/{name}")
        if name in result:
            raise AdapterError("schema_violation", "element repeated", f"{where}/{name}")
        if sub.kind == "string":
            result[name] = _text(child, f"{where}/{name}") if len(child) else child.text or ""
        else:
            result[name] = _decode(child, sub, f"{where}/{name}")
    return result


def _text(element: etree._Element, where: str) -> str:
    """The text of an element holding a comment: `element.text` ends at the first comment, so a
    name written `Sm<!-- -->ith` would be read as `Sm`. Comments are skipped, the runs joined."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            raise AdapterError("schema_violation", "expected text, found an element", where)
        parts.append(child.tail or "")
    return "".join(parts)


def _members(element: etree._Element, where: str) -> dict[str, Any]:
    """The members of a JSON object in the json-to-xml vocabulary. A key given twice is refused,
    as JSON's own reader refuses it (`parse_json`): keeping either value would lose the other."""
    members: dict[str, Any] = {}
    kinds: Counter[str] = Counter()  # an XPath counts a member among those of its own name
    for child in element.iterchildren(etree.Element):
        kind = _name(child, where)
        kinds[kind] += 1
        key = _json_key(child, where)
        if key in members:
            path = f"{where}/{kind}[{kinds[kind]}]"
            raise AdapterError("schema_violation", "an object repeats a key", path)
        members[key] = _decode_json(child, where)
    return members


def _decode(element: etree._Element, shape: Shape, where: str) -> Any:
    if shape.kind == "model":
        return _decode_fields(element, shape, where)
    if shape.kind == "array":
        item_shape = shape.item or Shape("string")
        item_tag = _NS + shape.item_name
        text_items = item_shape.kind == "string"
        items = []
        index = 0
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            index += 1
            if tag != item_tag:
                _name(child, where)  # outside the namespace: that error first
                path = f"{where}/{shape.item_name}[{index}]"
                raise AdapterError("schema_violation", f"expected {shape.item_name}", path)
            if text_items:
                path = f"{where}/{shape.item_name}[{index}]"
                items.append(_text(child, path) if len(child) else child.text or "")
            else:
                path = f"{where}/{shape.item_name}[{index}]"
                items.append(_decode(child, item_shape, path))
        return items
    if shape.kind == "open":
        return _members(element, where)
    text = _text(element, where) if len(element) else element.text or ""
    if shape.kind == "date":
        return text.strip()  # xs:date and xs:dateTime collapse white space: the XSD took it
    if shape.kind == "boolean":
        token = text.strip()
        if token in _TRUE or token in _FALSE:
            return token in _TRUE
        raise AdapterError("schema_violation", "not an xs:boolean", where)
    if shape.kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise AdapterError("schema_violation", "not an xs:integer", where) from None
    return text


def _json_key(element: etree._Element, where: str) -> str:
    key = element.get("key")
    if key is None:
        raise AdapterError("schema_violation", "a member of an object needs a key", where)
    return key


def _decode_json(element: etree._Element, where: str) -> Any:
    kind = _name(element, where)
    path = f"{where}/{kind}"
    if kind == "map":
        return _members(element, path)
    if kind == "array":
        return [_decode_json(c, path) for c in element.iterchildren(etree.Element)]
    text = _text(element, path) if len(element) else element.text or ""
    if kind == "string":
        return text
    if kind == "boolean" and text.strip() in _TRUE | _FALSE:
        return text.strip() in _TRUE
    if kind == "number":
        try:
            number = json.loads(text)
        except ValueError:
            number = None
        if isinstance(number, int) and not isinstance(number, bool):
            return number
        if isinstance(number, float) and math.isfinite(number):  # JSON has no NaN nor infinity
            return number
        raise AdapterError("schema_violation", "not a JSON number", path)
    if kind == "null":
        return None
    raise AdapterError("schema_violation", "not a json-to-xml element", path)


# --- locations and XSD --------------------------------------------------------------------------


def xpath_of(path: tuple[str | int, ...]) -> str:
    """The XPath of a field given as a JSON path (model error location)."""
    parts, shape = ["", ROOT], episode_shape()
    for step in path:
        if isinstance(step, int) and shape.kind == "array":
            parts[-1] = f"{parts[-1]}/{shape.item_name}[{step + 1}]"
            shape = shape.item or Shape("string")
        else:
            parts.append(str(step))
            shape = shape.fields.get(str(step)) or Shape("string")
    return "/".join(parts)


def _readable(root: etree._Element, libxml_path: str | None) -> str | None:
    """libxml2 names default-namespace elements `*`; say `/episode/child/gender` instead."""
    if not libxml_path:
        return None
    prefixes = {prefix: uri for prefix, uri in root.nsmap.items() if prefix}
    try:
        found = root.getroottree().xpath(libxml_path, namespaces=prefixes)
    except etree.XPathError:
        return libxml_path
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return libxml_path
    steps = []
    for element in [found[0], *found[0].iterancestors()]:
        name = etree.QName(element).localname
        parent = element.getparent()
        same = [] if parent is None else [c for c in parent if c.tag == element.tag]
        steps.append(f"{name}[{same.index(element) + 1}]" if len(same) > 1 else name)
    return "/" + "/".join(reversed(steps))


@cache
def _xsd() -> etree.XMLSchema:
    return etree.XMLSchema(parse_xml(shipped_xsd().encode("utf-8")))


def xsd_problems(root: etree._Element) -> Iterator[Problem]:
    """Where `root` breaks the shipped XSD: XPath and error kind, never the value."""
    schema = _xsd()
    if schema.validate(root):
        return
    for entry in schema.error_log:
        kind = entry.type_name.lower()
        yield Problem(
            (),
            f"xsd.{kind}",
            f"breaks the national XSD ({kind}, line {entry.line})",
            location=_readable(root, entry.path) or f"line {entry.line}",
        )
