"""What a written document does not give back: the national values a local format has no place
for, or holds otherwise.

A document written in a borough's own format carries what that format can say. Written from an
episode read from the same format, `extensions` restore everything (but an EHA child written
without its family: its siblings' places in the family's areas); written from another format's
episode, some values have nowhere to go (a register has no column for parents) and some come back
otherwise (an element code with no exact local twin). `not_carried` finds them by reading the
document again with the same adapter and comparing the episodes value by value: whatever the
writer did, what its own reader cannot get back is reported, by JSON pointer (never the value).

- Episodes are paired as the document holds them: a register row by row, read as it comes (a
  row its reader rejects is its episode not carried); an EHA family by the child (its person ref
  where the episode came from EHA, else names and date of birth: the writer orders the children
  its own way), the rest in order; one to one else.
- Lists are compared as collections: an entry given back whole is carried wherever it is in its
  list (an EHA document keeps its notes after its areas); the entries left are compared in turn.
- The national formats carry every national value by construction (their round trip is
  tested), so their documents are not read again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Final, Protocol, runtime_checkable

from schemas import Episode, Problem

from ._base import Adapter, AdapterError
from .caf_register_csv import CafRegisterCsv

__all__ = [
    "CHANGED",
    "NOT_CARRIED",
    "NOT_READABLE",
    "Written",
    "not_carried",
    "write_checked",
    "write_document",
]

NOT_CARRIED: Final = "write.not_carried"
CHANGED: Final = "write.changed"
NOT_READABLE: Final = "write.not_readable"

_LOSSLESS: Final = frozenset({"national-json", "national-xml"})
# What each format gives an episode of its own: the id it derives, where the document came from,
# and the format's own `extensions`. Not national facts about the child.
_OWN: Final = ("episode_id", "source", "extensions", "schema")

Path = tuple[str | int, ...]
# Each difference: where, which rule, and what the message says of it ({} is the format).
_Difference = tuple[Path, str, str]
_NO_PLACE: Final = "{} has no place for it"
_OTHERWISE: Final = "{} gives it back otherwise"
_ADDED: Final = "{} gives back a value the episode does not have here"


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


def write_document(adapter: Adapter, episodes: Sequence[Episode]) -> Written:
    """`adapter.from_national(episodes)`, with the writer's own warnings (an EHA family's
    copies); `not_carried` says what the document does not give back."""
    if isinstance(adapter, _Warns):
        return adapter.write(episodes)
    return Written(adapter.from_national(episodes), [])


def write_checked(adapter: Adapter, episodes: Sequence[Episode]) -> Written:
    """`write_document`, with a warning for each value of `episodes` the document does not give
    back (`not_carried`) after the writer's own."""
    written = write_document(adapter, episodes)
    lost = not_carried(adapter, episodes, written.data)
    return Written(written.data, [*written.warnings, *lost])


def not_carried(adapter: Adapter, episodes: Sequence[Episode], data: bytes) -> Iterator[Problem]:
    """Each value of `episodes` that `data` (their document in the adapter's format) does not
    give back when read again, as it is found: absent (`write.not_carried`), or other than it
    was, a value the episode did not have included (`write.changed`). The path starts with the
    episode's place in `episodes`; an episode the document does not give back at all is one
    `write.not_carried` at its place. A document the format's reader refuses is one
    `write.not_readable`."""
    if adapter.name in _LOSSLESS or not episodes:
        return
    name = adapter.name
    try:
        for n, back in _paired(adapter, episodes, data):
            if back is None:
                message = f"the {name} document does not give the episode back"
                yield Problem((n,), NOT_CARRIED, message, "warning")
                continue
            found: list[_Difference] = []
            _differences(_national(episodes[n]), _national(back), (n,), found)
            for path, rule, message in found:
                yield Problem(path, rule, message.format(name), "warning")
    except AdapterError as exc:
        message = f"the {name} reader refuses what was written ({exc.code})"
        yield Problem((), NOT_READABLE, message, "warning")


def _paired(
    adapter: Adapter, episodes: Sequence[Episode], data: bytes
) -> Iterator[tuple[int, Episode | None]]:
    """Each episode's place, with the episode the document gives back for it (None: none)."""
    if isinstance(adapter, CafRegisterCsv):  # a row an episode, in order: read as it comes
        rows = adapter.iter_rows(data)
        for n, row in zip_longest(range(len(episodes)), rows):
            if n is None:  # a row of no episode of ours: nothing to compare it with
                return
            yield n, row.episode if row is not None else None
        return
    back = adapter.to_national(data).episodes
    chosen: dict[int, int] = {}  # an episode's place -> its place in the document
    for key in (_person_ref, _child):  # the surest key first; each pass pairs what is left
        taken = set(chosen.values())
        waiting: dict[object, list[int]] = {}
        for j, episode in enumerate(back):
            if j not in taken and (found_key := key(episode)) is not None:
                waiting.setdefault(found_key, []).append(j)
        for n, episode in enumerate(episodes):
            if n not in chosen and (found_key := key(episode)) is not None:
                if places := waiting.get(found_key):
                    chosen[n] = places.pop(0)
    taken = set(chosen.values())
    left = iter([j for j in range(len(back)) if j not in taken])
    for n in range(len(episodes)):
        place = chosen[n] if n in chosen else next(left, None)
        yield n, None if place is None else back[place]


def _person_ref(episode: Episode) -> str | None:
    """The child's person ref in its EHA family, which the EHA reader keeps (and its writer
    writes back): twins of one name, not yet born, are still told apart by it."""
    kept = episode.extensions.get("eha-json")
    ref = kept.get("personRef") if isinstance(kept, dict) else None
    return ref if isinstance(ref, str) else None


def _child(episode: Episode) -> tuple[str, str, dt.date | None]:
    child = episode.child
    return child.given_names, child.family_name, child.date_of_birth


def _national(episode: Episode) -> dict[str, Any]:
    dumped = episode.model_dump(mode="json", by_alias=True)
    for own in _OWN:
        dumped.pop(own, None)
    return dumped


def _empty(value: Any) -> bool:
    """No value: formats differ in which of None, an empty text and an empty list they write."""
    return value is None or value == "" or value == [] or value == {}


def _differences(before: Any, after: Any, path: Path, found: list[_Difference]) -> None:
    """Add to `found` each difference between `before` (the episode's) and `after` (the
    document's), at its place. Appended, not yielded: nested generators cost more than the
    comparison itself (a register's every row)."""
    if _empty(before):
        found.extend((leaf, CHANGED, _ADDED) for leaf in _leaves(after, path, []))
    elif _empty(after):
        found.extend((leaf, NOT_CARRIED, _NO_PLACE) for leaf in _leaves(before, path, []))
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in [*before, *(key for key in after if key not in before)]:
            _differences(before.get(key), after.get(key), (*path, key), found)
    elif isinstance(before, list) and isinstance(after, list):
        _list_differences(before, after, path, found)
    elif before != after:
        found.extend((leaf, CHANGED, _OTHERWISE) for leaf in _leaves(before, path, []))


def _list_differences(
    before: list[Any], after: list[Any], path: Path, found: list[_Difference]
) -> None:
    """Entries given back whole are carried, wherever they are; the others are compared in turn
    (an entry with nothing left to compare it with is not carried, or was added)."""
    waiting: dict[str, list[int]] = {}
    for j, entry in enumerate(after):
        waiting.setdefault(_canonical(entry), []).append(j)
    unmatched: list[int] = []
    for i, entry in enumerate(before):
        places = waiting.get(_canonical(entry))
        if places:
            places.pop(0)
        else:
            unmatched.append(i)
    added = sorted(j for places in waiting.values() for j in places)
    for i, j in zip_longest(unmatched, added):
        if i is None:
            found.extend((leaf, CHANGED, _ADDED) for leaf in _leaves(after[j], (*path, j), []))
        elif j is None:
            lost = _leaves(before[i], (*path, i), [])
            found.extend((leaf, NOT_CARRIED, _NO_PLACE) for leaf in lost)
        else:
            _differences(before[i], after[j], (*path, i), found)


def _canonical(entry: Any) -> str:
    return json.dumps(entry, sort_keys=True)


def _leaves(value: Any, path: Path, places: list[Path]) -> list[Path]:
    """`places`, with the places of `value`'s values (none empty) added."""
    if isinstance(value, dict):
        for key, member in value.items():
            _leaves(member, (*path, key), places)
    elif isinstance(value, list):
        for index, member in enumerate(value):
            _leaves(member, (*path, index), places)
    elif not _empty(value):
        places.append(path)
    return places
