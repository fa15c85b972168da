"""The national format itself, `caf-episode/1`, as an adapter: JSON and XML (`urn:caf:national:1`).

National JSON may hold one episode (an object) or several (an array); a bad episode in an array is
rejected with its index and the others go on. A document that is not JSON as `parse_json` reads it
(a repeated key, NaN, a number out of range, a lone surrogate) is refused whole, at the JSON pointer
of the first such value: no episode of it can be read with certainty. National XML holds one
episode and is checked against the shipped XSD before the models, so structural errors come back
with their XPath.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from schemas import SCHEMA_ID, Episode, Problem
from schemas._xml_schema import NAMESPACE, ROOT

from .._base import AdapterError, Fate, FidelityReport, FieldReport, Rejection, Translation
from .._safe import MAX_DOCUMENT_BYTES, XML_SNIFF_BYTES, json_top, xml_root_is
from ._shape import Shape, episode_shape
from ._validate import NationalCheck, check_national, sniff_encoding
from ._xml import encode

__all__ = [
    "NATIONAL_JSON",
    "NATIONAL_XML",
    "NationalCheck",
    "NationalJson",
    "check_national",
    "sniff_encoding",
]

# Without `schema` (the published JSON Schema gives it a default), an episode is taken by the
# top-level members that schema requires (`Episode`'s required fields): an EHA document, camelCase
# throughout, has none of them.
_OWN_MEMBERS = ("episode_id", "home_authority", "state", "source", "child")
# A document too large to parse for a look is taken by its first member, as this module writes
# it (`schema` first, an array's first item alike), so that reading it says payload_too_large.
_LEADING = re.compile(
    rb'\A(?:\xef\xbb\xbf)?\s*(?:\[\s*)?\{\s*"(?:schema"\s*:\s*"caf-episode\\?/1"|episode_id"\s*:)'
)

Path = tuple[str | int, ...]


class _Place:
    """A place in national documents, with its report entry: built once, then shared by every
    document that has a value there. A report lists a hundred or so fields per episode, so this is
    the hot path; from the second document on, a field costs a dictionary look-up."""

    __slots__ = ("children", "dotted", "location", "report", "shape", "xpath")

    def __init__(self, shape: Shape, location: str, xpath: str, dotted: str) -> None:
        self.shape = shape
        self.location = location  # a JSON pointer or an XPath, as the encoding reports
        self.xpath = xpath
        self.dotted = dotted
        self.children: dict[str | int, _Place] = {}
        self.report = FieldReport(location, Fate.MAPPED, dotted)

    def child(self, step: str | int, xml: bool) -> _Place:
        global _places
        if _places >= _MAX_PLACES:  # odd documents (long lists) cannot grow the trees unbounded
            _places = 0
            _ROOTS.clear()
        _places += 1
        shape, dotted = self.shape, self.dotted
        if isinstance(step, int):
            item, tag = shape.item or _OPEN, shape.item_name
            xpath = f"{self.xpath}/{tag}[{step + 1}]"
            location = xpath if xml else f"{self.location}/{step}"
            place = _Place(item, location, xpath, f"{dotted}.{step}")
        else:
            xpath = f"{self.xpath}/{step}"
            location = xpath if xml else f"{self.location}/{step}"
            name = f"{dotted}.{step}" if dotted else step
            place = _Place(shape.fields.get(step) or _OPEN, location, xpath, name)
        self.children[step] = place
        return place


_CONTAINERS = (dict, list)  # a tuple: `dict | list` is built anew at each use
_OPEN = Shape("open")  # extensions, and anything the schema does not describe: reported whole
_ROOTS: dict[tuple[bool, str], _Place] = {}  # (XML?, the episode's JSON pointer) -> its root
_MAX_PLACES = 50_000
_places = 0


def _root(xml: bool, pointer: str) -> _Place:
    root = _ROOTS.get((xml, pointer))
    if root is None:
        root = _ROOTS[xml, pointer] = _Place(
            episode_shape(), "/episode" if xml else pointer, "/episode", ""
        )
    return root


def _report(node: Any, place: _Place, xml: bool, out: list[FieldReport]) -> None:
    """Report every mapped value under `place`, in document order."""
    kind = place.shape.kind
    if kind == "model" and isinstance(node, dict) and node:
        children = place.children
        for key, item in node.items():
            where = children.get(key) or place.child(key, xml)
            if isinstance(item, _CONTAINERS):
                _report(item, where, xml, out)
            elif item is not None:
                out.append(where.report)
    elif kind == "array" and isinstance(node, list) and node:
        children = place.children
        for index, item in enumerate(node):
            where = children.get(index) or place.child(index, xml)
            if isinstance(item, _CONTAINERS):
                _report(item, where, xml, out)
            elif item is not None:
                out.append(where.report)
    elif node is not None and node != {} and node != []:
        out.append(place.report)


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
        xml = self.encoding == "xml"
        for origin, episode in zip(check.origins, check.episodes, strict=True):
            prefix = "".join(f"/{step}" for step in origin)
            _report(
                episode.model_dump(mode="json"), _root(xml, prefix), xml, translation.report.fields
            )
        return translation


class NationalJson(_National):
    name = "national-json"
    media_type = "application/json"
    many_per_document = True
    encoding = "json"

    def detect(self, data: bytes) -> bool:
        """JSON whose first episode says it is one: the top-level object (or an array's first
        item) has `"schema": "caf-episode/1"`, wherever the member is among the others; or, with
        no `schema` member at all, has every member the schema requires (`_OWN_MEMBERS`). A
        member deeper in, or a mention in a text, does not count. Found by parsing (bounded:
        `json_top`); the bytes test first only spares other JSON the parse. A document over
        `MAX_DOCUMENT_BYTES` is not parsed: it is taken when it begins with such a member
        (`_LEADING`), and reading it then refuses it as too large, not as a format nobody knows."""
        if len(data) > MAX_DOCUMENT_BYTES:
            return _LEADING.match(data[:XML_SNIFF_BYTES]) is not None
        if b"caf-episode" not in data and b"episode_id" not in data:
            return False
        top = json_top(data)
        if top is None:
            return False
        if "schema" in top:
            return bool(top["schema"] == SCHEMA_ID)
        return all(member in top for member in _OWN_MEMBERS)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        return b"".join(self.pieces(episodes))

    def pieces(self, episodes: Iterable[Episode]) -> Iterator[bytes]:
        """The document `from_national` writes, a piece per episode as they come, so that a
        register's many episodes need never be held at once: one episode is written as itself,
        none or several as an array (`json.dumps(..., indent=2)` of it, byte for byte)."""
        first: str | None = None
        many = False
        for episode in episodes:
            text = json.dumps(episode.model_dump(mode="json"), ensure_ascii=False, indent=2)
            if first is None:
                first = text
                continue
            if not many:  # a second episode: the first was an array's item after all
                many = True
                yield ("[\n  " + first.replace("\n", "\n  ")).encode("utf-8")
            # json.dumps escapes line breaks inside strings: every "\n" here is layout.
            yield (",\n  " + text.replace("\n", "\n  ")).encode("utf-8")
        if many:
            yield b"\n]\n"
        else:
            yield b"[]\n" if first is None else first.encode("utf-8") + b"\n"


class NationalXml(_National):
    name = "national-xml"
    media_type = "application/xml"
    many_per_document = False
    encoding = "xml"

    def detect(self, data: bytes) -> bool:
        return xml_root_is(data, NAMESPACE, ROOT)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        if len(episodes) != 1:
            raise AdapterError("unsupported_format", "national XML holds exactly one episode")
        return encode(episodes[0].model_dump(mode="json"))


NATIONAL_JSON = NationalJson()
NATIONAL_XML = NationalXml()
