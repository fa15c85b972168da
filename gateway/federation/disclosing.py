"""One disclosure on the holder's side (DESIGN 3.5, 3.8): the consent decision and, when it permits,
the register row with its signed receipt, the override flag and the audit entry.

Two paths use it: `/federation/v1/disclosures` answering at once, and a lead contact of this borough
approving a disclosure held for approval (`approvals.py`), which decides again at that moment.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import LONDON, AgencyType, EpisodeState, Section

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..consent import ConsentDecision, ConsentRequest, Override, Recipient, decide
from ..episodes import EpisodeStore, Stored
from ..errors import FederationRefused, NotFound
from ..storage._tables import register
from .attestation import Attestation, OverrideGrant
from .receipts import sign_receipt
from .withdrawals import basis_text

__all__ = ["Asked", "audit_code", "consent_now", "disclose", "refusal_code", "register_sent"]


@dataclass(frozen=True, slots=True)
class Asked:
    """A disclosure asked for, as the verified attestation and the request body state it: all the
    holder needs to decide, now or later (then read back from sealed storage)."""

    requester: str  # the home member (GSS)
    practitioner_id: str
    practitioner_role: str
    agency: str
    agency_type: AgencyType
    purpose: str
    reason: str
    approved_by: str  # the home borough's lead contact
    episode_id: str
    sections: tuple[Section, ...] | None  # None: every section consent permits
    override: OverrideGrant | None = None
    # The attestation's `exp`: a held disclosure may be approved only before it. None for one held
    # before this was recorded (approvals.py then takes the 24-hour bound from its arrival).
    attested_until: dt.datetime | None = None
    # The key that signed the attestation; None for one held before this was recorded.
    key_id: str | None = None

    @classmethod
    def from_attestation(
        cls, attestation: Attestation, episode_id: str, sections: list[Section] | None
    ) -> Asked:
        return cls(
            requester=attestation.issuer,
            practitioner_id=attestation.practitioner_id,
            practitioner_role=attestation.role,
            agency=attestation.agency,
            agency_type=attestation.agency_type,
            purpose=attestation.purpose,
            reason=attestation.reason,
            approved_by=attestation.approved_by,
            episode_id=episode_id,
            sections=tuple(sections) if sections else None,
            override=attestation.override,
            attested_until=attestation.expires_at,
            key_id=attestation.key_id,
        )

    def as_json(self) -> dict[str, Any]:
        grant = self.override
        return {
            "requester": self.requester,
            "practitioner_id": self.practitioner_id,
            "practitioner_role": self.practitioner_role,
            "agency": self.agency,
            "agency_type": self.agency_type.value,
            "purpose": self.purpose,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "episode_id": self.episode_id,
            "sections": None if self.sections is None else [s.value for s in self.sections],
            "override": None
            if grant is None
            else {
                "override_id": grant.override_id,
                "approved_by": grant.approved_by,
                "expires_at": grant.expires_at.isoformat(),
                "justification_sha256": grant.justification_sha256,
            },
            "attested_until": None
            if self.attested_until is None
            else self.attested_until.isoformat(),
            "key_id": self.key_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Asked:
        grant = data.get("override")
        attested_until = data.get("attested_until")
        return cls(
            requester=data["requester"],
            practitioner_id=data["practitioner_id"],
            practitioner_role=data["practitioner_role"],
            agency=data["agency"],
            agency_type=AgencyType(data["agency_type"]),
            purpose=data["purpose"],
            reason=data["reason"],
            approved_by=data["approved_by"],
            episode_id=data["episode_id"],
            sections=None if data["sections"] is None else tuple(map(Section, data["sections"])),
            override=None
            if grant is None
            else OverrideGrant(
                override_id=grant["override_id"],
                approved_by=grant["approved_by"],
                expires_at=dt.datetime.fromisoformat(grant["expires_at"]),
                justification_sha256=grant["justification_sha256"],
            ),
            attested_until=None
            if attested_until is None
            else dt.datetime.fromisoformat(attested_until),
            key_id=data.get("key_id"),
        )


def refusal_code(decision: ConsentDecision) -> str:
    return decision.code.value if decision.code else "consent_missing"


_CODE = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def audit_code(value: str) -> str:
    """Another member's id for something, fit for our audit log (codes only), or a marker."""
    return value if _CODE.fullmatch(value) else "not-a-code"


async def consent_now(
    connection: AsyncConnection, store: EpisodeStore, asked: Asked, now: dt.datetime | None = None
) -> tuple[Stored, ConsentDecision]:
    """The consent engine's answer at this moment (`now`, default the clock's); an override counts
    only while in force. An attested purpose or agency the engine cannot take (no letters or
    digits in it) is refused as a bad attestation."""
    moment = now or dt.datetime.now(dt.UTC)
    today = moment.astimezone(LONDON).date()
    try:
        request = ConsentRequest(
            recipient=Recipient(asked.agency_type, asked.agency, asked.requester),
            purpose=asked.purpose,
            sections=frozenset(asked.sections) if asked.sections else None,
            at=today,
            decided_on=today,
        )
    except ValueError:
        raise FederationRefused(
            "the attested purpose, agency or authority is not usable", code="attestation_invalid"
        ) from None
    stored = await store.get(connection, asked.episode_id, for_update=True)
    if stored.episode.state == EpisodeState.TRANSFERRED:
        raise NotFound("the episode moved to another authority")
    if stored.episode.state == EpisodeState.ARCHIVED:  # DESIGN 3.6: kept, no longer accessible
        raise NotFound("the episode is archived")
    override = None
    if asked.override is not None and asked.override.expires_at > moment:
        override = Override(
            override_id=asked.override.override_id,
            valid_from=today,
            # A London date, as `today` is: a UTC one is a day behind after 23:00 in summer.
            valid_until=max(today, asked.override.expires_at.astimezone(LONDON).date()),
        )
    return stored, decide(stored.episode, request, override)


async def register_sent(
    connection: AsyncConnection,
    key: OKPKey,
    *,
    me: str,
    recipient: str,
    episode_id: str,
    requested_by: str,
    approved_by: str | None,
    second_approved_by: str | None = None,
    holder_approved_by: str | None,
    sections: list[str],
    basis: list[str],
    override: bool,
    at: dt.datetime,
    transfer: str | None = None,
) -> tuple[str, str]:
    """DESIGN 3.8: our side of the register for what we disclosed (or, `transfer`, handed over
    whole), with the receipt we sign for the recipient's side; the row's id and the receipt."""
    register_id = str(uuid.uuid4())
    claims = {
        "register_id": register_id,
        "holder": me,
        "recipient": recipient,
        "episode_ref": episode_id,
        "sections": sections,
        "basis": basis,
        "override": override,
        "disclosed_at": at.isoformat(),
        "practitioner": requested_by,
        "holder_approved_by": holder_approved_by,
    }
    receipt = sign_receipt(key, claims if transfer is None else {**claims, "transfer": transfer})
    await connection.execute(
        insert(register).values(
            id=register_id,
            episode_id=episode_id,
            direction="sent",
            counterpart=recipient,
            requested_by=requested_by,
            approved_by=approved_by,
            second_approved_by=second_approved_by,
            holder_approved_by=holder_approved_by,
            sections=sections,
            basis=basis_text(basis),  # whole: a withdrawal finds its recipients by these ids
            override=override,
            disclosed_at=at,
            receipt=receipt,
        )
    )
    return register_id, receipt


async def disclose(
    connection: AsyncConnection,
    *,
    me: str,
    key: OKPKey,
    store: EpisodeStore,
    audit: AuditLog,
    stored: Stored,
    decision: ConsentDecision,
    asked: Asked,
    actor: str,
    request_id: str | None,
    holder_approved_by: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Record a permitted disclosure (register 'sent' row, receipt, override flag, audit) in the
    caller's transaction and return the answer the requester receives. `holder_approved_by`: our
    lead contact who released it, when it was held for approval."""
    sections = sorted(s.value for s in decision.permitted_sections)
    dumped = stored.episode.model_dump(mode="json", include=set(sections))
    basis = sorted({b for _, b in decision.basis})
    register_id, receipt = await register_sent(
        connection,
        key,
        me=me,
        recipient=asked.requester,
        episode_id=asked.episode_id,
        requested_by=asked.practitioner_id,
        approved_by=asked.approved_by,
        second_approved_by=asked.override.approved_by
        if asked.override and decision.overridden
        else None,
        holder_approved_by=holder_approved_by,
        sections=sections,
        basis=basis,
        override=decision.overridden,
        at=dt.datetime.now(dt.UTC),
    )
    if decision.overridden:
        await _flag_override(connection, store, stored, asked)
    await audit.append(
        connection,
        AuditDraft(
            actor=actor,
            action="federation.disclosure",
            outcome=Outcome.SUCCESS,
            subject=asked.episode_id,
            request_id=request_id,
            details={
                "rule": decision.rule.value,
                "register": register_id,
                "override": decision.overridden,
                "practitioner": audit_code(asked.practitioner_id),
                **details,
            },
        ),
    )
    return {
        "outcome": "disclosed",
        "register_id": register_id,
        "episode_ref": asked.episode_id,
        "sections": sections,
        "refused_sections": sorted(s.value for s in decision.refused_sections),
        "basis": basis,
        "override": decision.overridden,
        "holder_approved_by": holder_approved_by,
        "content": {s: dumped[s] for s in sections},
        "receipt": receipt,
    }


async def _flag_override(
    connection: AsyncConnection, store: EpisodeStore, stored: Stored, asked: Asked
) -> None:
    """DESIGN 3.5: an override is flagged on the episode (kept in its extensions) and the register."""
    assert asked.override is not None  # noqa: S101 - only called for an override
    episode = stored.episode
    extensions = dict(episode.extensions)
    ours: dict[str, Any] = dict(extensions.get("caf-exchange", {}))
    flags = list(ours.get("overrides", []))
    flags.append(
        {
            "override_id": asked.override.override_id,
            "member": asked.requester,
            "approved_by": asked.override.approved_by,
            "expires_at": asked.override.expires_at.isoformat(),
            "used_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )
    ours["overrides"] = flags
    extensions["caf-exchange"] = ours
    changed = episode.model_copy(update={"extensions": extensions})
    await store.replace(connection, stored, changed)
