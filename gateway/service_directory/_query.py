"""A search read from its URL: the Open Referral UK parameters (`text` or `search`,
`taxonomy_term_id`, `minimum_age`, `maximum_age`, `postcode` + `proximity`, `page`, `per_page`) and
ours (`age`, `lat` + `lon`, `authority`, `eligible_for`, `scope`). `minimum_age` and `maximum_age`
mean what the standard says (bounds on the service's own ages); `age` is "a child aged N". A bad
parameter is a 400 whose problem names it (`location`) and the rule it broke (`rule`, a stable
code)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from directory.services import Query, locate_postcode, parse_eligible_for
from schemas import Problem, is_gss_code

from ..errors import BadRequest

__all__ = ["MAX_PER_PAGE", "SearchRequest", "parse_search"]

MAX_PER_PAGE = 100
MAX_PAGE = 10_000
MAX_PROXIMITY_M = 100_000.0
FORWARDED = (
    "text",
    "taxonomy_term_id",
    "minimum_age",
    "maximum_age",
    "age",
    "postcode",
    "proximity",
    "lat",
    "lon",
    "authority",
    "eligible_for",
)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: Query
    scope: Literal["local", "federation"]
    forwarded: dict[str, str]  # what a member is asked, in the same words


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, name: str, rule: str, message: str) -> None:
        self.found.append(Problem((name,), rule, message, location=name))


_DECIMAL = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,20})?")


def _number(
    params: Mapping[str, str], name: str, problems: _Problems, low: float, high: float
) -> float | None:
    raw = params.get(name)
    if raw is None:
        return None
    # Plain decimal notation only: `float` also takes "1_0", "١٢" and " 12 ", which members
    # (sent the query as written) might read otherwise.
    if _DECIMAL.fullmatch(raw) is None:
        problems.add(name, "query.number", f"{name} must be a number")
        return None
    value = float(raw)
    if not math.isfinite(value) or not low <= value <= high:
        problems.add(name, "query.range", f"{name} must lie between {low:g} and {high:g}")
        return None
    return value


def _integer(
    params: Mapping[str, str], name: str, problems: _Problems, default: int, high: int
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    # Leading zeros off and the length checked before int(): it refuses more than 4,300 digits
    # (leading zeros too) with an error of its own, which would be a 500.
    digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
    if not digits or len(digits) > len(str(high)) or int(digits) > high:
        problems.add(name, "query.integer", f"{name} must be a whole number from 1 to {high}")
        return default
    return int(digits)


def _origin(params: Mapping[str, str], problems: _Problems) -> tuple[float, float] | None:
    lat = _number(params, "lat", problems, -90, 90)
    lon = _number(params, "lon", problems, -180, 180)
    if ("lat" in params) != ("lon" in params):
        problems.add(
            "lat" if "lat" not in params else "lon", "query.together", "lat and lon go together"
        )
    postcode = params.get("postcode")
    if postcode is not None:
        if "lat" in params:
            problems.add("postcode", "query.exclusive", "give a postcode or lat and lon, not both")
        centroid = locate_postcode(postcode)
        if centroid is None:
            problems.add(
                "postcode", "query.postcode", "not a postcode or district in London's table"
            )
        return centroid
    return (lat, lon) if lat is not None and lon is not None else None


def parse_search(params: Mapping[str, str]) -> SearchRequest:
    problems = _Problems()
    text = params.get("text", params.get("search"))
    if text is not None and len(text) > 200:
        problems.add("text", "query.length", "text is at most 200 characters")
    term = params.get("taxonomy_term_id")
    if term is not None and not 1 <= len(term) <= 100:
        problems.add("taxonomy_term_id", "query.length", "taxonomy_term_id is 1 to 100 characters")
    minimum = _number(params, "minimum_age", problems, 0, 150)
    maximum = _number(params, "maximum_age", problems, 0, 150)
    if minimum is not None and maximum is not None and minimum > maximum:
        problems.add("maximum_age", "query.range", "maximum_age is below minimum_age")
    age = _number(params, "age", problems, 0, 150)
    origin = _origin(params, problems)
    proximity = _number(params, "proximity", problems, 1, MAX_PROXIMITY_M)
    if "proximity" in params and not ("postcode" in params or "lat" in params):
        problems.add("proximity", "query.together", "proximity needs a postcode or lat and lon")
    authority = params.get("authority")
    if authority is not None and not is_gss_code(authority):
        problems.add("authority", "query.gss", "authority is a GSS code such as E09000007")
    child = None
    if (eligible_for := params.get("eligible_for")) is not None:
        try:
            child = parse_eligible_for(eligible_for)
        except ValueError as exc:
            problems.add("eligible_for", "query.eligible_for", str(exc))
    scope = params.get("scope", "local")
    if scope not in ("local", "federation"):
        problems.add("scope", "query.enum", "scope is local or federation")
    page = _integer(params, "page", problems, 1, MAX_PAGE)
    per_page = _integer(params, "per_page", problems, 20, MAX_PER_PAGE)
    if problems.found:
        raise BadRequest("the search parameters are not valid", problems=problems.found)
    query = Query(
        text=text,
        taxonomy_term_id=term,
        minimum_age=minimum,
        maximum_age=maximum,
        age=age,
        origin=origin,
        proximity_m=proximity,
        authority=authority,
        child=child,
        page=page,
        per_page=per_page,
    )
    forwarded = {name: params[name] for name in FORWARDED if name in params}
    if text is not None:
        forwarded["text"] = text
    return SearchRequest(query, "federation" if scope == "federation" else "local", forwarded)
