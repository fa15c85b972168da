"""What a written document does not give back: the national values a local format has no place
for, or holds otherwise.

A document written in a borough's own format carries what that format can say. Written from an
episode read from the same format, `extensions` restore everything; written from another format's
episode, some values have nowhere to go (a register has no column for parents) and some come back
otherwise (an element code with no exact local twin). `not_carried` finds them by reading the
document again with the same adapter and comparing the episodes value by value: whatever the
writer did, what its own reader cannot get back is reported, by JSON pointer (never the value).

The national formats carry every national value by construction (their round trip is tested), so
their documents are not read again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from schemas import Episode, Problem

from ._base import Adapter, AdapterError

__all__ = ["CHANGED", "NOT_CARRIED", "NOT_READABLE", "Written", "not_carried", "write_checked"]

NOT_CARRIED: Final = "write.not_carried"
CHANGED: Final = "write.changed"
NOT_READABLE: Final = "write.not_readable"

_LOSSLESS: Final = frozenset({"national-json", "national-xml"})
# What each format gives an episode of its own: the id it derives, where the document came from,
# and the format's own `extensions`. Not national facts about the child.
_OWN: Final = frozenset({"episode_id", "source", "extensions", "schema"})


@dataclass(frozen=True, slots=True)
class Written:
    """A written document, and what the writer had to decide or could not carry (rules and
    places, never values)."""

    data: bytes
    warnings: list[Problem]


@runtime_checkable
class _Warns(Protocol):
    """A writer that says what it had to decide (eha-json: which copy of a family part)."""

    def write(self, episodes: Sequence[Episode]) -> Written: ...


def write_checked(adapter: Adapter, episodes: Sequence[Episode]) -> Written:
    """`adapter.from_national(episodes)`, with a warning for each national value the document
    does not give back (`not_carried`), after the writer's own warnings (an EHA family's
    copies)."""
    if isinstance(adapter, _Warns):
        written = adapter.write(episodes)
        data, warnings = written.data, list(written.warnings)
    else:
        data, warnings = adapter.from_national(episodes), []
    return Written(data, warnings + not_carried(adapter, episodes, data))


def not_carried(adapter: Adapter, episodes: Sequence[Episode], data: bytes) -> list[Problem]:
    """Each value of `episodes` that `data` (their document in the adapter's format) does not
    give back when read again: absent (`write.not_carried`), or other than it was, including a
    value the episode did not have (`write.changed`). The path starts with the episode's place in
    `episodes`. A document the format's reader refuses is one `write.not_readable`."""
    if adapter.name in _LOSSLESS or not episodes:
        return []
    try:
        translation = adapter.to_national(data)
    except AdapterError as exc:
        message = f"the {adapter.name} reader refuses what was written ({exc.code})"
        return [Problem((), NOT_READABLE, message, "warning")]
    back = translation.episodes
    found: list[Problem] = []
    for n, episode in enumerate(episodes):
        if n >= len(back):
            message = f"the episode is not in the {adapter.name} document"
            found.append(Problem((n,), NOT_CARRIED, message, "warning"))
            continue
        before, after = _values(episode), _values(back[n])
        for path in before.keys() | after.keys():
            if path not in after:
                message = f"{adapter.name} has no place for it"
                found.append(Problem((n, *path), NOT_CARRIED, message, "warning"))
            elif before.get(path) != after[path]:
                message = f"{adapter.name} gives it back otherwise"
                found.append(Problem((n, *path), CHANGED, message, "warning"))
    found.sort(key=lambda p: [(isinstance(step, str), step) for step in p.path])
    return found


def _values(episode: Episode) -> dict[tuple[str | int, ...], Any]:
    """The episode's national values by path, none of them empty: a value that is None, an empty
    text or an empty list is no value (formats differ in which of them they write)."""
    dumped = episode.model_dump(mode="json", by_alias=True)
    return dict(_leaves({k: v for k, v in dumped.items() if k not in _OWN}, ()))


def _leaves(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, member in value.items():
            yield from _leaves(member, (*path, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            yield from _leaves(member, (*path, index))
    elif value is not None and value != "":
        yield path, value
