"""Federated search: this node's index and every other active member asked at once (signed
federation calls), each with its own time limit; the answers merged and ranked as one, and the
members that did not answer named, so a practitioner knows what the list may be missing.

To rank page `p` of the whole federation every member is asked for its first `p * per_page`
services (at most `MAX_PER_PAGE`, so federated paging stops at that depth).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from directory.members import Member
from directory.services import SearchResult, ServiceIndex, list_page

from ..errors import FederationRefused, PeerUnavailable
from ._query import MAX_PER_PAGE, SearchRequest
from ._render import hit_json

__all__ = ["Ask", "MemberAnswer", "federated_search"]

Ask = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]  # member, params -> status, body


class _Annotation(BaseModel):
    model_config = ConfigDict(extra="allow")
    relevance: float = 0.0
    distance_m: float | None = None


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(max_length=100)
    name: str = Field(max_length=1000)
    cafx: _Annotation


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")
    total_items: int = Field(ge=0)
    contents: list[_Item] = Field(max_length=MAX_PER_PAGE)


@dataclass(frozen=True, slots=True)
class MemberAnswer:
    member: str
    total: int = 0
    items: tuple[dict[str, Any], ...] = ()
    failure: str | None = None  # timeout | unreachable | invalid_signature | refused | bad_answer


async def _ask_one(
    member: Member, params: dict[str, str], ask: Ask, timeout: float
) -> MemberAnswer:
    try:
        status, body = await asyncio.wait_for(ask(member.id, params), timeout)
    except TimeoutError:
        return MemberAnswer(member.id, failure="timeout")
    except PeerUnavailable:
        return MemberAnswer(member.id, failure="unreachable")
    except FederationRefused:
        return MemberAnswer(member.id, failure="invalid_signature")
    if status != 200:
        return MemberAnswer(member.id, failure="refused")
    try:
        page = _Page.model_validate(body)
    except ValidationError:
        return MemberAnswer(member.id, failure="bad_answer")
    items = []
    for item in body["contents"]:
        item["cafx"]["authority"] = member.id  # a member speaks for its own services only
        items.append(item)
    return MemberAnswer(member.id, page.total_items, tuple(items))


def _rank(item: dict[str, Any]) -> tuple[float, float, str, str]:
    note = item["cafx"]
    distance = note.get("distance_m")
    return (
        -float(note.get("relevance") or 0.0),
        math.inf if distance is None else float(distance),
        str(item["name"]).lower(),
        str(item["id"]),
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
    answers = await asyncio.gather(*(_ask_one(m, params, ask, timeout) for m in others))
    items = [hit_json(hit) for hit in local.hits]
    total = local.total
    for answer in answers:
        items.extend(answer.items)
        total += answer.total
    items.sort(key=_rank)
    first = (query.page - 1) * query.per_page
    page = list_page(
        items[first : first + query.per_page], total=total, page=query.page, per_page=query.per_page
    )
    names = {member.id: member.name for member in others}
    page["answered"] = [me, *(a.member for a in answers if a.failure is None)]
    page["unanswered"] = [
        {"member": a.member, "name": names[a.member], "reason": a.failure}
        for a in answers
        if a.failure is not None
    ]
    return page
