"""The consent engine: may this episode's information be disclosed, to whom, for what? (DESIGN 3.5)

A pure decision over one episode's consent statements, implementing the London CAF protocol (003 §3,
"Sharing information") and the consent rules of 001 ("Preparation and Consent", partial consent):
the right person's consent for the child's age, exclusions that always win, withdrawal and expiry,
purposes and sections, and a hook for the public-interest override. Every decision says which rule and
which statement decided, in words that carry no personal data, for the console and the sharing register.
No I/O, no state: `decide(episode, request, override=None) -> ConsentDecision`.
"""

from __future__ import annotations

from ._decide import decide
from ._types import (
    ALL_SECTIONS,
    ConsentDecision,
    ConsentRequest,
    DenialCode,
    Outcome,
    Override,
    Recipient,
    Rule,
    StatementFinding,
    normalise_purpose,
)

__all__ = [
    "ALL_SECTIONS",
    "ConsentDecision",
    "ConsentRequest",
    "DenialCode",
    "Outcome",
    "Override",
    "Recipient",
    "Rule",
    "StatementFinding",
    "decide",
    "normalise_purpose",
]
