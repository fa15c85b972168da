"""Exact round trips without a memo per field: differences between a document and its rendering.

The reader renders what the writer would emit from the national episodes it just built and diffs the
original against it. What differs (a key the writer does not know, a key written as null that the
writer would leave out, an identifier written with spaces, a date without its leading zero, a name
split unusually between firstName and lastName) becomes a patch kept in extensions, relative to the
object it belongs to. The writer renders, then applies the patches, so the original comes back
exactly.

Patches are edit-safe: `verbatim` and `drop` only apply while the rendered value is still the one
the reader saw (so a value changed on the national side wins), and `add` never overwrites.

Some keys are written from one national value together (an adult's firstName and lastName from one
name; the address's lines from one list): a patch to one of them was worked out against all of them.
Those patches are kept as a GROUP with its `basis`, the rendered values of every key of the group
when it was read, and a group applies whole, only while every one of them is still what the writer
renders, or not at all (the national value wins). Checked key by key, a renamed adult would keep the
old lastName beside the new first name, and a moved family would keep its old second line.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

__all__ = ["Patch", "apply", "diff", "escape", "same", "to_json"]

# (kind, JSON pointer, payload):
# ("verbatim", p, [raw, rendered]) | ("add", p, raw) | ("drop", p, rendered)
Patch = tuple[str, str, Any]
_KINDS = ("verbatim", "add", "drop")


def escape(key: str) -> str:
    """One RFC 6901 reference token."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: `True` is not `1`, `1` is not `1.0`."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(raw: Any, rendered: Any, pointer: str, out: list[Patch]) -> None:
    """Append the patches that turn `rendered` into `raw`.

    `==` first, in C, so an unchanged document costs one comparison: it cannot hide a `1` / `True` /
    `1.0` difference here, because the rendering holds booleans only where the reader demanded a
    boolean and numbers only as copies of the document's own values.
    """
    if raw == rendered:
        return
    if isinstance(raw, dict) and isinstance(rendered, dict):
        for key, value in raw.items():
            here = f"{pointer}/{escape(key)}"
            if key in rendered:
                diff(value, rendered[key], here, out)
            else:
                out.append(("add", here, value))
        for key in rendered.keys() - raw.keys():
            out.append(("drop", f"{pointer}/{escape(key)}", rendered[key]))
    elif isinstance(raw, list) and isinstance(rendered, list) and len(raw) == len(rendered):
        for index, (a, b) in enumerate(zip(raw, rendered, strict=True)):
            diff(a, b, f"{pointer}/{index}", out)
    elif not same(raw, rendered):
        out.append(("verbatim", pointer, [raw, rendered]))


def _within(pointer: str, prefixes: Sequence[str]) -> bool:
    return any(pointer == p or pointer.startswith(f"{p}/") for p in prefixes)


def to_json(
    patches: list[Patch], rendered: Any = None, groups: Sequence[Sequence[str]] = ()
) -> dict[str, Any]:
    """Patches as they are kept in extensions: {"verbatim": {p: [raw, as]}, "add": {...}, ...}.

    `groups` lists pointers (relative to `rendered`, the rendering the patches were made against)
    whose patches belong together; those go to {"groups": [{"basis": {p: [value] | []}, "verbatim":
    ..., ...}]}, the basis holding each pointer's rendered value ([] when it was not written)."""
    kept: dict[str, Any] = {}
    grouped: dict[int, dict[str, Any]] = {}
    for kind, pointer, payload in patches:
        target = kept
        for number, prefixes in enumerate(groups):
            if _within(pointer, prefixes):
                target = grouped.get(number) or grouped.setdefault(
                    number, {"basis": {p: _at([rendered], p) for p in prefixes}}
                )
                break
        target.setdefault(kind, {})[pointer] = payload
    if grouped:
        kept["groups"] = [grouped[number] for number in sorted(grouped)]
    return kept


def _parent(root: list[Any], pointer: str) -> tuple[Any, str | int] | None:
    """The container holding what `pointer` names, and the key in it; None if the path is gone."""
    tokens = pointer.split("/")[1:]
    node: Any = root
    for position, token in enumerate(tokens):
        key: str | int
        if isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                return None
            key = int(token)
        elif isinstance(node, dict):
            key = token.replace("~1", "/").replace("~0", "~")
        else:
            return None
        if position == len(tokens) - 1:
            return node, key
        node = node[key] if isinstance(key, int) else node.get(key)
    return None


def _at(holder: list[Any], pointer: str) -> list[Any]:
    """[the value `pointer` names] in holder[0], or [] when there is none."""
    found = _parent(holder, "/0" + pointer)
    if found is not None:
        node, key = found
        if isinstance(node, dict) and key in node:
            return [node[key]]
        if isinstance(node, list) and isinstance(key, int):
            return [node[key]]
    return []


def _unchanged(holder: list[Any], basis: Any) -> bool:
    """Is every value a group was worked out against still the one rendered?"""
    if not isinstance(basis, dict) or not basis:
        return False
    for pointer, was in basis.items():
        now = _at(holder, pointer)
        if not isinstance(was, list) or len(now) != len(was):
            return False
        if now and not same(now[0], was[0]):
            return False
    return True


def _apply(holder: list[Any], kept: dict[str, Any]) -> None:
    verbatim, add, drop = (kept.get(kind) for kind in _KINDS)
    if isinstance(verbatim, dict):
        for pointer, pair in verbatim.items():
            found = _parent(holder, "/0" + pointer)
            if found is None or not isinstance(pair, list) or len(pair) != 2:
                continue
            node, key = found
            if isinstance(node, dict) and key in node and same(node[key], pair[1]):
                node[key] = copy.deepcopy(pair[0])
            elif isinstance(node, list) and isinstance(key, int) and same(node[key], pair[1]):
                node[key] = copy.deepcopy(pair[0])
    if isinstance(drop, dict):
        for pointer, rendered in drop.items():
            found = _parent(holder, "/0" + pointer)
            if found is not None and isinstance(found[0], dict):
                node, key = found
                if key in node and same(node[key], rendered):
                    del node[key]
    if isinstance(add, dict):
        for pointer, raw in add.items():
            found = _parent(holder, "/0" + pointer)
            if found is not None and isinstance(found[0], dict) and found[1] not in found[0]:
                found[0][found[1]] = copy.deepcopy(raw)


def apply(value: Any, kept: Any) -> Any:
    """Apply kept patches (made by `to_json`, pointers relative to `value`); returns the value.
    Each group is checked against the rendering as it comes, before any patch changes it."""
    if not isinstance(kept, dict) or not kept:
        return value
    holder = [value]
    groups = kept.get("groups")
    ready = (
        [g for g in groups if isinstance(g, dict) and _unchanged(holder, g.get("basis"))]
        if isinstance(groups, list)
        else []
    )
    _apply(holder, kept)
    for group in ready:
        _apply(holder, group)
    return holder[0]
