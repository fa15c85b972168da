"""Located problems: what `validate_episode` reports, and what adapters and the CLI print.

A `Problem` names where (a path into the document), which rule, and a message that never holds the
offending value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ._identifiers import postcode_is_strict
from ._models import Address, Episode

__all__ = ["EpisodeInvalid", "Problem", "Validated", "problems_from", "validate_episode"]

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    rule: str
    message: str
    severity: Literal["error", "warning"] = "error"
    location: str | None = (
        None  # set where a JSON pointer is not the natural place (XPath, CSV row)
    )

    @property
    def pointer(self) -> str:
        """RFC 6901 JSON pointer to the field."""
        return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in self.path)

    @property
    def where(self) -> str:
        return self.location or self.pointer

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.rule}: {self.message}"


class EpisodeInvalid(ValueError):
    """A document is not a valid `caf-episode/1`; `problems` says where and why (no values)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Validated:
    episode: Episode
    warnings: list[Problem] = field(default_factory=list)


# Pydantic messages that quote the input (a tag, a character of a UUID, a JSON parser's excerpt):
# said without it.
_QUOTING = {
    "union_tag_invalid": "the tag does not match any of the expected tags",
    "uuid_parsing": "Input should be a valid UUID",
    "json_invalid": "Invalid JSON",
    "url_parsing": "Input should be a valid URL",
}


def problems_from(error: ValidationError, prefix: Path = ()) -> list[Problem]:
    """Translate a pydantic error into located problems without the input values."""
    problems = []
    for e in error.errors(include_input=False, include_url=False, include_context=False):
        path = prefix + tuple(e["loc"])
        problems.append(Problem(path, e["type"], _QUOTING.get(e["type"], e["msg"])))
    return problems


def _postcode_warnings(episode: Episode) -> Iterator[Problem]:
    addresses: list[tuple[Path, Address | None]] = [(("child", "address"), episode.child.address)]
    addresses += [
        (("parents_carers", i, "address"), p.address) for i, p in enumerate(episode.parents_carers)
    ]
    for path, address in addresses:
        if address is not None and address.postcode and not postcode_is_strict(address.postcode):
            yield Problem(
                (*path, "postcode"),
                "postcode.not_bs7666",
                "postcode accepted, but it fails the strict BS 7666 pattern",
                "warning",
            )


def validate_episode(data: Mapping[str, Any] | Episode) -> Validated:
    """Validate a decoded national document; raise `EpisodeInvalid` with every problem found."""
    if isinstance(data, Episode):
        episode = data
    else:
        try:
            episode = Episode.model_validate(data)
        except ValidationError as exc:
            raise EpisodeInvalid(problems_from(exc)) from None
    return Validated(episode, list(_postcode_warnings(episode)))
