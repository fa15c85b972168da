"""Exact round trips without a memo per field: differences between a document and its rendering.

The reader renders what the writer would emit from the national episodes it just built and diffs the
original against it. What differs (a key the writer does not know, a key written as null that the
writer would leave out, an identifier written with spaces, a date without its leading zero, a name
split unusually between firstName and lastName) becomes a patch kept in extensions, relative to the
object it belongs to. The writer renders, then applies the patches, so the original comes back
exactly.

Patches are edit-safe: `verbatim` and `drop` only apply while the rendered value is still the one
the reader saw (so a value changed on the national side wins), and `add` never overwrites.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["Patch", "apply", "diff", "escape", "same"]

# (kind, JSON pointer, payload):
# ("verbatim", p, [raw, rendered]) | ("add", p, raw) | ("drop", p, rendered)
Patch = tuple[str, str, Any]


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


def to_json(patches: list[Patch]) -> dict[str, Any]:
    """Patches as they are kept in extensions: {"verbatim": {p: [raw, as]}, "add": {...}, ...}."""
    kept: dict[str, dict[str, Any]] = {}
    for kind, pointer, payload in patches:
        kept.setdefault(kind, {})[pointer] = payload
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


def apply(value: Any, kept: Any) -> Any:
    """Apply kept patches (made by `to_json`, pointers relative to `value`); returns the value."""
    if not isinstance(kept, dict) or not kept:
        return value
    holder = [value]
    verbatim, add, drop = (kept.get(kind) for kind in ("verbatim", "add", "drop"))
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
    return holder[0]
