"""docs/errors.md lists every wire code the node's error classes can carry, and no code that none
of them carries (a client decides by the code: a code missing from the table is one it cannot plan
for)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
# Given by `error_middleware` itself, not by a class: aiohttp's 405, and anything unexpected.
MIDDLEWARE = {"method_not_allowed", "internal_error"}


def _carried() -> set[str]:
    found: set[str] = set(MIDDLEWARE)
    pending = list(errors.GatewayError.__subclasses__())
    while pending:
        cls = pending.pop()
        found |= {cls.code, *cls.codes}
        pending += cls.__subclasses__()
    return found


def _listed(text: str) -> set[str]:
    """Codes in the first cell of a table row: "| `code` |" or "| `a`, `b` |"."""
    cells = re.findall(r"^\| ([^|]+) \|", text, flags=re.MULTILINE)
    return {code for cell in cells for code in re.findall(r"`([a-z_]+)`", cell)}


def test_every_code_a_class_can_carry_is_listed_and_nothing_else() -> None:
    carried, listed = _carried(), _listed(DOC.read_text())
    assert carried - listed == set(), "codes without a row in docs/errors.md"
    assert listed - carried == set(), "rows in docs/errors.md for codes no error carries"


def test_the_federation_table_lists_every_federation_refusal() -> None:
    federation = DOC.read_text().split("## Between nodes", 1)[1]
    assert errors.FederationRefused.codes <= _listed(federation)
