"""The decision: may this episode's information go to this recipient, for this purpose, now? (DESIGN 3.5)

1. Exclusions always win: any statement in force that excludes the recipient refuses with
   `consent_excluded`, whatever another statement permits.
   An episode closed because consent was withdrawn (001's closure outcome; some local forms record
   the withdrawal nowhere else) shares nothing on consent from its closure date: `consent_withdrawn`.
   A withdrawal, or such a closure, dated after the day the question is asked counts from that day
   (`ConsentRequest.decided_on`): a family's "no" cannot be scheduled.
2. Each requested section is permitted when some valid statement covers the recipient, the purpose and
   that section. A disclosure asks for sections and gets the permitted ones: the decision permits the
   covered subset and lists the rest as refused (permit with nothing permitted is a refusal). Each
   permitted section's basis is the most recently given statement covering it, so the sharing register
   (3.8) cites the family's latest word.
3. Otherwise the refusal is explained by the statement that came closest to permitting: one that would
   cover but is withdrawn, expired or given by the wrong person (in that order), then one that is valid
   but not for this purpose, then not for these sections, then not for this recipient, and last one that
   is neither in force nor covering, which answers with its own failure (withdrawn, expired, ...): with
   no usable consent at all, "withdrawn" tells the requester more than "not for your purpose".
4. The public-interest override is decided elsewhere (issue 6); when one in force is passed in, it
   permits what consent does not, with rule `3.5.override`, and the decision is flagged. It is not used
   when consent alone permits everything asked for, so the register shows consent wherever consent exists.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from schemas import ClosureOutcome, Episode, Section

from ._statement import Evaluation, Stage, evaluate, purpose_text, safe_id, sections_text
from ._types import (
    ConsentDecision,
    ConsentRequest,
    DenialCode,
    Outcome,
    Override,
    Rule,
    StatementFinding,
    section_order,
)

__all__ = ["decide"]

_PRECEDENCE: Final = {
    DenialCode.CONSENT_WITHDRAWN: 0,
    DenialCode.CONSENT_EXPIRED: 1,
    DenialCode.PURPOSE_NOT_PERMITTED: 2,
    DenialCode.CONSENT_MISSING: 3,
}


def _closest(evaluations: tuple[Evaluation, ...]) -> Evaluation | None:
    candidates = [e for e in evaluations if e.code is not None]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda e: (e.stage, _PRECEDENCE[e.code] if e.code else 0, e.position),
    )


def _recency(evaluation: Evaluation) -> tuple[int, int]:
    """Latest given first, then episode order: which statement a section is shared under."""
    return -evaluation.statement.given_on.toordinal(), evaluation.position


def _basis(evaluations: tuple[Evaluation, ...]) -> dict[Section, Evaluation]:
    """For every coverable section, the latest-given valid statement that covers it."""
    ranked = sorted((e for e in evaluations if e.stage is Stage.APPLIES), key=_recency)
    basis: dict[Section, Evaluation] = {}
    for evaluation in ranked:
        for section in section_order(evaluation.covered):
            basis.setdefault(section, evaluation)
    return basis


def decide(
    episode: Episode, request: ConsentRequest, override: Override | None = None
) -> ConsentDecision:
    """Decide one disclosure by DESIGN 3.5; pure, deterministic, and never echoing personal data."""
    evaluations = tuple(
        evaluate(statement, position, request, episode.child, episode.parents_carers)
        for position, statement in enumerate(episode.consents)
    )
    requested = request.requested_sections
    excluders = [e for e in evaluations if e.exclusion is not None]
    closure = episode.closure
    # Some local forms record a withdrawal only as the reason the episode closed.
    withdrawn_by_closure = (
        closure is not None
        and closure.outcome is ClosureOutcome.CONSENT_WITHDRAWN
        and request.effective(closure.closed_on) <= request.at
    )
    basis = {} if excluders or withdrawn_by_closure else _basis(evaluations)
    findings = tuple(
        e.finding(frozenset(s for s, chosen in basis.items() if chosen is e)) for e in evaluations
    )
    permitted = frozenset(basis)
    in_force = override if override is not None and override.in_force(request.at) else None

    if permitted == requested:
        return _consent_permit(request, basis, findings)
    denial = _denial(request, evaluations, excluders, findings, withdrawn_by_closure)
    if in_force is not None:
        extra = requested & (requested if in_force.sections is None else in_force.sections)
        if extra - permitted:
            code = denial.code if denial.code and not permitted else DenialCode.CONSENT_MISSING
            return _override_permit(request, basis, findings, in_force, extra, code)
    if permitted:
        return _consent_permit(request, basis, findings)
    if override is not None:
        note = (
            " The override passed in is not in force on that day or covers none of these sections."
        )
        return replace(denial, reason=denial.reason + note)
    return denial


def _consent_permit(
    request: ConsentRequest,
    basis: dict[Section, Evaluation],
    findings: tuple[StatementFinding, ...],
) -> ConsentDecision:
    permitted = frozenset(basis)
    refused = request.requested_sections - permitted
    top = min(basis.values(), key=_recency)
    contributing = [f.reason for f in findings if f.applies]
    reason = (
        f"Permitted to this recipient for {purpose_text(request.purpose)}: "
        + "; ".join(contributing)
        + "."
    )
    if refused:
        reason += f" Refused: {sections_text(refused)} (no valid statement covers them)."
    return ConsentDecision(
        outcome=Outcome.PERMIT,
        code=None,
        rule=top.rule,
        consent_id=top.statement.consent_id,
        reason=reason,
        permitted_sections=permitted,
        refused_sections=refused,
        basis=tuple((s, basis[s].statement.consent_id) for s in section_order(permitted)),
        statements=findings,
    )


def _denial(
    request: ConsentRequest,
    evaluations: tuple[Evaluation, ...],
    excluders: list[Evaluation],
    findings: tuple[StatementFinding, ...],
    withdrawn_by_closure: bool = False,
) -> ConsentDecision:
    code: DenialCode
    if excluders:
        first = excluders[0]
        code, rule, consent_id = (
            DenialCode.CONSENT_EXCLUDED,
            Rule.EXCLUSION,
            first.statement.consent_id,
        )
        reason = f"Refused: {findings[first.position].reason}; exclusions always win."
    elif withdrawn_by_closure:
        code, rule, consent_id = DenialCode.CONSENT_WITHDRAWN, Rule.CLOSED_CONSENT_WITHDRAWN, None
        reason = (
            f"Refused by rule {rule.value}: the episode was closed because consent was withdrawn."
        )
    elif (closest := _closest(evaluations)) is None:
        code, rule, consent_id = DenialCode.CONSENT_MISSING, Rule.NO_STATEMENT, None
        reason = "Refused: the episode records no consent statement."
    else:
        code = closest.code or DenialCode.CONSENT_MISSING
        rule, consent_id = closest.rule, closest.statement.consent_id
        reason = f"Refused: {findings[closest.position].reason}."
        if len(evaluations) > 1:
            reason += " No other statement comes closer."
    return ConsentDecision(
        outcome=Outcome.DENY,
        code=code,
        rule=rule,
        consent_id=consent_id,
        reason=reason,
        permitted_sections=frozenset(),
        refused_sections=request.requested_sections,
        basis=(),
        statements=findings,
    )


def _override_permit(
    request: ConsentRequest,
    basis: dict[Section, Evaluation],
    findings: tuple[StatementFinding, ...],
    override: Override,
    overridable: frozenset[Section],
    consent_code: DenialCode,
) -> ConsentDecision:
    permitted = frozenset(basis) | overridable
    by_consent = frozenset(basis)
    by_override = permitted - by_consent
    name = safe_id(override.override_id) or "(id not shown)"
    reason = (
        f"Permitted under public-interest override {name} (in force until "
        f"{override.valid_until.isoformat()}): {sections_text(by_override)}"
    )
    if by_consent:
        reason += f"; under consent: {sections_text(by_consent)}"
    reason += f". Consent alone answers {consent_code.value}."
    top = min(basis.values(), key=_recency, default=None)
    return ConsentDecision(
        outcome=Outcome.PERMIT,
        code=None,
        rule=Rule.OVERRIDE,
        consent_id=None if top is None else top.statement.consent_id,
        reason=reason,
        permitted_sections=permitted,
        refused_sections=request.requested_sections - permitted,
        basis=tuple(
            (s, basis[s].statement.consent_id if s in basis else override.override_id)
            for s in section_order(permitted)
        ),
        statements=findings,
        override_id=override.override_id,
        overridden_code=consent_code,
    )
