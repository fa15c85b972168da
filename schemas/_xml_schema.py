"""The national XML encoding (namespace `urn:caf:national:1`) and its XSD, derived from the models.

One rule set maps a JSON document to XML, so the XSD and the codec cannot drift from the models:
- the root element is `episode`; every JSON property is an element of the same (snake_case) name;
- an array is a wrapper element holding one element per item, named by `item_name()`;
- an absent or null optional field is an absent element;
- an open object (`extensions`) holds its members in the W3C json-to-xml vocabulary
  (`map`, `array`, `string`, `number`, `boolean`, `null`, with a `key` attribute), so any JSON
  value survives the trip.

The XSD is generated from the models' JSON Schema (`build_xsd`); `schemas/caf-episode-1.xsd` is that
output, shipped so that other systems can validate without us.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - we only build XML here; nothing is parsed
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from ._models import Episode

__all__ = [
    "JSON_VOCABULARY",
    "NAMESPACE",
    "ROOT",
    "XSD_FILENAME",
    "build_xsd",
    "episode_json_schema",
    "item_name",
    "shipped_xsd",
]

NAMESPACE = "urn:caf:national:1"
ROOT = "episode"
XSD_FILENAME = "caf-episode-1.xsd"
JSON_VOCABULARY = ("map", "array", "string", "number", "boolean", "null")

_XS = "http://www.w3.org/2001/XMLSchema"
_ITEM_NAMES = {
    "applies_to": "ref",
    "assessments": "assessment",
    "consents": "consent",
    "delivery_plan": "action",
    "elements": "element_assessment",
    "excluded": "agency",
    "given_by": "giver",
    "lines": "line",
    "parents_carers": "parent_carer",
    "people_present": "person",
    "previous_names": "name",
    "purposes": "purpose",
    "reviews": "review",
    "sections": "section",
    "service_requests": "service_request",
    "share_with": "agency",
    "tac_members": "member",
}


def item_name(array_field: str) -> str:
    """The element name of one item of an array field."""
    return _ITEM_NAMES.get(array_field, "item")


@cache
def episode_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of `caf-episode/1`, as the models define it."""
    schema = Episode.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:caf:national:1:schema",
        **schema,
    }


def _xs(tag: str, parent: ET.Element | None = None, **attrs: str) -> ET.Element:
    qname = f"{{{_XS}}}{tag}"
    return ET.Element(qname, attrs) if parent is None else ET.SubElement(parent, qname, attrs)


def _unwrap_optional(prop: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    variants = prop.get("anyOf")
    if variants is None:
        return prop, False
    rest = [v for v in variants if v.get("type") != "null"]
    if len(rest) != 1 or len(rest) == len(variants):
        raise ValueError("only `X | None` unions map to XML")
    return rest[0], True


def _is_open_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and "properties" not in schema


def _simple_restriction(parent: ET.Element, base: str, schema: Mapping[str, Any]) -> None:
    simple = _xs("simpleType", parent)
    restriction = _xs("restriction", simple, base=base)
    if "const" in schema:
        _xs("enumeration", restriction, value=str(schema["const"]))
    if "pattern" in schema:
        # JSON Schema patterns are anchored with ^...$; XSD patterns are always anchored.
        _xs("pattern", restriction, value=schema["pattern"].removeprefix("^").removesuffix("$"))
    if "minLength" in schema:
        _xs("minLength", restriction, value=str(schema["minLength"]))
    if "maxLength" in schema:
        _xs("maxLength", restriction, value=str(schema["maxLength"]))
    if "minimum" in schema:
        _xs("minInclusive", restriction, value=str(schema["minimum"]))


_FORMAT_TYPES = {"date": "caf:Date", "date-time": "caf:DateTime", "uuid": "caf:Uuid"}


def _type_into(element: ET.Element, name: str, schema: Mapping[str, Any]) -> None:
    """Give `element` the XML type of the JSON Schema `schema` (named or inline)."""
    if "$ref" in schema:
        element.set("type", "caf:" + schema["$ref"].rsplit("/", 1)[1])
    elif schema.get("type") == "array":
        sequence = _xs("sequence", _xs("complexType", element))
        item = _xs(
            "element",
            sequence,
            name=item_name(name),
            minOccurs=str(schema.get("minItems", 0)),
            maxOccurs="unbounded",
        )
        _type_into(item, name, schema["items"])
    elif _is_open_object(schema) and schema.get("additionalProperties", {}).get("type") == "object":
        element.set("type", "caf:JsonMaps")  # `extensions`: an object of objects
    elif _is_open_object(schema):
        element.set("type", "caf:JsonMembers")
    elif schema.get("type") == "boolean":
        element.set("type", "xs:boolean")
    elif schema.get("type") == "integer":
        _simple_restriction(element, "xs:integer", schema)
    elif schema.get("type") == "string" and schema.get("format") in _FORMAT_TYPES:
        element.set("type", _FORMAT_TYPES[schema["format"]])
    elif schema.get("type") == "string" and schema.keys() & {
        "const",
        "pattern",
        "minLength",
        "maxLength",
    }:
        _simple_restriction(element, "xs:string", schema)
    elif schema.get("type") == "string":
        element.set("type", "xs:string")
    else:
        raise ValueError(f"no XML mapping for the schema of {name}")


def _complex_type(parent: ET.Element, name: str, schema: Mapping[str, Any]) -> None:
    complex_type = _xs("complexType", parent, name=name)
    group = _xs("all", complex_type)
    required = set(schema.get("required", ()))
    for prop_name, prop in schema["properties"].items():
        inner, optional = _unwrap_optional(prop)
        is_required = prop_name in required and not optional
        element = _xs("element", group, name=prop_name, minOccurs="1" if is_required else "0")
        _type_into(element, prop_name, inner)


def _enum_type(parent: ET.Element, name: str, values: list[str]) -> None:
    restriction = _xs("restriction", _xs("simpleType", parent, name=name), base="xs:string")
    for value in values:
        _xs("enumeration", restriction, value=value)


def _json_vocabulary(root: ET.Element) -> None:
    members = _xs("complexType", root, name="JsonMembers")
    choice = _xs("choice", _xs("sequence", members), minOccurs="0", maxOccurs="unbounded")
    for tag in JSON_VOCABULARY:
        _xs("element", choice, name=tag, type=f"caf:Json{tag.capitalize()}")
    maps = _xs("complexType", root, name="JsonMaps")
    _xs(
        "element",
        _xs("sequence", maps),
        name="map",
        type="caf:JsonMap",
        minOccurs="0",
        maxOccurs="unbounded",
    )
    for tag in ("map", "array"):
        complex_type = _xs("complexType", root, name=f"Json{tag.capitalize()}")
        extension = _xs("extension", _xs("complexContent", complex_type), base="caf:JsonMembers")
        _xs("attribute", extension, name="key", type="xs:string")
    # A number as JSON writes it: xs:double alone also takes `.5`, `+1`, `1.` and `INF`.
    number = _xs("restriction", _xs("simpleType", root, name="JsonNumberText"), base="xs:double")
    _xs("pattern", number, value=r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+\-]?[0-9]+)?")
    for tag, base in (
        ("string", "xs:string"),
        ("number", "caf:JsonNumberText"),
        ("boolean", "xs:boolean"),
    ):
        complex_type = _xs("complexType", root, name=f"Json{tag.capitalize()}")
        extension = _xs("extension", _xs("simpleContent", complex_type), base=base)
        _xs("attribute", extension, name="key", type="xs:string")
    null = _xs("complexType", root, name="JsonNull")
    _xs("attribute", null, name="key", type="xs:string")


def _format_types(root: ET.Element) -> None:
    for name, base, pattern in (
        ("Date", "xs:date", r"\d{4}-\d{2}-\d{2}"),
        # Timestamps must say their offset, as the models require aware datetimes.
        ("DateTime", "xs:dateTime", r".+(Z|[+\-]\d{2}:\d{2})"),
        # As JSON Schema's `uuid` format: 8-4-4-4-12 hex digits.
        ("Uuid", "xs:string", r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"),
    ):
        restriction = _xs("restriction", _xs("simpleType", root, name=name), base=base)
        _xs("pattern", restriction, value=pattern)


def build_xsd() -> str:
    """The XSD of the national XML encoding, generated from the models' JSON Schema."""
    ET.register_namespace("xs", _XS)
    ET.register_namespace("caf", NAMESPACE)
    schema = episode_json_schema()
    root = _xs(
        "schema",
        targetNamespace=NAMESPACE,
        elementFormDefault="qualified",
        version=schema["$id"],
    )
    root.set("xmlns:caf", NAMESPACE)  # ElementTree only declares prefixes used in names
    _xs("element", root, name=ROOT, type="caf:Episode")
    _complex_type(root, "Episode", schema)
    for name, definition in sorted(schema["$defs"].items()):
        if "enum" in definition:
            _enum_type(root, name, definition["enum"])
        elif "properties" in definition:
            _complex_type(root, name, definition)
        # JsonValue needs no type of its own: the json-to-xml vocabulary carries it.
    _json_vocabulary(root)
    _format_types(root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=False) + "\n"


def shipped_xsd() -> str:
    """The XSD file shipped in this package (kept equal to `build_xsd()` by a test)."""
    return files("schemas").joinpath(XSD_FILENAME).read_text(encoding="utf-8")
