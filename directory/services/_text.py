"""Words of a service for text search: letters and digits of any script, folded (case, accents, a
few letters NFKD leaves alone: `Żłobek` -> `zlobek`, `Straße` -> `strasse`), common words dropped,
with a weight for where the word was found (a word of the name counts more than one of the
description). The access rule's terms are not words of the service: they say who may use it, and
searching them would find every residents-only service for `only` or `residents`."""

from __future__ import annotations

import re
import unicodedata

from ._access import ACCESS_TAXONOMY, MEMBER_TAXONOMY, PROTOCOL_TAXONOMY
from ._models import Service

__all__ = ["tokens", "unmatchable", "weighted_tokens"]

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; `_` separates words
_STOP = frozenset(
    "a an and are as at be by for from in into is it of on or the to with who we our you your".split()
)
_UNDECOMPOSED = str.maketrans(  # letters NFKD does not split into a base letter and a mark
    {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "ŀ": "l", "æ": "ae", "œ": "oe", "þ": "th"}
)
_NOT_SEARCHED = frozenset({ACCESS_TAXONOMY, PROTOCOL_TAXONOMY, MEMBER_TAXONOMY})
NAME, ORGANISATION, TERM, DESCRIPTION = 3.0, 2.0, 2.0, 1.0


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_UNDECOMPOSED))
    # Marks go (accents, and the vowel signs of Indic scripts too): the same on both sides, so a
    # query still finds what it names, typed with or without its accents.
    return "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))


def tokens(text: str) -> list[str]:
    return [word for word in _WORD.findall(_fold(text)) if word not in _STOP]


def unmatchable(text: str) -> bool:
    """Text that holds something but no word at all (`!!`, an emoji): no service can match it."""
    return bool(text.strip()) and _WORD.search(_fold(text)) is None


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
        and attribute.taxonomy_term.taxonomy not in _NOT_SEARCHED
    ]
    weights: dict[str, float] = {}
    for text, weight in fields:
        for word in tokens(text):
            weights[word] = max(weight, weights.get(word, 0.0))
    return weights
