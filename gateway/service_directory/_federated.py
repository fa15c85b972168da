"""Federated search: this node's index and every other active member asked at once (signed
federation calls), each with its own time limit; the answers merged and ranked as one, and the
members that did not answer named, so a practitioner knows what the list may be missing.

A member's answer is taken for its services only, never for how they rank: each service it sends
is checked as an import checks a record (schema, canonical id, access rule, ages; one that fails,
or repeats an id of the same answer, is dropped and logged) and scored here, relevance, distance
and verdict, exactly as this node's index scores its own; the member's `cafx` figures are dropped.
A member that sends something that is not a page, or numbers JSON cannot carry (NaN, Infinity), is
listed as `bad_answer`. Nor is a member trusted to have applied the query: what it sent is
filtered here as this node's index filters its own (ages, place, text, taxonomy term, status), so a
member on another release that ignores a parameter cannot fill the page with services that do not
fit. A member whose call fails in any other way (the metadata suspended it mid-search, say) is
listed too: one member never fails the whole search.

To rank page `p` of the whole federation every member is asked for its first `p * per_page`
services (at most `MAX_PER_PAGE`, so federated paging stops at that depth: `total_pages` and
`last_page` say so, and `truncated` tells when the federation holds more than can be paged to).
Each member's answer is checked and scored in a worker thread, within that member's time limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from directory.members import Member, MemberError
from directory.services import (
    Hit,
    Query,
    SearchResult,
    ServiceIndex,
    judge,
    list_page,
    read_services,
)

from ..errors import FederationRefused, PeerUnavailable
from ._query import MAX_PER_PAGE, SearchRequest
from ._render import hit_json

__all__ = ["Ask", "MemberAnswer", "federated_search"]

Ask = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]  # member, params -> status, body
MAX_TOTAL = 10**9  # services one member may say it holds: more is nonsense

log = logging.getLogger("cafx.directory")


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")
    total_items: int = Field(ge=0, le=MAX_TOTAL)
    contents: list[dict[str, Any]] = Field(max_length=MAX_PER_PAGE)


@dataclass(frozen=True, slots=True)
class MemberAnswer:
    member: str
    total: int = 0
    hits: tuple[Hit, ...] = ()
    # timeout | unreachable | unavailable (5xx) | invalid_signature | refused | bad_answer
    failure: str | None = None


def _read_answer(member: str, body: Any, query: Query) -> MemberAnswer:
    try:
        json.dumps(body, allow_nan=False)  # what we pass on must stay JSON
        page = _Page.model_validate(body)
        # Each service checked as an import checks it (schema, canonical id, access rule, ages);
        # one that fails, or repeats an id of the same answer, is dropped.
        contents = [
            {key: value for key, value in item.items() if key != "cafx"} for item in page.contents
        ]
        records, rejected = read_services({"contents": contents})
        # A member speaks for its own services only, and is scored and filtered here as this
        # node's index scores and filters its own.
        hits = judge(query, member, records)
    # ValidationError is a ValueError; deep nesting is a RecursionError, and a number too large
    # for a float an OverflowError
    except (ValueError, RecursionError, OverflowError):
        return MemberAnswer(member, failure="bad_answer")
    if rejected:
        log.warning(
            "federated search: services of a member's answer failed the checks and were dropped",
            extra={
                "member": member,
                "records": [rejection.where for rejection in rejected],
                "rules": sorted({p.rule for rejection in rejected for p in rejection.problems}),
            },
        )
    dropped = len(page.contents) - len(hits)  # sent, but unusable or not what was asked
    return MemberAnswer(member, max(len(hits), page.total_items - dropped), tuple(hits))


def _failed(member: str, reason: str, exc: Exception) -> MemberAnswer:
    log.warning(
        "federated search: a member's answer failed",
        extra={"member": member, "reason": reason, "error": type(exc).__name__},
    )
    return MemberAnswer(member, failure=reason)


def _checked(member: str, body: Any, query: Query) -> MemberAnswer:
    try:
        return _read_answer(member, body, query)
    except Exception as exc:  # what one member sent never fails the whole search
        return _failed(member, "bad_answer", exc)


async def _ask_one(
    member: Member, params: dict[str, str], query: Query, ask: Ask, timeout: float
) -> MemberAnswer:
    async def answer() -> MemberAnswer:
        status, body = await ask(member.id, params)
        if status != 200:  # a failing member (5xx: broken or busy) decided nothing about us
            return MemberAnswer(member.id, failure="unavailable" if status >= 500 else "refused")
        # Checking and scoring 100 services takes tens of milliseconds: in a worker thread, so
        # the event loop is not held, and within the member's time limit.
        return await asyncio.to_thread(_checked, member.id, body, query)

    try:
        return await asyncio.wait_for(answer(), timeout)
    except TimeoutError:
        return MemberAnswer(member.id, failure="timeout")
    except PeerUnavailable:
        return MemberAnswer(member.id, failure="unreachable")
    except FederationRefused:
        return MemberAnswer(member.id, failure="invalid_signature")
    except MemberError as exc:  # the metadata changed mid-search: suspended, or no longer listed
        return _failed(member.id, "refused", exc)
    except (ValueError, RecursionError) as exc:  # an answer that could not be read
        return _failed(member.id, "bad_answer", exc)
    except Exception as exc:  # anything else: this member is missing, the search goes on
        return _failed(member.id, "unavailable", exc)


def _rank(hit: Hit) -> tuple[float, float, str, str]:
    return (
        -hit.relevance,
        math.inf if hit.distance_m is None else hit.distance_m,
        hit.record.service.name.lower(),
        hit.record.id,
    )


async def federated_search(
    search: SearchRequest,
    index: ServiceIndex,
    me: str,
    members: Sequence[Member],
    ask: Ask,
    timeout: float,
) -> dict[str, Any]:
    query = search.query
    depth = min(query.page * query.per_page, MAX_PER_PAGE)
    local = (
        index.search(replace(query, authority=me, page=1, per_page=depth))
        if query.authority in (None, me)
        else SearchResult(0)
    )
    params = {**search.forwarded, "page": "1", "per_page": str(depth)}
    others = [member for member in members if member.id != me]
    answers = await asyncio.gather(*(_ask_one(m, params, query, ask, timeout) for m in others))
    hits = list(local.hits)
    total = local.total
    for answer in answers:
        hits.extend(answer.hits)
        total += answer.total
    hits.sort(key=_rank)
    first = (query.page - 1) * query.per_page
    page = list_page(
        (hit_json(hit) for hit in hits[first : first + query.per_page]),
        total=total,
        page=query.page,
        per_page=query.per_page,
    )
    reachable = MAX_PER_PAGE // query.per_page  # deeper pages are refused (query.depth)
    page["truncated"] = page["total_pages"] > reachable
    if page["truncated"]:
        page["total_pages"] = reachable
        page["last_page"] = query.page >= reachable
    names = {member.id: member.name for member in others}
    page["answered"] = [me, *(a.member for a in answers if a.failure is None)]
    page["unanswered"] = [
        {"member": a.member, "name": names[a.member], "reason": a.failure}
        for a in answers
        if a.failure is not None
    ]
    return page
