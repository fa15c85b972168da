"""The terms of a transfer: its states, codes and limits, the consent it needs, and the small
helpers the workflow and its records share (`__init__` tells the whole protocol)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any, Literal, NamedTuple

from schemas import LONDON, AgencyType, Episode, EpisodeState, Section, london_today

from ...consent import ConsentDecision, ConsentRequest, DenialCode, Recipient, Rule, decide
from ...errors import Conflict, ConsentRefused
from ...protection import KeyRing, associated_data, open_
from ...storage import aware_utc
from ...timeliness import working_days_after
from ..custody import custody_chain
from ..disclosing import refusal_code

Direction = Literal["in", "out"]


def answer_due_by(offered_at: dt.datetime, working_days: int) -> dt.date:
    """The last London day an offer made at `offered_at` (UTC when naive, as SQLite returns it) may
    wait for its answer: that many working days on (England and Wales bank holidays)."""
    london = aware_utc(offered_at).astimezone(LONDON).date()
    return working_days_after(london, working_days)


OPEN_STATES = ("offered", "accepted")  # not yet committed nor closed
# The episodes that move: a closed one stays with its holder (archived, then purged, there).
MOVABLE = frozenset({EpisodeState.POTENTIAL, EpisodeState.OPEN})
# Closing an offer unmoved, by the side whose row it is (the holder's `out`, the receiver's `in`):
# the action (audited `transfer.<action>`, sent as `transfer_<action>`) and the state it leaves.
CLOSING: dict[str, tuple[str, str]] = {
    "out": ("withdraw", "withdrawn"),
    "in": ("decline", "declined"),
}
_CLOSING = {f"transfer_{action}": state for action, state in CLOSING.values()}  # by message kind
# Closing, by the receiver, an accepted offer whose episode never came (it sends `transfer_decline`).
RELEASE = ("release", "released")
STATES = (*OPEN_STATES, "committed", *(state for _, state in CLOSING.values()), RELEASE[1])


class Closed(NamedTuple):
    episode_id: str
    action: str  # withdraw | decline | release: audited `transfer.<action>`
    state: str  # what the offer is now


_REASON = re.compile(r"[a-z][a-z0-9_.]{0,63}")
REFUSED = "transfer.refused"  # what a sender is told of an offer declined at once
# The commit carries the whole episode in one message, which must fit a peer's request (4 MiB by
# default, with the envelope): one bigger would be refused at every attempt, after our copy had
# become read-only, and nobody would hold the episode.
MAX_EPISODE_BYTES = 3 * 1024 * 1024
TOO_LARGE = "transfer.episode_too_large"
# What a holder is told, as a decline of its committed offer, when the receiver refuses the commit
# (the reason stays with the receiver, as for an offer declined at once): it takes its copy back.
COMMIT_REFUSED = "transfer.commit_refused"
# A transfer discloses the whole episode to the receiving borough's early help (CAF) service: the
# consent engine decides it as that recipient, for that purpose, every section (DESIGN 3.5).
TRANSFER_PURPOSE = "early_help"
WHOLE = tuple(Section)


def receiving_service(borough: str | None) -> str | None:
    """The name a transfer's recipient goes by: the receiving borough's early help service, named
    from the borough's name in the signed metadata ("Islington" -> "Islington early help"). An
    exclusion naming another agency ("St Mary's Hospital", "Hackney Early Help Hub") then does
    not stop the move, and one naming the borough or early help does. Without the borough's name,
    none: every exclusion by name then stops it (the engine errs towards refusing)."""
    return f"{borough} early help" if borough else None


def _transfer_consent(episode: Episode, to: str, borough: str | None) -> ConsentDecision:
    """The consent engine's answer, now, to moving `episode` (all of it) to the authority `to`,
    whose name in the signed metadata is `borough`."""
    today = london_today()
    return decide(
        episode,
        ConsentRequest(
            recipient=Recipient(AgencyType.EARLY_HELP, receiving_service(borough), to),
            purpose=TRANSFER_PURPOSE,
            sections=None,
            at=today,
            decided_on=today,
        ),
    )


class ConsentNotGiven(ConsentRefused):
    """Consent does not let the whole episode go to the receiving authority: the engine's code, and
    the rule that decided (audited)."""

    def __init__(self, code: str, rule: str) -> None:
        super().__init__(f"consent does not permit the transfer (rule {rule})", code=code)
        self.rule = rule


def _consent_refusal(decision: ConsentDecision) -> ConsentNotGiven | None:
    """Why consent stops the transfer, or None: the whole episode moves, so every section must be
    permitted (a statement limited to some sections refuses the rest: `consent_missing`)."""
    if not decision.permitted:
        return ConsentNotGiven(refusal_code(decision), decision.rule.value)
    if decision.refused_sections:
        return ConsentNotGiven(DenialCode.CONSENT_MISSING.value, Rule.SECTIONS.value)
    return None


def _is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _size(episode: Episode) -> int:
    """Bytes on the wire (UTF-8, as the transport sends it), not characters."""
    return len(episode.model_dump_json().encode())


def _reason_code(value: object) -> str:
    """A peer's reason, kept only if it looks like a code (it is listed and audited)."""
    return value if isinstance(value, str) and _REASON.fullmatch(value) else "unspecified"


def _steps(stored: str | None) -> list[str]:
    """Custody steps as a `transfers.custody` column holds them."""
    return custody_chain(json.loads(stored)) if stored else []


def _bound(offer_id: str, direction: str) -> bytes:
    return associated_data("transfers", f"{offer_id}:{direction}", "sealed")


def _kept(row: Any, ring: KeyRing) -> dict[str, Any]:
    """What a row keeps sealed: on the holder's (`out`) the offering lead contact and, once
    committed, the episode's state before and the register row; on the receiver's (`in`) the
    accepted lead professional and the accepting lead contact. An `in` row accepted before the
    lead contact was kept holds the lead professional alone."""
    if row.sealed is None:
        return {}
    kept = json.loads(open_(row.sealed, ring, _bound(row.id, row.direction)))
    if row.direction == "in" and "lead_professional" not in kept:
        return {"lead_professional": kept}
    return dict(kept)


class ReleasedTooEarly(Conflict):
    """A release of an accepted offer before its due date, asked for as a decline."""

    refused_action = "transfer.release"


def _state_before(episode: Episode) -> EpisodeState:
    """For a copy committed before its state was kept: closed if it records a closure."""
    return EpisodeState.CLOSED if episode.closure is not None else EpisodeState.OPEN
