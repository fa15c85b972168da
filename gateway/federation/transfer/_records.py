"""A transfer in the sharing register on both sides (DESIGN 3.8), and the team told of the new lead
professional (DESIGN 3.6): what the workflow writes besides its own rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.members import MemberDirectory
from schemas import Episode, is_gss_code

from ...consent import ConsentDecision
from ...episodes import EpisodeStore
from ...storage import aware_utc
from ...storage._tables import register
from ..attestation import KeyLookup
from ..disclosing import register_sent
from ..notifications import announcement, audience
from ..outbox import Outbox
from ..receipts import answer_is_sound
from ..withdrawals import basis_text
from ._terms import WHOLE

__all__ = ["TransferRecords"]


class TransferRecords:
    def __init__(
        self,
        me: str,
        store: EpisodeStore,
        outbox: Outbox,
        *,
        signing_key: OKPKey,
        key_for: KeyLookup,
        members: Callable[[], MemberDirectory] | None,
    ) -> None:
        self.me, self.store, self.outbox = me, store, outbox
        self.signing_key, self.key_for, self.members = signing_key, key_for, members

    async def sent(
        self,
        connection: AsyncConnection,
        row: Any,
        decision: ConsentDecision,
        *,
        taken_by: str,
        offered_by: str | None,
        at: dt.datetime,
    ) -> dict[str, Any]:
        """DESIGN 3.8: our side of the register for the whole episode going to the receiver, on
        the basis consent gives, with a receipt we sign; what the commit tells the receiver of it
        (its side of the register)."""
        sections = [s.value for s in WHOLE]
        basis = sorted({b for _, b in decision.basis})
        register_id, receipt = await register_sent(
            connection,
            self.signing_key,
            me=self.me,
            recipient=row.counterpart,
            episode_id=row.episode_id,
            requested_by=taken_by,
            approved_by=taken_by,
            holder_approved_by=offered_by,
            sections=sections,
            basis=basis,
            override=decision.overridden,
            at=at,
            transfer=row.id,
        )
        return {
            "register_id": register_id,
            "sections": sections,
            "basis": basis,
            "override": decision.overridden,
            "holder_approved_by": offered_by,
            "receipt": receipt,
        }

    async def received(
        self,
        connection: AsyncConnection,
        sender: str,
        row: Any,
        ours: Episode,
        taken_by: object,
        shared: object,
    ) -> tuple[str, str]:
        """DESIGN 3.8: our side of the register for the episode we received, with the holder's
        receipt when it verifies (signed by the holder, for us, for this episode and our lead
        contact, repeating what the commit says); the row's id, and whether the receipt was
        `verified`, `unverified` or `none` (a holder from before transfers were registered)."""
        lead_contact = taken_by if isinstance(taken_by, str) and taken_by else "unspecified"
        told = dict(shared) if isinstance(shared, Mapping) else {}
        sections = told.get("sections")
        whole = ours.model_dump(mode="json")
        answer = {
            **told,
            "outcome": "disclosed",
            "episode_ref": row.episode_id,
            "content": {s: whole.get(s) for s in sections} if isinstance(sections, list) else None,
        }
        sound = bool(told) and answer_is_sound(
            answer,
            asked={
                "episode_ref": row.episode_id,
                "practitioner": {"id": lead_contact},
                "sections": None,
            },
            holder=sender,
            me=self.me,
            key_for=self.key_for,
            sent_at=aware_utc(row.created_at),
        )
        register_id = str(uuid.uuid4())
        basis = told.get("basis") if sound else None
        await connection.execute(
            insert(register).values(
                id=register_id,
                episode_id=row.episode_id,
                direction="received",
                counterpart=sender,
                requested_by=lead_contact,
                approved_by=lead_contact,
                holder_approved_by=told.get("holder_approved_by") if sound else None,
                sections=told["sections"] if sound else [s.value for s in WHOLE],
                basis=basis_text([str(b) for b in basis]) if isinstance(basis, list) else "",
                override=bool(told.get("override")) if sound else False,
                disclosed_at=dt.datetime.now(dt.UTC),
                receipt=told.get("receipt") if sound else None,
            )
        )
        return register_id, "verified" if sound else ("unverified" if told else "none")

    async def tell_the_team(
        self,
        connection: AsyncConnection,
        ours: Episode,
        custody: list[str],
        replaced_authority: object,
    ) -> tuple[int, int]:
        """DESIGN 3.6: the new lead professional is announced, as a change of lead professional
        made here is (`api/_episodes.py`), to every other authority with a TAC member or the lead
        professional on the episode and to that of the lead professional replaced, with the
        custody steps that show we hold the episode now; an authority outside the federation is
        left out (`audience`). How many authorities are told, and how many left out."""
        team = [*ours.tac_members, *([ours.lead_professional] if ours.lead_professional else [])]
        concerned = {p.authority for p in team if p.authority}
        if isinstance(replaced_authority, str) and is_gss_code(replaced_authority):
            concerned.add(replaced_authority)
        concerned.discard(self.me)
        authorities, left_out = audience(concerned, self.members)
        if not authorities:
            return 0, left_out
        stored = await self.store.get(connection, ours.episode_id)
        body = announcement(
            stored.episode,
            holder=self.me,
            practitioner=stored.episode.lead_professional,
            changed_at=dt.datetime.now(dt.UTC),
            revision=stored.revision,
            custody=custody,
        )
        for authority in authorities:
            await self.outbox.enqueue(connection, authority, "lead_professional_update", body)
        return len(authorities), left_out
