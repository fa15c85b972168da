"""Episodes held by this node: storage (sealed, blind-indexed) and the changes the API makes."""

from ._changes import (
    ConsentInput,
    EpisodeClosed,
    Event,
    EventBody,
    ReviewHeld,
    TacMemberAdded,
    WithdrawalInput,
    apply_event,
    record_consent,
    withdraw_consent,
)
from ._index_key import check_index_key
from ._store import EpisodeStore, Stored, child_ref, wait_for_key

__all__ = [
    "ConsentInput",
    "EpisodeClosed",
    "EpisodeStore",
    "Event",
    "EventBody",
    "ReviewHeld",
    "Stored",
    "TacMemberAdded",
    "WithdrawalInput",
    "apply_event",
    "check_index_key",
    "child_ref",
    "record_consent",
    "wait_for_key",
    "withdraw_consent",
]
