"""Words of a service for text search: lower-case letters and digits, common words dropped, with a
weight for where the word was found (a word of the name counts more than one of the description)."""

from __future__ import annotations

import re

from ._models import Service

__all__ = ["tokens", "weighted_tokens"]

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by for from in into is it of on or the to with who we our you your".split()
)
NAME, ORGANISATION, TERM, DESCRIPTION = 3.0, 2.0, 2.0, 1.0


def tokens(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in _STOP]


def weighted_tokens(service: Service) -> dict[str, float]:
    """Each word of the service and the highest weight of a field it appears in."""
    fields: list[tuple[str, float]] = [
        (service.name, NAME),
        (service.description or "", DESCRIPTION),
    ]
    if service.organization is not None:
        fields.append((service.organization.name, ORGANISATION))
    fields += [
        (attribute.taxonomy_term.name, TERM)
        for attribute in service.attributes
        if attribute.taxonomy_term is not None
    ]
    weights: dict[str, float] = {}
    for text, weight in fields:
        for word in tokens(text):
            weights[word] = max(weight, weights.get(word, 0.0))
    return weights
