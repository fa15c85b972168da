"""Search answers as Open Referral UK pages: each entry is the service's own document (valid against
`service.json` and `service_list.json`) plus one `cafx` member the schemas leave room for: the
authority that runs it, its access rule, the text relevance, the distance in metres and, when
`eligible_for` was asked, the verdict and its reason."""

from __future__ import annotations

from typing import Any

from directory.services import Hit, Query, SearchResult, list_page

__all__ = ["hit_json", "search_page"]


def hit_json(hit: Hit) -> dict[str, Any]:
    verdict = hit.verdict
    return {
        **hit.record.document,
        "cafx": {
            "authority": hit.authority,
            "access": hit.record.access.as_json(),
            "relevance": hit.relevance,
            "distance_m": None if hit.distance_m is None else round(hit.distance_m),
            "eligibility": None
            if verdict is None
            else {"eligible": verdict.eligible, "code": verdict.code, "reason": verdict.reason},
        },
    }


def search_page(result: SearchResult, query: Query) -> dict[str, Any]:
    return list_page(
        (hit_json(hit) for hit in result.hits),
        total=result.total,
        page=query.page,
        per_page=query.per_page,
    )
