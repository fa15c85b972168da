"""Validate a national document (JSON or XML) and report every problem with its location.

JSON is validated as JSON, in pydantic's strict mode: a value is taken only in the JSON type the
JSON Schema gives it (`"yes"` is not a boolean, a number not a date, `"1"` not a version, a
date-time not a date), while dates, date-times and UUIDs are read from their strings as JSON must
carry them. XML gets the same from the XSD, checked before the models. (Episodes that adapters
build in Python are validated as Python objects: their dates are `datetime.date`s.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from lxml import etree
from pydantic import TypeAdapter, ValidationError

from schemas import Episode, EpisodeInvalid, Problem, problems_from, validate_episode

from .._base import AdapterError
from .._safe import json_text_problems, parse_json, parse_xml
from ._xml import decode, xpath_of, xsd_problems

__all__ = ["NationalCheck", "check_national", "sniff_encoding"]

Path = tuple[str | int, ...]


@dataclass(slots=True)
class NationalCheck:
    encoding: Literal["json", "xml"]
    episodes: list[Episode] = field(default_factory=list)
    origins: list[Path] = field(default_factory=list)  # where each episode stood (JSON arrays)
    many: bool = False  # a JSON array of episodes rather than one
    problems: list[Problem] = field(default_factory=list)  # errors and warnings

    @property
    def valid(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


@cache
def _episodes() -> TypeAdapter[list[Episode]]:
    return TypeAdapter(list[Episode])


def _accepted(episode: Episode, base: Path, check: NationalCheck) -> None:
    check.episodes.append(episode)
    check.origins.append(base)
    check.problems += [
        Problem(base + w.path, w.rule, w.message, w.severity)
        for w in validate_episode(episode).warnings
    ]


def _check_json_record(
    record: object, base: Path, check: NationalCheck, text: bytes | str | None = None
) -> None:
    """One episode of a JSON document: `record` as parsed, `text` its JSON when at hand (else it
    is written again from `record`, which `parse_json` has checked)."""
    if not isinstance(record, dict):
        check.problems.append(Problem(base, "type.object", "an episode is a JSON object"))
        return
    try:
        episode = Episode.model_validate_json(
            json.dumps(record) if text is None else text, strict=True
        )
    except ValidationError as exc:
        check.problems += [Problem(base + p.path, p.rule, p.message) for p in problems_from(exc)]
        return
    _accepted(episode, base, check)


def _check_json(data: bytes, check: NationalCheck) -> None:
    # parse_json first: what it refuses (repeated keys, NaN, lone surrogates, too deep, too large)
    # must never reach pydantic's own parser, which would take some of it.
    document = parse_json(data)
    text = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is allowed, but it is not JSON
    # A control character XML cannot hold (or the register refuses) rejects its episode here:
    # accepted, it would fail only when the episode is written as national XML, eCAF or a register.
    controls = json_text_problems(data, document)
    check.problems += controls
    if not isinstance(document, list):
        if not controls:
            _check_json_record(document, (), check, text)
        return
    check.many = True
    if controls:  # the other episodes go on, one by one
        refused = {p.path[0] for p in controls}
        for index, record in enumerate(document):
            if index not in refused:
                _check_json_record(record, (index,), check)
        return
    try:  # every episode valid, the common case: validated in one go, from the bytes
        episodes = _episodes().validate_json(text, strict=True)
    except ValidationError:
        for index, record in enumerate(document):
            _check_json_record(record, (index,), check)
        return
    for index, episode in enumerate(episodes):
        _accepted(episode, (index,), check)


def _check_xml(root: etree._Element) -> NationalCheck:
    check = NationalCheck("xml")
    check.problems = list(xsd_problems(root))
    if check.problems:
        return check
    try:
        document = decode(root)
    except AdapterError as exc:
        check.problems.append(Problem((), "structure", exc.message, location=exc.location))
        return check
    try:
        validated = validate_episode(document)
    except EpisodeInvalid as exc:
        check.problems = [
            Problem(p.path, p.rule, p.message, location=xpath_of(p.path)) for p in exc.problems
        ]
        return check
    check.episodes.append(validated.episode)
    check.origins.append(())
    check.problems = [
        Problem(w.path, w.rule, w.message, w.severity, xpath_of(w.path)) for w in validated.warnings
    ]
    return check


def sniff_encoding(data: bytes) -> Literal["json", "xml"]:
    """XML if it starts with `<` (after a BOM and white space), or with a UTF-16 byte order mark,
    as the XML adapter's detection reads it: JSON is UTF-8 only, so such a document is not JSON."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "xml"
    return "xml" if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<" else "json"


def check_national(data: bytes, encoding: Literal["json", "xml"] | None = None) -> NationalCheck:
    """Check a national document. Raises `AdapterError` only when it cannot be read at all
    (not well-formed, not UTF-8, hostile XML, too large); problems of content are returned."""
    if (encoding or sniff_encoding(data)) == "xml":
        notes: list[Problem] = []  # about the document as a whole (how it was decoded)
        check = _check_xml(parse_xml(data, notes))
        check.problems[:0] = notes
        return check
    check = NationalCheck("json")
    _check_json(data, check)
    return check
