"""Federated search: this node's index and every other active member asked at once (signed
federation calls), each with its own time limit; the answers merged and ranked as one, and the
members that did not answer named, so a practitioner knows what the list may be missing.

A member's answer is taken for its services only, never for how they rank: each service it sends
is read as a record (like a stored one) and scored here, relevance, distance and verdict, exactly as
this node's index scores its own; the member's `cafx` figures are dropped. A member that sends
something that is not a page of readable services, or numbers JSON cannot carry (NaN, Infinity),
is listed as `bad_answer`.

To rank page `p` of the whole federation every member is asked for its first `p * per_page`
services (at most `MAX_PER_PAGE`, so federated paging stops at that depth: `total_pages` and
`last_page` say so, and `truncated` tells when the federation holds more than can be paged to).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from directory.members import Member
from directory.services import (
    AccessError,
    Hit,
    Query,
    SearchResult,
    ServiceIndex,
    judge,
    list_page,
    stored_record,
)

from ..errors import FederationRefused, PeerUnavailable
from ._query import MAX_PER_PAGE, SearchRequest
from ._render import hit_json

__all__ = ["Ask", "MemberAnswer", "federated_search"]

Ask = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]  # member, params -> status, body
MAX_TOTAL = 10**9  # services one member may say it holds: more is nonsense


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
        records = [
            stored_record({key: value for key, value in item.items() if key != "cafx"})
            for item in page.contents
        ]
    except (ValueError, ValidationError, AccessError):  # ValidationError is a ValueError too
        return MemberAnswer(member, failure="bad_answer")
    # A member speaks for its own services only, and is scored here as this node scores its own.
    hits = tuple(judge(query, member, record) for record in records)
    return MemberAnswer(member, page.total_items, hits)


async def _ask_one(
    member: Member, params: dict[str, str], query: Query, ask: Ask, timeout: float
) -> MemberAnswer:
    try:
        status, body = await asyncio.wait_for(ask(member.id, params), timeout)
    except TimeoutError:
        return MemberAnswer(member.id, failure="timeout")
    except PeerUnavailable:
        return MemberAnswer(member.id, failure="unreachable")
    except FederationRefused:
        return MemberAnswer(member.id, failure="invalid_signature")
    if status != 200:  # a failing member (5xx: broken or busy) decided nothing about us
        return MemberAnswer(member.id, failure="unavailable" if status >= 500 else "refused")
    return _read_answer(member.id, body, query)


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
