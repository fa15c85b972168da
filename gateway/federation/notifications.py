"""What other members tell this one about an episode its practitioners take part in (DESIGN 3.6):
a practitioner added to the Team Around the Child, a new lead professional, and (`episode_update`)
a review held or the episode closed, so that the lead professional and the team are kept informed
of developments (protocol 003 section 7): the dates, whether a TAC meeting was held, the next
review and the closure's outcome (`stepped_up` among them), never the review's or closure's text.
The holder sends them through its outbox (`api/_episodes.py`, with `announcement`); here they are
kept, sealed (a practitioner is named), and listed for the borough systems at
`GET /api/v1/notifications`.

**When**: the holder dates each change (`changed_at`, and the episode's `revision` on its copy)
as it makes it. Messages to one member are retried each on its own back-off, so an older update
can arrive after a newer one: a page is listed oldest change first, and a lead-professional
update older than another kept for the episode is listed `superseded`, whatever order they came
in. A body from a node that does not date its changes yet is dated when it was received.

**Who may tell**: only the member this node knows holds the episode. What it knows is what it
stores: its own copy (held here: nobody else tells about it), a transfer of it away (to that
member), a disclosure received from it, or earlier notifications about it; the latest of these
names the holder. A member that moved the episode on stays the holder known here until the new
holder shows the signed custody steps (`custody.py`) that lead from it to itself. A former holder
is still heard about a change it made while it held the episode: its word can arrive after the new
holder's (each message backs off on its own), and it is kept when a custody step signed by it
moved the episode on at or after the change's `changed_at`, in a chain that is not its own say-so:
one our copy came with, or one another member showed that led from the holder known then to itself.
Such a word names nobody as holder now, is listed `holder_verified: false`, and its own steps vouch
for nobody. Anything else is refused `not_found` (the
sender learns nothing of who holds it; `holder.py` audits the refused message with that code and
its kind), and nothing is kept. With no record of the episode at all, the notification is kept but
listed `holder_verified: false`: a TAC member's borough usually learns of an episode this way, and
refusing it would leave it never told; from then on its sender is the holder known here.

**Whom the holder tells** (`audience`): the authorities of the team that are members of the
federation; one outside it has no node to tell."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.members import MemberDirectory
from schemas import ClosureOutcome, Episode, EpisodeState, Practitioner

from ..episodes import EpisodeClosed, Event, ReviewHeld
from ..errors import NotFound, PeerUnavailable, SchemaViolation
from ..protection import KeyRing, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import episodes, notifications, received_copies, register, transfers
from .attestation import KeyLookup
from .custody import MAX_STEPS, custody_chain, moved_on_to
from .outbox import Message
from .transport import MAX_SKEW

__all__ = [
    "KINDS",
    "Change",
    "Notifications",
    "announcement",
    "audience",
    "change_of",
    "custody_of",
]

KINDS = frozenset({"tac_notification", "lead_professional_update", "episode_update"})
_LEAD = "lead_professional_update"
# Custody steps are walked from the holder known here, in the order they were signed; any step
# that holder signed counts, however long before we learnt of it.
_EVER = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_HERE = ""  # the holder known here is this node itself


class Change(BaseModel):
    """What an `episode_update` says happened: facts and codes only, no free text."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    type: Literal["review", "closure"]
    on: dt.date  # the review's `held_on`, the closure's `closed_on`
    tac_meeting_held: bool | None = None  # a review's
    next_review_on: dt.date | None = None  # a review's
    outcome: ClosureOutcome | None = None  # a closure's


def change_of(event: Event) -> Change | None:
    """The `Change` an episode event announces, or None for one announced otherwise."""
    if isinstance(event, ReviewHeld):
        review = event.review
        return Change(
            type="review",
            on=review.held_on,
            tac_meeting_held=review.tac_meeting_held,
            next_review_on=review.next_review_on,
        )
    if isinstance(event, EpisodeClosed):
        return Change(type="closure", on=event.closure.closed_on, outcome=event.closure.outcome)
    return None


class _Told(BaseModel):
    """A notification's body as the holder writes it (`changed_at`, `revision` and `custody` since
    2026-12-07: older nodes send none; `change` for an `episode_update`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    episode_ref: str = Field(min_length=1, max_length=36)
    holder: str = Field(pattern=r"^[ENSW][0-9]{8}$")
    practitioner: Practitioner | None
    changed_at: AwareDatetime | None = None
    revision: int | None = Field(default=None, ge=1)
    custody: list[str] | None = Field(default=None, max_length=MAX_STEPS)
    change: Change | None = None


async def custody_of(connection: AsyncConnection, episode_id: str) -> list[str]:
    """The custody steps our copy of the episode came with (none for one that started here)."""
    came = await connection.scalar(
        select(transfers.c.custody)
        .where(
            transfers.c.episode_id == episode_id,
            transfers.c.direction == "in",
            transfers.c.state == "committed",
        )
        .order_by(transfers.c.updated_at.desc())
        .limit(1)
    )
    return custody_chain(json.loads(came)) if came else []


def announcement(
    episode: Episode,
    *,
    holder: str,
    practitioner: Practitioner | None,
    changed_at: dt.datetime,
    revision: int,
    custody: Sequence[str] = (),
    change: Change | None = None,
) -> dict[str, Any]:
    """The body the holder sends: who, about which episode, when the change was made, and (an
    `episode_update`) what it was."""
    body: dict[str, Any] = {
        "episode_ref": str(episode.episode_id),
        "holder": holder,
        "practitioner": None if practitioner is None else practitioner.model_dump(mode="json"),
        "changed_at": changed_at.astimezone(dt.UTC).isoformat(),
        "revision": revision,
    }
    if change is not None:
        body["change"] = change.model_dump(mode="json")
    if custody:  # only a moved episode's: what lets members that knew its old holder believe us
        body["custody"] = list(custody)
    return body


def audience(
    authorities: Iterable[str], members: Callable[[], MemberDirectory] | None
) -> tuple[list[str], int]:
    """Of the authorities a change concerns, those to tell, and how many are left out: an
    authority that is not a member of the federation (a TAC member's school in a borough outside
    it) has no node, and a message to it could only dead-letter. A suspended member is told (its
    messages wait until it is reinstated). Without a usable member directory (none given, or the
    signed metadata expired) every one is told, as before: their messages wait."""
    wanted = sorted(set(authorities))
    if members is None:
        return wanted, 0
    try:
        directory = members()
    except PeerUnavailable:
        return wanted, 0
    told = [a for a in wanted if directory.member(a) is not None]
    return told, len(wanted) - len(told)


def _bound(notification_id: str) -> bytes:
    return associated_data("notifications", notification_id, "sealed")


_Order = tuple[dt.datetime, int, dt.datetime]


def _order(row: Any, what: dict[str, Any]) -> _Order:
    """By the moment the change was made; the revision orders two changes of one copy made within
    the clock's resolution, the arrival anything else."""
    changed = dt.datetime.fromisoformat(str(what["changed_at"]))
    return changed, int(what["revision"] or 0), aware_utc(row.received_at)


class Notifications:
    def __init__(self, ring: KeyRing, *, key_for: KeyLookup | None = None) -> None:
        self.ring = ring
        # Members' keys, to check the custody steps a new holder shows; without them a member
        # other than the holder known here is refused even after a genuine move.
        self.key_for = key_for

    async def known_holder(self, connection: AsyncConnection, episode_ref: str) -> str | None:
        """Who holds `episode_ref` as this node's records last said: `_HERE` (an empty text), a
        member, or None. The console's child view shows it for a transferred copy.
        A former holder's notification kept late names nobody: it was the holder then, not now."""
        state = await connection.scalar(
            select(episodes.c.state).where(episodes.c.id == episode_ref)
        )
        if state is not None and state != EpisodeState.TRANSFERRED.value:
            return _HERE
        sources = (
            select(transfers.c.updated_at, transfers.c.counterpart).where(
                transfers.c.episode_id == episode_ref,
                transfers.c.direction == "out",
                transfers.c.state == "committed",
            ),
            select(received_copies.c.received_at, received_copies.c.holder).where(
                received_copies.c.episode_ref == episode_ref
            ),
            # Kept when retention has removed the copy (7 years on); dated by the holder's
            # receipt, a moment between our asking and the answer's arrival.
            select(register.c.disclosed_at, register.c.counterpart).where(
                register.c.episode_id == episode_ref, register.c.direction == "received"
            ),
        )
        latest: list[tuple[dt.datetime, str]] = []
        for query in sources:  # dated by our own clock (the register's by the receipt)
            newest_first = query.order_by(query.selected_columns[0].desc()).limit(1)
            row = (await connection.execute(newest_first)).first()
            if row is not None:
                latest.append((aware_utc(row[0]), str(row[1])))
        told = await connection.execute(
            select(notifications)
            .where(notifications.c.episode_ref == episode_ref)
            .order_by(notifications.c.received_at.desc())
        )
        for row in told:
            if not self._opened(row).get("former_holder"):
                latest.append((aware_utc(row.received_at), row.sender))
                break
        return max(latest)[1] if latest else None

    def _moved_to(self, told: _Told, known: str, sender: str) -> bool:
        if self.key_for is None or not told.custody:
            return False
        walked = moved_on_to(
            custody_chain(told.custody),
            episode_ref=told.episode_ref,
            first=known,
            since=_EVER,
            key_for=self.key_for,
        )
        return walked.holder == sender

    async def _held_then(
        self, connection: AsyncConnection, told: _Told, sender: str, known: str
    ) -> bool:
        """Did `sender` hold the episode when it made the change? So the custody steps kept here
        say: a step signed by `sender` moved the episode on from it at or after `changed_at`. A step
        `from` a member needs only that member's signature, so only steps that are not the
        sender's own say-so count: those our copy came with, and those another member showed as
        holder (the holder known then, one whose steps led from it, or a first speaker), never
        those `sender` sent itself nor any a former holder's late word brought; and the steps
        must lead on to the holder known here now (a step the sender signed ahead of time and
        slipped into a chain it handed over, moving the episode elsewhere, leads nowhere we know).
        A notification that says not when it was made cannot be placed, nor without the keys."""
        if self.key_for is None or told.changed_at is None:
            return False
        chains = [await custody_of(connection, told.episode_ref)]
        rows = await connection.execute(
            select(notifications).where(
                notifications.c.episode_ref == told.episode_ref, notifications.c.sender != sender
            )
        )
        for row in rows:
            what = self._opened(row)
            if not what.get("former_holder"):
                chains.append(custody_chain(what.get("custody")))
        for chain in chains:
            walked = moved_on_to(
                chain,
                episode_ref=told.episode_ref,
                first=sender,
                since=told.changed_at,
                key_for=self.key_for,
            )
            if walked.holder != sender and walked.holder == known:
                return True
        return False

    async def receive(self, connection: AsyncConnection, sender: str, message: Message) -> None:
        """Keep one (in the inbox's transaction, so it is kept exactly once). A body that is not
        what a holder sends is refused `schema_violation`, one from a member not known here to
        hold the episode `not_found` (unless it held it when it made the change); nothing is
        kept."""
        received_at = dt.datetime.now(dt.UTC)
        try:
            told = _Told.model_validate(message.body)
        except ValidationError:
            raise SchemaViolation("the notification's body is not valid") from None
        if told.holder != sender:
            raise SchemaViolation("a notification comes from the episode's holder")
        if told.changed_at is not None and told.changed_at > received_at + MAX_SKEW:
            raise SchemaViolation("a notification's changed_at lies ahead of this node's clock")
        known = await self.known_holder(connection, told.episode_ref)
        former = False
        if known is not None and known != sender:
            if known == _HERE:
                raise NotFound("no episode of the sender's is known here by that reference")
            if not self._moved_to(told, known, sender):
                # Messages back off each on its own: a former holder's word can come after the
                # new holder's. It is kept if that member held the episode when it spoke.
                former = await self._held_then(connection, told, sender, known)
                if not former:
                    raise NotFound("no episode of the sender's is known here by that reference")
        notification_id = str(uuid.uuid4())
        what = {
            "practitioner": None
            if told.practitioner is None
            else told.practitioner.model_dump(mode="json"),
            "changed_at": (told.changed_at or received_at).astimezone(dt.UTC).isoformat(),
            "revision": told.revision,
            # A former holder's late word is not the holder known here speaking.
            "holder_verified": known is not None and not former,
            # Kept (sealed with the rest, no new column): the steps vouch for a former holder
            # whose word arrives after this one (never for their own sender). A former holder's
            # word names no holder now, and the steps it brings vouch for nobody: not kept.
            "custody": [] if former else told.custody or [],
            "former_holder": former,
            "change": None if told.change is None else told.change.model_dump(mode="json"),
        }
        sealed = seal(json.dumps(what).encode(), self.ring, _bound(notification_id))
        await connection.execute(
            insert(notifications).values(
                id=notification_id,
                sender=sender,
                message_id=message.id,
                kind=message.kind,
                episode_ref=told.episode_ref,
                received_at=received_at,
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )

    def _opened(self, row: Any) -> dict[str, Any]:
        """A kept row's sealed part; one kept before changes were dated held the practitioner
        alone, and is dated when it was received."""
        what = json.loads(open_(row.sealed, self.ring, _bound(row.id)))
        if isinstance(what, dict) and "changed_at" in what and "practitioner" in what:
            return dict(what)
        return {
            "practitioner": what,
            "changed_at": aware_utc(row.received_at).isoformat(),
            "revision": None,
            "holder_verified": False,
        }

    async def _newest_leads(
        self, connection: AsyncConnection, episode_refs: Iterable[str]
    ) -> dict[str, _Order]:
        """For each episode, the order of its newest lead-professional change kept here, whenever
        it arrived."""
        refs = sorted(set(episode_refs))
        if not refs:
            return {}
        rows = await connection.execute(
            select(notifications).where(
                notifications.c.kind == _LEAD, notifications.c.episode_ref.in_(refs)
            )
        )
        newest: dict[str, _Order] = {}
        for row in rows:
            key = _order(row, self._opened(row))
            newest[row.episode_ref] = max(newest.get(row.episode_ref, key), key)
        return newest

    async def listed(
        self,
        connection: AsyncConnection,
        *,
        episode_ref: str | None = None,
        since: dt.datetime | None = None,
        since_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Those received after `since` (for a borough system polling), at most `limit`, taken in
        the order they arrived, (`received_at`, `id`), and listed oldest change first. The next
        poll gives the `received_at` and `id` of the last one taken (the greatest pair listed) as
        `since` and `since_id`, so one received at the same moment that did not fit the page is
        not skipped (with `since` alone, those received at that moment are passed by). A
        lead-professional update is `superseded` when a newer change of lead professional for
        its episode is kept here."""
        query = select(notifications).order_by(notifications.c.received_at, notifications.c.id)
        if episode_ref is not None:
            query = query.where(notifications.c.episode_ref == episode_ref)
        if since is not None and since_id is None:
            query = query.where(notifications.c.received_at > since)
        elif since is not None:
            query = query.where(
                or_(
                    notifications.c.received_at > since,
                    and_(notifications.c.received_at == since, notifications.c.id > since_id),
                )
            )
        rows = [(row, self._opened(row)) for row in await connection.execute(query.limit(limit))]
        newest = await self._newest_leads(
            connection, (row.episode_ref for row, _ in rows if row.kind == _LEAD)
        )
        rows.sort(key=lambda kept: _order(*kept))
        return [
            {
                "id": row.id,
                "kind": row.kind,
                "from": row.sender,
                "episode_ref": row.episode_ref,
                "received_at": aware_utc(row.received_at).isoformat(),
                "changed_at": what["changed_at"],
                "holder_verified": bool(what["holder_verified"]) and not what.get("former_holder"),
                "superseded": row.kind == _LEAD and _order(row, what) < newest[row.episode_ref],
                "practitioner": what["practitioner"],
                "change": what.get("change"),
            }
            for row, what in rows
        ]
