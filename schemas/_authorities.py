"""Local authorities: the 33 London members by GSS code, with DfE LA numbers, usable both ways.

Non-London authorities can be federation members too, so a well-formed GSS code of any English or Welsh
authority is accepted where the schema asks for one; only London's are known by name here.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = [
    "Authority",
    "GSS_PATTERN",
    "london_authorities",
    "authority_by_dfe",
    "authority_by_gss",
    "is_gss_code",
]

# ONS GSS code of a local authority: country letter, 2-digit entity, 6-digit instance.
GSS_PATTERN = r"[ENSW][0-9]{8}"
_GSS = re.compile(GSS_PATTERN)


@dataclass(frozen=True, slots=True)
class Authority:
    gss: str
    dfe: str
    short_code: str
    name: str


@cache
def london_authorities() -> tuple[Authority, ...]:
    text = files("schemas").joinpath("data/london-authorities.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t")
    return tuple(Authority(r["gss"], r["dfe"], r["liia"], r["name"]) for r in rows)


@cache
def _by_gss() -> dict[str, Authority]:
    return {a.gss: a for a in london_authorities()}


@cache
def _by_dfe() -> dict[str, Authority]:
    return {a.dfe: a for a in london_authorities()}


def authority_by_gss(gss: str) -> Authority | None:
    return _by_gss().get(gss.strip().upper())


def authority_by_dfe(dfe: str | int) -> Authority | None:
    return _by_dfe().get(str(dfe).strip())


def is_gss_code(value: str) -> bool:
    return _GSS.fullmatch(value) is not None
