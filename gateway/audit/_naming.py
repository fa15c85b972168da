"""One read that showed many records, as entries naming each of them: an entry's details hold at
most 64 items and 2 KiB (`_rules`), and 40 UUIDs (39 bytes each, quoted) fit beside a few counts.
So that a subject access request finds every read of a child's records, none is left unnamed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ._canonical import JsonValue
from ._entry import AuditDraft

__all__ = ["IDS_PER_ENTRY", "naming"]

IDS_PER_ENTRY = 40


def naming(
    draft: AuditDraft, shown: Mapping[str, Sequence[str]], *, keep: Sequence[str] = ()
) -> list[AuditDraft]:
    """`draft` as as many entries as the ids `shown` (by kind) need, 40 to an entry: the first with
    the draft's details, each later one with only those named in `keep` and its `part` number."""
    named = [(kind, item) for kind, items in shown.items() for item in items]
    parts = [named[n : n + IDS_PER_ENTRY] for n in range(0, len(named), IDS_PER_ENTRY)] or [[]]
    drafts = []
    for number, part in enumerate(parts, start=1):
        details: dict[str, JsonValue] = dict(draft.details)
        if number > 1:
            details = {k: v for k, v in details.items() if k in keep}
            details["part"] = number
        for kind in shown:
            details[kind] = [item for named_kind, item in part if named_kind == kind]
        drafts.append(dataclasses.replace(draft, details=details))
    return drafts
