"""Consent statements: record, withdraw, and ask whether a recipient would be permitted (DESIGN 3.5).

The check answers with the rule and the statement that decided it, so a practitioner or the console
can say why. Withdrawal stops future sharing at once, and is pushed to the members that received data
on the statement's strength (`federation.withdrawals`).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from schemas import AgencyType, Section, london_today

from ..audit import Outcome
from ..consent import ConsentRequest, Recipient, decide
from ..episodes import ConsentInput, WithdrawalInput, record_consent, withdraw_consent
from ..errors import SchemaViolation
from ..federation.withdrawals import push_withdrawal
from ..keys import AUDIT, EPISODES, OUTBOX
from ._auth import needs
from ._common import audited_refusals, draft, episode_id_of, json_body, safe_code

__all__ = ["check_consent", "post_consent", "post_withdrawal"]


@needs("consents:write")
async def post_consent(request: web.Request) -> web.Response:
    episode_id = episode_id_of(request)
    statement = await json_body(request, ConsentInput)
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "consent.record", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id, for_update=True)
        changed, consent_id = record_consent(stored.episode, statement)
        await store.replace(connection, stored, changed)
        await audit.append(
            connection,
            draft(request, "consent.record", str(episode_id), consent_id=safe_code(consent_id)),
        )
    return web.json_response({"episode_id": str(episode_id), "consent_id": consent_id}, status=201)


@needs("consents:write")
async def post_withdrawal(request: web.Request) -> web.Response:
    episode_id = episode_id_of(request)
    consent_id = request.match_info["consent_id"]
    withdrawal = (
        await json_body(request, WithdrawalInput) if await request.read() else WithdrawalInput()
    )
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "consent.withdraw", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id, for_update=True)
        changed, did_change = withdraw_consent(stored.episode, consent_id, withdrawal)
        pushed = 0
        if did_change:
            await store.replace(connection, stored, changed)
            outbox = request.config_dict.get(OUTBOX)  # None: a node outside a federation
            pushed = await push_withdrawal(connection, outbox, str(episode_id), consent_id)
        await audit.append(
            connection,
            draft(
                request,
                "consent.withdraw",
                str(episode_id),
                consent_id=safe_code(consent_id),
                changed=did_change,
                pushed=pushed,
            ),
        )
    statement = next(c for c in changed.consents if c.consent_id == consent_id)
    withdrawn_on = statement.withdrawn_on.isoformat() if statement.withdrawn_on else None
    return web.json_response(
        {"consent_id": consent_id, "withdrawn_on": withdrawn_on, "changed": did_change}
    )


class RecipientInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_type: AgencyType
    name: str | None = Field(None, min_length=1, max_length=200)
    authority: str | None = Field(None, pattern=r"^[ENSW][0-9]{8}$")


class CheckInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    recipient: RecipientInput
    purpose: str = Field(min_length=1, max_length=100)
    sections: list[Section] | None = Field(None, min_length=1)
    at: dt.date | None = None  # default: today in London


@needs("episodes:read")
async def check_consent(request: web.Request) -> web.Response:
    episode_id = episode_id_of(request)
    body = await json_body(request, CheckInput)
    today = london_today()
    try:
        consent_request = ConsentRequest(
            recipient=Recipient(
                body.recipient.agency_type, body.recipient.name, body.recipient.authority
            ),
            purpose=body.purpose,
            sections=frozenset(body.sections) if body.sections else None,
            at=body.at or today,
            decided_on=today,
        )
    except ValueError as exc:
        raise SchemaViolation(str(exc)) from None
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "consent.check", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id)
        decision = decide(stored.episode, consent_request)
        await audit.append(
            connection,
            draft(
                request,
                "consent.check",
                str(episode_id),
                Outcome.SUCCESS if decision.permitted else Outcome.REFUSED,
                reason=decision.code.value if decision.code else None,
                rule=decision.rule.value,
                recipient_type=body.recipient.agency_type.value,
            ),
        )
    return web.json_response(
        {
            "decision": decision.outcome.value,
            "code": decision.code.value if decision.code else None,
            "rule": decision.rule.value,
            "consent_id": decision.consent_id,
            "reason": decision.reason,
            "permitted_sections": sorted(s.value for s in decision.permitted_sections),
            "refused_sections": sorted(s.value for s in decision.refused_sections),
            "statements": [
                {
                    "consent_id": f.consent_id,
                    "valid": f.valid,
                    "applies": f.applies,
                    "excludes": f.excludes,
                    "code": f.code.value if f.code else None,
                    "rule": f.rule.value,
                    "reason": f.reason,
                }
                for f in decision.statements
            ],
        }
    )
