"""Validate a national document (JSON or XML) and report every problem with its location."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas import Episode, EpisodeInvalid, Problem, validate_episode

from .._base import AdapterError
from .._safe import parse_json, parse_xml
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


def _check_json_record(record: object, base: Path, check: NationalCheck) -> None:
    if not isinstance(record, dict):
        check.problems.append(Problem(base, "type.object", "an episode is a JSON object"))
        return
    try:
        validated = validate_episode(record)
    except EpisodeInvalid as exc:
        check.problems += [Problem(base + p.path, p.rule, p.message) for p in exc.problems]
        return
    check.episodes.append(validated.episode)
    check.origins.append(base)
    check.problems += [
        Problem(base + w.path, w.rule, w.message, w.severity) for w in validated.warnings
    ]


def sniff_encoding(data: bytes) -> Literal["json", "xml"]:
    return "xml" if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<" else "json"


def check_national(data: bytes, encoding: Literal["json", "xml"] | None = None) -> NationalCheck:
    """Check a national document. Raises `AdapterError` only when it cannot be read at all
    (not well-formed, not UTF-8, hostile XML, too large); problems of content are returned."""
    if (encoding or sniff_encoding(data)) == "xml":
        check = NationalCheck("xml")
        root = parse_xml(data)
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
            Problem(w.path, w.rule, w.message, w.severity, xpath_of(w.path))
            for w in validated.warnings
        ]
        return check
    check = NationalCheck("json")
    document = parse_json(data)
    if isinstance(document, list):
        check.many = True
        for index, record in enumerate(document):
            _check_json_record(record, (index,), check)
    else:
        _check_json_record(document, (), check)
    return check
