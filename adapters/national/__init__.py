"""The national format itself, `caf-episode/1`, as an adapter: JSON and XML (`urn:caf:national:1`).

National JSON may hold one episode (an object) or several (an array); a bad episode in an array is
rejected with its index and the others go on. National XML holds one episode and is checked against the
shipped XSD before the models, so structural errors come back with their XPath.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Literal

from schemas import Episode, Problem

from .._base import AdapterError, Fate, FidelityReport, FieldReport, Rejection, Translation
from ._shape import Shape, episode_shape
from ._validate import NationalCheck, check_national, sniff_encoding
from ._xml import encode

__all__ = [
    "NATIONAL_JSON",
    "NATIONAL_XML",
    "NationalCheck",
    "check_national",
    "sniff_encoding",
]

Path = tuple[str | int, ...]


def _leaves(value: Any, shape: Shape, pointer: str) -> list[tuple[str, str, str]]:
    """Every mapped value with its JSON pointer, XPath and dotted national name, in document order.

    A report lists a hundred or so fields per episode, so this is on the hot path: one loop over an
    explicit stack, locations built as it goes down."""
    found: list[tuple[str, str, str]] = []
    stack: list[tuple[Any, Shape, str, str, str]] = [(value, shape, pointer, "/episode", "")]
    while stack:
        node, node_shape, at, xpath, dotted = stack.pop()
        if isinstance(node, dict) and node and node_shape.kind == "model":
            fields = node_shape.fields
            for key, item in reversed(node.items()):
                name = f"{dotted}.{key}" if dotted else key
                stack.append(
                    (item, fields.get(key) or _OPEN, f"{at}/{key}", f"{xpath}/{key}", name)
                )
        elif isinstance(node, list) and node and node_shape.kind == "array":
            item_shape, tag = node_shape.item or _OPEN, node_shape.item_name
            for index in range(len(node) - 1, -1, -1):
                stack.append(
                    (
                        node[index],
                        item_shape,
                        f"{at}/{index}",
                        f"{xpath}/{tag}[{index + 1}]",
                        f"{dotted}.{index}",
                    )
                )
        elif node is not None and node != {} and node != []:
            found.append((at, xpath, dotted))
    return found


_OPEN = Shape("open")  # extensions, and anything the schema does not describe: reported whole


def _pointer(path: Path) -> str:
    return Problem(path, "", "").pointer


class _National:
    name: str
    media_type: str
    encoding: Literal["json", "xml"]

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        """`received_at` is ignored: a national document already says when it was received."""
        check = check_national(data, self.encoding)
        errors = [p for p in check.problems if p.severity == "error"]
        translation = Translation(list(check.episodes), FidelityReport(self.name))
        translation.warnings = [p for p in check.problems if p.severity == "warning"]
        if errors and not check.many:
            raise AdapterError(
                "schema_violation", "not a valid caf-episode/1", errors[0].where, errors
            )
        for index in sorted({p.path[0] for p in errors}, key=str):
            mine = [p for p in errors if p.path[:1] == (index,)]
            translation.rejected.append(Rejection(_pointer((index,)), mine))
        shape = episode_shape()
        for origin, episode in zip(check.origins, check.episodes, strict=True):
            prefix = "".join(f"/{step}" for step in origin)
            leaves = _leaves(episode.model_dump(mode="json"), shape, prefix)
            add = translation.report.fields.append
            for pointer, xpath, dotted in leaves:
                location = pointer if self.encoding == "json" else xpath
                add(FieldReport(location, Fate.MAPPED, dotted))
        return translation


class NationalJson(_National):
    name = "national-json"
    media_type = "application/json"
    many_per_document = True
    encoding = "json"

    def detect(self, data: bytes) -> bool:
        head = data[:4096]
        return sniff_encoding(head) == "json" and (
            b"caf-episode/1" in head or b'"episode_id"' in head
        )

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        values = [e.model_dump(mode="json") for e in episodes]
        document = values[0] if len(values) == 1 else values
        return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


class NationalXml(_National):
    name = "national-xml"
    media_type = "application/xml"
    many_per_document = False
    encoding = "xml"

    def detect(self, data: bytes) -> bool:
        return b"urn:caf:national:1" in data[:4096]

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        if len(episodes) != 1:
            raise AdapterError("unsupported_format", "national XML holds exactly one episode")
        return encode(episodes[0].model_dump(mode="json"))


NATIONAL_JSON = NationalJson()
NATIONAL_XML = NationalXml()
