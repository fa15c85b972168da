"""The shape of a national document, compiled once from the models' JSON Schema.

The XML codec walks this shape instead of guessing from values, so it follows exactly the rules that
`schemas._xml_schema.build_xsd` writes into the XSD: which elements are arrays (and what their items are
called), which are open JSON objects, and which scalars are booleans or integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from schemas._xml_schema import episode_json_schema, item_name

__all__ = ["Shape", "episode_shape"]

Kind = Literal["string", "date", "boolean", "integer", "model", "array", "open"]


@dataclass(frozen=True, slots=True)
class Shape:
    kind: Kind
    fields: Mapping[str, Shape] = field(default_factory=dict)  # for models
    item: Shape | None = None  # for arrays
    item_name: str = "item"  # for arrays


def _compile(schema: Mapping[str, Any], name: str, defs: Mapping[str, Any]) -> Shape:
    variants = schema.get("anyOf")
    if variants is not None:  # `X | None`: the null is an absent element
        (schema,) = [v for v in variants if v.get("type") != "null"]
    if "$ref" in schema:
        return _compile(defs[schema["$ref"].rsplit("/", 1)[1]], name, defs)
    kind = schema.get("type")
    if "properties" in schema:
        props = schema["properties"]
        return Shape("model", fields={k: _compile(v, k, defs) for k, v in props.items()})
    if kind == "array":
        return Shape("array", item=_compile(schema["items"], name, defs), item_name=item_name(name))
    if kind == "object":
        return Shape("open")
    if kind in ("boolean", "integer"):
        return Shape(kind)
    if schema.get("format") in ("date", "date-time"):
        return Shape("date")  # text the XSD reads with its white space collapsed
    return Shape("string")  # strings, enums, UUIDs: text, checked by the model


@cache
def episode_shape() -> Shape:
    schema = episode_json_schema()
    return _compile(schema, "episode", schema["$defs"])
