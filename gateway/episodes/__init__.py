"""Episodes held by this node: storage (sealed, blind-indexed) and the changes the API makes."""

from ._changes import (
    LONDON,
    ConsentInput,
    Event,
    EventBody,
    TacMemberAdded,
    WithdrawalInput,
    apply_event,
    london_today,
    record_consent,
    withdraw_consent,
)
from ._store import EpisodeStore, Stored, child_ref

__all__ = [
    "LONDON",
    "ConsentInput",
    "EpisodeStore",
    "Event",
    "EventBody",
    "Stored",
    "TacMemberAdded",
    "WithdrawalInput",
    "apply_event",
    "child_ref",
    "london_today",
    "record_consent",
    "withdraw_consent",
]
