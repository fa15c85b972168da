"""The consent engine (DESIGN 3.5): one table row per rule, and properties that must hold for all input."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.consent import (
    ALL_SECTIONS,
    ConsentDecision,
    ConsentRequest,
    DenialCode,
    Outcome,
    Override,
    Recipient,
    Rule,
    decide,
    normalise_purpose,
)
from schemas import AgencyType, Episode, Section
from tests.strategies import episodes

VALID = Path(__file__).resolve().parent.parent / "fixtures" / "national" / "valid-episode.json"
BASE: dict[str, Any] = json.loads(VALID.read_text(encoding="utf-8"))
CHILD_NAME = "Maya Testchild"
PARENT = "Alex Testparent"
CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"
MISSING, EXCLUDED = DenialCode.CONSENT_MISSING, DenialCode.CONSENT_EXCLUDED
WITHDRAWN, EXPIRED = DenialCode.CONSENT_WITHDRAWN, DenialCode.CONSENT_EXPIRED
PURPOSE = DenialCode.PURPOSE_NOT_PERMITTED
PERMIT, DENY = Outcome.PERMIT, Outcome.DENY
S = Section


def stmt(
    consent_id: str = "C1",
    *,
    by: tuple[str, ...] = ("parent_carer",),
    given_on: str = "2020-01-01",
    competent: bool | None = None,
    purposes: tuple[str, ...] = (),
    share_with: tuple[dict[str, str], ...] = (),
    excluded: tuple[dict[str, str], ...] = (),
    sections: tuple[str, ...] | None = None,
    valid_until: str | None = None,
    withdrawn_on: str | None = None,
) -> dict[str, Any]:
    names = {"parent_carer": PARENT, "young_person": CHILD_NAME}
    value: dict[str, Any] = {
        "consent_id": consent_id,
        "given_by": [{"role": role, "name": names[role]} for role in by],
        "given_on": given_on,
        "method": "written",
        "storage_agreed": True,
        "purposes": list(purposes),
        "share_with": list(share_with),
        "excluded": list(excluded),
    }
    optional = {
        "young_person_competent": competent,
        "sections": None if sections is None else list(sections),
        "valid_until": valid_until,
        "withdrawn_on": withdrawn_on,
    }
    value.update({key: v for key, v in optional.items() if v is not None})
    return value


def episode(
    *consents: dict[str, Any],
    dob: str | None = "2015-06-01",
    edd: str | None = None,
    carers: list[dict[str, Any]] | None = None,
    closed: tuple[str, str] | None = None,  # (closed_on, outcome)
) -> Episode:
    document = copy.deepcopy(BASE)
    if closed is not None:
        document["state"] = "closed"
        document["closure"] = {"closed_on": closed[0], "outcome": closed[1]}
    document["child"].pop("date_of_birth")
    if dob is not None:
        document["child"]["date_of_birth"] = dob
    if edd is not None:
        document["child"]["expected_date_of_delivery"] = edd
    if carers is not None:
        document["parents_carers"] = carers
    document["consents"] = list(consents)
    return Episode.model_validate(document)


def ask(
    agency: AgencyType = AgencyType.HEALTH,
    *,
    name: str | None = None,
    authority: str | None = HACKNEY,
    purpose: str = "early_help",
    sections: frozenset[Section] | None = None,
    at: str = "2024-01-01",
) -> ConsentRequest:
    recipient = Recipient(agency, name, authority)
    return ConsentRequest(recipient, purpose, sections, dt.date.fromisoformat(at))


HEALTH = {"agency_type": "health"}
POLICE = {"agency_type": "police"}
YP, BOTH = ("young_person",), ("parent_carer", "young_person")
# (id, episode, request, outcome, code, rule, deciding consent_id)
Row = tuple[str, Episode, ConsentRequest, Outcome, DenialCode | None, Rule, str | None]
# fmt: off
ROWS: list[Row] = [
    # Who consents: under 12 (child born 2015-06-01, asked about on 2024-01-01 unless stated).
    ("under12-parent", episode(stmt()), ask(), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("under12-yp-only", episode(stmt(by=YP)), ask(), DENY, MISSING, Rule.AGE_UNDER_12, "C1"),
    ("under12-competent-yp-only", episode(stmt(by=YP, competent=True)), ask(), DENY, MISSING,
     Rule.AGE_UNDER_12, "C1"),
    ("under12-joint", episode(stmt(by=BOTH)), ask(), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    # 12-15 (born 2010-06-01, 12 on 2022-06-01).
    ("12-15-competent-yp", episode(stmt(by=YP, given_on="2023-01-01", competent=True),
     dob="2010-06-01"), ask(), PERMIT, None, Rule.AGE_12_15_COMPETENT, "C1"),
    ("12-15-not-competent-yp", episode(stmt(by=YP, given_on="2023-01-01", competent=False),
     dob="2010-06-01"), ask(), DENY, MISSING, Rule.AGE_12_15_PARENT, "C1"),
    ("12-15-competence-not-judged-yp", episode(stmt(by=YP, given_on="2023-01-01"),
     dob="2010-06-01"), ask(), DENY, MISSING, Rule.AGE_12_15_PARENT, "C1"),
    ("12-15-not-competent-parent", episode(stmt(given_on="2023-01-01", competent=False),
     dob="2010-06-01"), ask(), PERMIT, None, Rule.AGE_12_15_PARENT, "C1"),
    ("12-15-competent-but-parent-only", episode(stmt(given_on="2023-01-01", competent=True),
     dob="2010-06-01"), ask(), DENY, MISSING, Rule.AGE_12_15_COMPETENT, "C1"),
    ("12th-birthday-eve-yp", episode(stmt(by=YP, given_on="2022-05-31", competent=True),
     dob="2010-06-01"), ask(), DENY, MISSING, Rule.AGE_UNDER_12, "C1"),
    ("12th-birthday-yp", episode(stmt(by=YP, given_on="2022-06-01", competent=True),
     dob="2010-06-01"), ask(), PERMIT, None, Rule.AGE_12_15_COMPETENT, "C1"),
    # 16+ (born 2008-01-01, 16 on 2024-01-01).
    ("16-own", episode(stmt(by=YP, given_on="2024-01-01"), dob="2008-01-01"),
     ask(at="2024-06-01"), PERMIT, None, Rule.AGE_16_PLUS, "C1"),
    ("16-parent-only", episode(stmt(given_on="2024-01-01"), dob="2008-01-01"),
     ask(at="2024-06-01"), DENY, MISSING, Rule.AGE_16_PLUS, "C1"),
    ("16th-birthday-eve-parent", episode(stmt(given_on="2023-12-31"), dob="2008-01-01"),
     ask(at="2023-12-31"), PERMIT, None, Rule.AGE_12_15_PARENT, "C1"),
    # Age is judged when given: a parent's word at 11 holds at 15, and lapses at 16.
    ("parent-at-11-still-valid-at-15", episode(stmt(given_on="2021-01-01"), dob="2009-06-01"),
     ask(at="2025-05-31"), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("parent-at-11-lapses-at-16", episode(stmt(given_on="2021-01-01"), dob="2009-06-01"),
     ask(at="2025-06-01"), DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    ("competent-yp-at-13-valid-at-17", episode(stmt(by=YP, given_on="2021-01-01", competent=True),
     dob="2007-06-01"), ask(at="2024-07-01"), PERMIT, None, Rule.AGE_12_15_COMPETENT, "C1"),
    # Signing beside a parent is the young person's own consent only at 16+, or 12-15 competent.
    ("joint-at-4-lapses-at-16", episode(stmt(by=BOTH, given_on="2019-06-01")),
     ask(at="2031-06-01"), DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    ("joint-at-4-valid-at-15", episode(stmt(by=BOTH, given_on="2019-06-01")),
     ask(at="2031-05-31"), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("joint-at-13-not-competent-lapses-at-16", episode(
        stmt(by=BOTH, given_on="2021-03-01", competent=False), dob="2008-01-01"),
     ask(at="2024-06-01"), DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    ("joint-at-13-competent-valid-at-17", episode(
        stmt(by=BOTH, given_on="2021-03-01", competent=True), dob="2008-01-01"),
     ask(at="2025-02-01"), PERMIT, None, Rule.AGE_12_15_COMPETENT, "C1"),
    ("joint-at-11-competent-lapses-at-16", episode(
        stmt(by=BOTH, given_on="2019-12-31", competent=True), dob="2008-01-01"),
     ask(at="2024-01-01"), DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    ("joint-at-16-valid", episode(stmt(by=BOTH, given_on="2024-01-01"), dob="2008-01-01"),
     ask(at="2030-01-01"), PERMIT, None, Rule.AGE_16_PLUS, "C1"),
    ("own-consent-at-16-after-parent-lapsed", episode(
        stmt(given_on="2021-01-01"), stmt("C2", by=YP, given_on="2025-07-01"), dob="2009-06-01"),
     ask(at="2025-08-01"), PERMIT, None, Rule.AGE_16_PLUS, "C2"),
    # Unknown date of birth.
    ("unborn-parent", episode(stmt(given_on="2025-03-01"), dob=None, edd="2025-09-01"),
     ask(at="2025-04-01"), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("unborn-yp-only", episode(stmt(by=YP, given_on="2025-03-01"), dob=None, edd="2025-09-01"),
     ask(at="2025-04-01"), DENY, MISSING, Rule.AGE_UNDER_12, "C1"),
    ("edd-near-12-parent", episode(stmt(given_on="2024-01-01"), dob=None, edd="2012-01-01"),
     ask(at="2024-02-01"), PERMIT, None, Rule.AGE_UNKNOWN, "C1"),
    ("edd-near-12-competent-yp", episode(stmt(by=YP, given_on="2024-01-01", competent=True),
     dob=None, edd="2012-01-01"), ask(at="2024-02-01"), DENY, MISSING, Rule.AGE_UNKNOWN, "C1"),
    ("no-dates-parent-only", episode(stmt(), dob=None), ask(), DENY, MISSING, Rule.AGE_UNKNOWN,
     "C1"),
    ("no-dates-yp-only", episode(stmt(by=YP, competent=True), dob=None), ask(), DENY, MISSING,
     Rule.AGE_UNKNOWN, "C1"),
    # With no date at all the child may have turned 16 since, and have been under 16 (under 12 if
    # judged competent) when signing: a joint statement holds on the day, or for 4 years if competent.
    ("no-dates-joint-that-day", episode(stmt(by=BOTH, given_on="2024-01-01"), dob=None), ask(),
     PERMIT, None, Rule.AGE_UNKNOWN, "C1"),
    ("no-dates-joint-later", episode(stmt(by=BOTH, given_on="2023-12-31"), dob=None), ask(),
     DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    ("no-dates-joint-competent-4-years", episode(stmt(by=BOTH, given_on="2020-01-01",
     competent=True), dob=None), ask(), PERMIT, None, Rule.AGE_UNKNOWN, "C1"),
    ("no-dates-joint-competent-past-4-years", episode(stmt(by=BOTH, given_on="2019-12-31",
     competent=True), dob=None), ask(), DENY, EXPIRED, Rule.AGE_16_PLUS_LAPSED, "C1"),
    # Parental responsibility as the episode records it.
    ("giver-without-pr", episode(stmt(), carers=[
        {"name": PARENT, "relationship": "Stepfather", "parental_responsibility": False}]),
     ask(), DENY, MISSING, Rule.PARENTAL_RESPONSIBILITY, "C1"),
    ("giver-without-pr-spelt-differently", episode(stmt(), carers=[
        {"name": "  alex   TESTPARENT ", "relationship": "Stepfather",
         "parental_responsibility": False}]),
     ask(), DENY, MISSING, Rule.PARENTAL_RESPONSIBILITY, "C1"),
    ("giver-not-listed-taken-at-word", episode(stmt(), carers=[]), ask(), PERMIT, None,
     Rule.AGE_UNDER_12, "C1"),
    # Exclusions always win, from any statement in force, over any permission.
    ("excluded-by-type", episode(stmt(share_with=(HEALTH,)), stmt("C2", excluded=(HEALTH,))),
     ask(), DENY, EXCLUDED, Rule.EXCLUSION, "C2"),
    ("excluded-by-name", episode(stmt(), stmt("C2", excluded=({"name": "St Mary's School"},))),
     ask(AgencyType.EDUCATION, name="st mary's  SCHOOL"), DENY, EXCLUDED, Rule.EXCLUSION, "C2"),
    ("excluded-by-name-unknown-recipient-name", episode(stmt(excluded=({"name": "St Mary's"},))),
     ask(AgencyType.EDUCATION), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("excluded-name-within-the-recipients", episode(stmt(excluded=({"name": "Whittington Hospital"},))),
     ask(name="Whittington Hospital NHS Trust"), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("excluded-name-around-the-recipients", episode(stmt(excluded=({"name": "St Mary's School, N1"},))),
     ask(AgencyType.EDUCATION, name="ST. MARY'S"), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("excluded-name-without-apostrophe", episode(stmt(excluded=({"name": "St Mary's School"},))),
     ask(AgencyType.EDUCATION, name="St Marys School"), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("share-with-name-without-letters", episode(stmt(share_with=({"name": "1-2"},))),
     ask(name="3"), DENY, MISSING, Rule.RECIPIENT, "C1"),
    ("share-with-name-not-within", episode(stmt(share_with=({"name": "Whittington"},))),
     ask(name="Whittington Hospital NHS Trust"), DENY, MISSING, Rule.RECIPIENT, "C1"),
    ("other-name-not-excluded", episode(stmt(excluded=({"name": "St Mary's"},))),
     ask(AgencyType.EDUCATION, name="Grafton Primary"), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("excluded-by-authority", episode(stmt(), stmt("C2", excluded=({"authority": HACKNEY},))),
     ask(), DENY, EXCLUDED, Rule.EXCLUSION, "C2"),
    ("excluded-by-authority-unknown", episode(stmt(excluded=({"authority": HACKNEY},))),
     ask(authority=None), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("exclusion-needs-every-field", episode(stmt(excluded=({**POLICE, "authority": CAMDEN},))),
     ask(AgencyType.POLICE), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("exclusion-by-wrong-giver-still-wins", episode(stmt(), stmt("C2", by=YP, excluded=(HEALTH,))),
     ask(), DENY, EXCLUDED, Rule.EXCLUSION, "C2"),
    ("exclusion-in-withdrawn-statement-lapses", episode(
        stmt(excluded=(HEALTH,), withdrawn_on="2022-01-01"), stmt("C2", given_on="2022-01-01")),
     ask(), PERMIT, None, Rule.AGE_UNDER_12, "C2"),
    ("exclusion-not-yet-given", episode(stmt(), stmt("C2", given_on="2025-01-01",
     excluded=(HEALTH,))), ask(), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    # Recipients.
    ("not-among-share-with", episode(stmt(share_with=({"agency_type": "education"},))), ask(),
     DENY, MISSING, Rule.RECIPIENT, "C1"),
    ("share-with-type-and-authority", episode(stmt(share_with=({**HEALTH, "authority": CAMDEN},))),
     ask(), DENY, MISSING, Rule.RECIPIENT, "C1"),
    ("share-with-name-recipient-unnamed", episode(stmt(share_with=({"name": "Whittington"},))),
     ask(), DENY, MISSING, Rule.RECIPIENT, "C1"),
    ("share-with-name", episode(stmt(share_with=({"name": "Whittington"},))),
     ask(name="WHITTINGTON"), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    # An episode closed because consent was withdrawn: withdrawn from that day, whatever the
    # statements say (a form may record the withdrawal nowhere else). Exclusions still win.
    ("closed-consent-withdrawn", episode(stmt(), closed=("2023-06-01", "consent_withdrawn")),
     ask(), DENY, WITHDRAWN, Rule.CLOSED_CONSENT_WITHDRAWN, None),
    ("closed-consent-withdrawn-that-day", episode(stmt(), closed=("2024-01-01",
     "consent_withdrawn")), ask(), DENY, WITHDRAWN, Rule.CLOSED_CONSENT_WITHDRAWN, None),
    ("closed-consent-withdrawn-excluded", episode(stmt(excluded=(HEALTH,)),
     closed=("2023-06-01", "consent_withdrawn")), ask(), DENY, EXCLUDED, Rule.EXCLUSION, "C1"),
    ("closed-resolved-still-shared", episode(stmt(), closed=("2023-06-01", "resolved_family")),
     ask(), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    # Time: withdrawn, expired, not yet given.
    ("withdrawn", episode(stmt(withdrawn_on="2023-06-01")), ask(), DENY, WITHDRAWN,
     Rule.WITHDRAWN, "C1"),
    ("withdrawn-that-day", episode(stmt(withdrawn_on="2024-01-01")), ask(), DENY, WITHDRAWN,
     Rule.WITHDRAWN, "C1"),
    ("withdrawn-next-day", episode(stmt(withdrawn_on="2024-01-02")), ask(), PERMIT, None,
     Rule.AGE_UNDER_12, "C1"),
    ("expired", episode(stmt(valid_until="2023-12-31")), ask(), DENY, EXPIRED, Rule.EXPIRED,
     "C1"),
    ("valid-until-that-day", episode(stmt(valid_until="2024-01-01")), ask(), PERMIT, None,
     Rule.AGE_UNDER_12, "C1"),
    ("future-dated", episode(stmt(given_on="2024-01-02")), ask(), DENY, MISSING,
     Rule.NOT_YET_GIVEN, "C1"),
    # Purposes.
    ("purpose-not-listed", episode(stmt(purposes=("early_help",))), ask(purpose="youth_justice"),
     DENY, PURPOSE, Rule.PURPOSE, "C1"),
    ("purpose-spelt-differently", episode(stmt(purposes=("early_help",))),
     ask(purpose=" Early-Help "), PERMIT, None, Rule.AGE_UNDER_12, "C1"),
    ("no-purposes-no-limit", episode(stmt()), ask(purpose="anything"), PERMIT, None,
     Rule.AGE_UNDER_12, "C1"),
    # Sections.
    ("no-requested-section", episode(stmt(sections=("child",))),
     ask(sections=frozenset({S.REVIEWS})), DENY, MISSING, Rule.SECTIONS, "C1"),
    ("empty-sections-permit-none", episode(stmt(sections=())), ask(), DENY, MISSING,
     Rule.SECTIONS, "C1"),
    # The most informative refusal when several statements fail.
    ("only-cover-withdrawn", episode(stmt(purposes=("other",)), stmt("C2", withdrawn_on="2023-01-01")),
     ask(), DENY, WITHDRAWN, Rule.WITHDRAWN, "C2"),
    ("withdrawn-beats-expired", episode(stmt(valid_until="2022-01-01"),
     stmt("C2", withdrawn_on="2023-01-01")), ask(), DENY, WITHDRAWN, Rule.WITHDRAWN, "C2"),
    ("expired-beats-wrong-purpose", episode(stmt(purposes=("other",)),
     stmt("C2", valid_until="2022-01-01")), ask(), DENY, EXPIRED, Rule.EXPIRED, "C2"),
    ("uncovering-withdrawn-says-purpose", episode(stmt(purposes=("other",)),
     stmt("C2", share_with=(POLICE,), withdrawn_on="2023-01-01")), ask(), DENY, PURPOSE,
     Rule.PURPOSE, "C1"),
    ("only-uncovering-withdrawn", episode(stmt(share_with=(POLICE,), withdrawn_on="2023-01-01")),
     ask(), DENY, WITHDRAWN, Rule.WITHDRAWN, "C1"),
    ("no-statement", episode(), ask(), DENY, MISSING, Rule.NO_STATEMENT, None),
    ("latest-statement-is-basis", episode(stmt(), stmt("C2", given_on="2022-01-01"),
     stmt("C3", given_on="2021-01-01")), ask(), PERMIT, None, Rule.AGE_UNDER_12, "C2"),
]
# fmt: on


@pytest.mark.parametrize(
    ("ep", "request_", "outcome", "code", "rule", "consent_id"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_rule_table(
    ep: Episode,
    request_: ConsentRequest,
    outcome: Outcome,
    code: DenialCode | None,
    rule: Rule,
    consent_id: str | None,
) -> None:
    decision = decide(ep, request_)
    assert (decision.outcome, decision.code, decision.rule, decision.consent_id) == (
        outcome,
        code,
        rule,
        consent_id,
    ), decision.reason
    assert rule.value in decision.reason or rule is Rule.NO_STATEMENT
    assert len(decision.statements) == len(ep.consents)
    _check_invariants(ep, request_, decision)


def test_every_rule_is_exercised_by_the_table() -> None:
    decided = {row[5] for row in ROWS} | {Rule.OVERRIDE}
    assert decided == set(Rule)


def test_partial_sections_permit_the_covered_subset_and_list_the_rest() -> None:
    ep = episode(stmt(sections=("child", "assessments")))
    wanted = frozenset({S.CHILD, S.ASSESSMENTS, S.REVIEWS})
    decision = decide(ep, ask(sections=wanted))
    assert decision.outcome is PERMIT
    assert decision.permitted_sections == {S.CHILD, S.ASSESSMENTS}
    assert decision.refused_sections == {S.REVIEWS}
    assert decision.basis == ((S.CHILD, "C1"), (S.ASSESSMENTS, "C1"))
    assert "reviews" in decision.reason


def test_all_sections_asked_gets_what_consent_permits() -> None:
    decision = decide(episode(stmt(sections=("closure",))), ask(sections=None))
    assert decision.permitted_sections == {S.CLOSURE}
    assert decision.refused_sections == ALL_SECTIONS - {S.CLOSURE}


def test_sections_from_several_statements_add_up_each_with_its_basis() -> None:
    ep = episode(
        stmt(sections=("child",)),
        stmt("C2", sections=("assessments", "child"), given_on="2021-01-01"),
        stmt("C3", sections=("reviews",), purposes=("other",)),
    )
    decision = decide(ep, ask(sections=frozenset({S.CHILD, S.ASSESSMENTS, S.REVIEWS})))
    assert decision.permitted_sections == {S.CHILD, S.ASSESSMENTS}
    assert decision.basis_for(S.CHILD) == "C2"  # the latest given covers it
    assert decision.basis_for(S.ASSESSMENTS) == "C2"
    assert decision.basis_for(S.REVIEWS) is None
    c1, c2, c3 = decision.statements
    assert (c1.applies, c1.code, c1.sections) == (False, None, frozenset())
    assert (c2.applies, c2.sections) == (True, frozenset({S.CHILD, S.ASSESSMENTS}))
    assert (c3.applies, c3.code) == (False, PURPOSE)


def test_findings_explain_every_statement_for_the_console() -> None:
    ep = episode(
        stmt(share_with=(HEALTH,)),
        stmt("C2", withdrawn_on="2023-01-01"),
        stmt("C3", excluded=(HEALTH,)),
        stmt("C4", by=YP),
    )
    decision = decide(ep, ask())
    assert [(f.consent_id, f.code, f.rule) for f in decision.statements] == [
        ("C1", None, Rule.AGE_UNDER_12),
        ("C2", WITHDRAWN, Rule.WITHDRAWN),
        ("C3", EXCLUDED, Rule.EXCLUSION),
        ("C4", MISSING, Rule.AGE_UNDER_12),
    ]
    assert [(f.in_force, f.valid, f.excludes) for f in decision.statements] == [
        (True, True, False),
        (False, False, False),
        (True, True, True),
        (True, False, False),
    ]
    assert (decision.code, decision.consent_id) == (EXCLUDED, "C3")
    assert "agency type 'health'" in decision.reason


def test_reason_names_statement_by_position_when_its_id_is_free_text() -> None:
    decision = decide(episode(stmt("consent from Alex Testparent")), ask())
    assert decision.consent_id == "consent from Alex Testparent"
    assert "statement #1 (parent/carer, written)" in decision.reason
    assert PARENT not in decision.reason


def test_purpose_is_echoed_only_as_a_code() -> None:
    free_text = "worried about Maya at school"
    decision = decide(episode(stmt(purposes=("early_help",))), ask(purpose=free_text))
    assert decision.code is PURPOSE
    assert "Maya" not in decision.reason and "the requested purpose" in decision.reason
    assert "purpose 'early_help'" in decide(episode(stmt()), ask()).reason


def test_normalise_purpose() -> None:
    assert normalise_purpose("  Early - help\t") == normalise_purpose("EARLY_HELP") == "early_help"


OVERRIDE = Override("OV-7", dt.date(2023, 12, 30), dt.date(2024, 1, 2))


def test_override_in_force_permits_over_an_exclusion_and_is_flagged() -> None:
    decision = decide(episode(stmt(excluded=(HEALTH,))), ask(), OVERRIDE)
    assert (decision.outcome, decision.rule, decision.code) == (PERMIT, Rule.OVERRIDE, None)
    assert decision.overridden and decision.override_id == "OV-7"
    assert decision.overridden_code is EXCLUDED
    assert decision.permitted_sections == ALL_SECTIONS
    assert {basis for _, basis in decision.basis} == {"OV-7"}
    assert decision.statements[0].excludes


def test_override_adds_to_partial_consent_with_a_basis_per_section() -> None:
    ep = episode(stmt(sections=("child",)))
    override = dataclasses.replace(OVERRIDE, sections=frozenset({S.ASSESSMENTS}))
    decision = decide(ep, ask(sections=frozenset({S.CHILD, S.ASSESSMENTS, S.REVIEWS})), override)
    assert decision.rule is Rule.OVERRIDE
    assert decision.basis == ((S.CHILD, "C1"), (S.ASSESSMENTS, "OV-7"))
    assert decision.refused_sections == {S.REVIEWS}
    assert (decision.consent_id, decision.overridden_code) == ("C1", MISSING)


@pytest.mark.parametrize(
    "giver", ["Zoe\u0308 Nowak", "\uff3a\uff2f\uff25\u0308  nowak", "Zoe Nowak", "ZOE NOWAK"]
)
def test_a_giver_recorded_without_parental_responsibility_is_known_however_encoded(
    giver: str,
) -> None:
    """An accent decomposed, composed or left out, full-width letters: the same recorded person,
    as the matcher compares names (an unlisted giver would be taken at their word)."""
    statement = stmt()
    statement["given_by"] = [{"role": "parent_carer", "name": giver}]
    carer = {
        "name": "Zo\u00eb Nowak",
        "relationship": "Stepmother",
        "parental_responsibility": False,
    }
    decision = decide(episode(statement, carers=[carer]), ask())
    assert (decision.outcome, decision.rule) == (DENY, Rule.PARENTAL_RESPONSIBILITY)


def test_override_in_force_permits_an_episode_closed_on_withdrawal() -> None:
    ep = episode(stmt(), closed=("2023-06-01", "consent_withdrawn"))
    decision = decide(ep, ask(), OVERRIDE)
    assert (decision.outcome, decision.rule, decision.overridden_code) == (
        PERMIT,
        Rule.OVERRIDE,
        WITHDRAWN,
    )


def test_override_unused_when_consent_permits_everything() -> None:
    decision = decide(episode(stmt()), ask(), OVERRIDE)
    assert (decision.rule, decision.override_id) == (Rule.AGE_UNDER_12, None)
    assert not decision.overridden


@pytest.mark.parametrize("at", ["2023-12-29", "2024-01-03"])
def test_override_outside_its_time_limit_changes_nothing(at: str) -> None:
    decision = decide(episode(stmt(withdrawn_on="2023-01-01")), ask(at=at), OVERRIDE)
    assert (decision.outcome, decision.code, decision.override_id) == (DENY, WITHDRAWN, None)
    assert "not in force" in decision.reason


def test_request_and_override_reject_malformed_input_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="sections is empty"):
        ask(sections=frozenset())
    with pytest.raises(ValueError, match="purpose is empty"):
        ask(purpose=" _ ")
    with pytest.raises(ValueError, match=r"^recipient\.authority is not a GSS code$"):
        Recipient(AgencyType.HEALTH, None, "Camden")
    with pytest.raises(ValueError, match="valid_until is before"):
        Override("O", dt.date(2024, 1, 2), dt.date(2024, 1, 1))


# ---------------------------------------------------------------------------------------------------
# Properties.

AUTHORITIES = [CAMDEN, HACKNEY, ISLINGTON]
AGENCY_NAMES = ["Whittington", "St Mary's", "Grafton Primary"]
PURPOSES = ["early_help", "health_support", "youth_justice"]
TODAY = dt.date.today()
# Names no reason template could contain by accident: the engine must never echo them.
NAMES = st.from_regex(r"\A[A-Z][a-z]{3,8}qx [A-Z][a-z]{3,8}zv\Z")
dates = st.dates(dt.date(2000, 1, 1), min(TODAY, dt.date(2026, 1, 1)))


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


agency_refs = st.fixed_dictionaries(
    {},
    optional={
        "agency_type": st.sampled_from([a.value for a in AgencyType][:4]),
        "name": st.sampled_from(AGENCY_NAMES),
        "authority": st.sampled_from(AUTHORITIES),
    },
).filter(bool)


@st.composite
def statements(draw: st.DrawFn, consent_id: str) -> dict[str, Any]:
    given_on = draw(dates)
    later = st.integers(0, 4000).map(lambda days: (given_on + dt.timedelta(days)).isoformat())
    roles = draw(st.sampled_from([("parent_carer",), ("young_person",), BOTH]))
    value = stmt(
        consent_id,
        by=roles,
        given_on=given_on.isoformat(),
        competent=draw(_opt(st.booleans())),
        purposes=tuple(draw(st.lists(st.sampled_from(PURPOSES), max_size=2))),
        share_with=tuple(draw(st.lists(agency_refs, max_size=2))),
        excluded=tuple(draw(st.lists(agency_refs, max_size=1))),
        sections=draw(_opt(st.lists(st.sampled_from([s.value for s in S]), unique=True))),
        valid_until=draw(_opt(later)),
        withdrawn_on=draw(_opt(later)),
    )
    for giver in value["given_by"]:
        giver["name"] = draw(NAMES)
    return value


@st.composite
def consent_episodes(draw: st.DrawFn) -> Episode:
    count = draw(st.integers(0, 4))
    document = copy.deepcopy(BASE)
    child = document["child"]
    child.pop("date_of_birth")
    child["given_names"], child["family_name"] = draw(NAMES).split()
    child["known_as"] = draw(NAMES)
    born = draw(st.sampled_from(["dob", "dob", "edd", "none"]))
    if born == "dob":
        child["date_of_birth"] = draw(dates).isoformat()
    elif born == "edd":
        child["expected_date_of_delivery"] = draw(st.dates(dt.date(2000, 1, 1))).isoformat()
    consents = [draw(statements(f"C{n}")) for n in range(1, count + 1)]
    givers = [g["name"] for c in consents for g in c["given_by"]]
    carer = st.fixed_dictionaries(
        {
            "name": st.sampled_from(givers) | NAMES if givers else NAMES,
            "relationship": st.just("Parent"),
            "parental_responsibility": st.booleans(),
        }
    )
    document["parents_carers"] = draw(st.lists(carer, max_size=2))
    document["consents"] = consents
    return Episode.model_validate(document)


requests = st.builds(
    ConsentRequest,
    recipient=st.builds(
        Recipient,
        agency_type=st.sampled_from(list(AgencyType)[:4]),
        name=_opt(st.sampled_from(AGENCY_NAMES)),
        authority=_opt(st.sampled_from(AUTHORITIES)),
    ),
    purpose=st.sampled_from(PURPOSES),
    sections=_opt(st.frozensets(st.sampled_from(list(S)), min_size=1)),
    at=st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)),
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_invariants(ep: Episode, request: ConsentRequest, decision: ConsentDecision) -> None:
    permitted, refused = decision.permitted_sections, decision.refused_sections
    assert not permitted & refused
    assert permitted | refused == request.requested_sections
    assert [s for s, _ in decision.basis] == [s for s in S if s in permitted]
    assert [f.consent_id for f in decision.statements] == [c.consent_id for c in ep.consents]
    if decision.outcome is PERMIT:
        assert decision.code is None and permitted
        used = {f.consent_id for f in decision.statements if f.applies}
        for _, basis in decision.basis:
            assert basis in used or basis == decision.override_id
        assert decision.overridden or not any(f.excludes for f in decision.statements)
    else:
        assert decision.code is not None and not permitted and not decision.basis
        assert not decision.overridden
        if any(f.excludes for f in decision.statements):
            assert decision.code is EXCLUDED


def _document(ep: Episode) -> dict[str, Any]:
    document: dict[str, Any] = ep.model_dump(mode="json", by_alias=True, exclude_none=True)
    return document


@PROPERTY
@given(episodes() | consent_episodes(), requests)
def test_decisions_are_deterministic_total_and_consistent(
    ep: Episode, request: ConsentRequest
) -> None:
    first = decide(ep, request)
    assert decide(ep, request) == first
    _check_invariants(ep, request, first)


@PROPERTY
@given(consent_episodes(), requests, st.randoms(use_true_random=False))
def test_statement_order_does_not_change_the_answer(
    ep: Episode, request: ConsentRequest, random: Random
) -> None:
    shuffled = _document(ep)
    random.shuffle(shuffled["consents"])
    before, after = decide(ep, request), decide(Episode.model_validate(shuffled), request)
    assert (before.outcome, before.code, before.permitted_sections) == (
        after.outcome,
        after.code,
        after.permitted_sections,
    )


@PROPERTY
@given(consent_episodes(), requests, st.data())
def test_an_exclusion_matching_the_recipient_always_denies(
    ep: Episode, request: ConsentRequest, data: st.DataObject
) -> None:
    recipient = request.recipient
    fields = {"agency_type": recipient.agency_type.value}
    fields |= {"name": recipient.name} if recipient.name else {}
    fields |= {"authority": recipient.authority} if recipient.authority else {}
    keys = data.draw(st.sets(st.sampled_from(sorted(fields)), min_size=1))
    exclusion = {key: fields[key] for key in keys}
    document = _document(ep)
    in_force = [
        c
        for c in document["consents"]
        if dt.date.fromisoformat(c["given_on"]) <= request.at
        and (c.get("withdrawn_on") is None or dt.date.fromisoformat(c["withdrawn_on"]) > request.at)
        and (c.get("valid_until") is None or dt.date.fromisoformat(c["valid_until"]) >= request.at)
    ]
    into_existing = data.draw(st.booleans())
    if in_force and into_existing:
        data.draw(st.sampled_from(in_force))["excluded"].append(exclusion)
    else:
        given_on = min(request.at, TODAY).isoformat()
        document["consents"].append(stmt("NEW", given_on=given_on, excluded=(exclusion,)))
    decision = decide(Episode.model_validate(document), request)
    assert (decision.outcome, decision.code) == (DENY, EXCLUDED)
    assert any(f.excludes for f in decision.statements)


@PROPERTY
@given(episodes() | consent_episodes(), requests, st.data())
def test_withdrawing_every_statement_always_denies(
    ep: Episode, request: ConsentRequest, data: st.DataObject
) -> None:
    document = _document(ep)
    for consent in document["consents"]:
        given_on = dt.date.fromisoformat(consent["given_on"])
        latest = max(given_on, request.at)
        # Withdrawn on or before the day asked about, or (if given later) the day it was given.
        consent["withdrawn_on"] = data.draw(st.dates(given_on, latest)).isoformat()
    decision = decide(Episode.model_validate(document), request)
    assert decision.outcome is DENY
    assert decision.code in {WITHDRAWN, MISSING}
    assert not any(f.in_force for f in decision.statements)


@PROPERTY
@given(consent_episodes(), requests, _opt(st.just(OVERRIDE)))
def test_reasons_never_contain_a_name(
    ep: Episode, request: ConsentRequest, override: Override | None
) -> None:
    decision = decide(ep, request, override)
    names = [ep.child.given_names, ep.child.family_name, ep.child.known_as or ""]
    names += [g.name for c in ep.consents for g in c.given_by]
    names += [p.name for p in ep.parents_carers]
    texts = [decision.reason, *(f.reason for f in decision.statements)]
    for text in texts:
        for name in filter(None, names):
            for part in name.split():
                assert part.casefold() not in text.casefold()


@PROPERTY
@given(consent_episodes(), requests)
def test_an_override_in_force_always_permits(ep: Episode, request: ConsentRequest) -> None:
    override = Override("OV-1", request.at, request.at)
    decision = decide(ep, request, override)
    assert decision.outcome is PERMIT
    assert decision.permitted_sections == request.requested_sections
    assert decision.overridden == (
        decide(ep, request).permitted_sections != decision.permitted_sections
    )


# -- agency names: numbers are words ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("permitted", "recipient"),
    [("Early Help Team 1", "Early Help Team 2"), ("0-19 Health Visiting", "5-19 Health Visiting")],
)
def test_a_permission_by_name_does_not_reach_a_team_numbered_otherwise(
    permitted: str, recipient: str
) -> None:
    ep = episode(stmt(share_with=({"name": permitted},)))
    assert decide(ep, ask(name=recipient)).outcome is Outcome.DENY
    assert decide(ep, ask(name=permitted.upper())).outcome is Outcome.PERMIT


def test_an_exclusion_by_a_numbered_name_is_that_agency_only() -> None:
    ep = episode(stmt(excluded=({"name": "NHS 111"},)))
    assert decide(ep, ask(name="Whittington Health NHS Trust")).outcome is Outcome.PERMIT
    assert decide(ep, ask(name="nhs 111")).code is DenialCode.CONSENT_EXCLUDED
    by_number = episode(stmt(excluded=({"name": "111"},)))
    assert decide(by_number, ask(name="111")).code is DenialCode.CONSENT_EXCLUDED


@pytest.mark.parametrize("spelt", ["Team ٢", "TEAM 02", "Team ２"])
def test_a_number_is_a_number_however_it_is_written(spelt: str) -> None:
    ep = episode(stmt(excluded=({"name": "Team 2"},)))
    assert decide(ep, ask(name=spelt)).code is DenialCode.CONSENT_EXCLUDED
    assert decide(ep, ask(name="Team 20")).outcome is Outcome.PERMIT


def test_a_very_long_number_in_a_name_is_compared_not_converted() -> None:
    """Past Python's 4,300 digits an int() conversion raises: every decision would have failed."""
    digits = "7" * 5000
    ep = episode(stmt(excluded=({"name": f"Team 0{digits}"},)))
    assert decide(ep, ask(name=f"Team {digits}")).code is DenialCode.CONSENT_EXCLUDED


def test_an_excluded_name_without_a_word_excludes_every_name() -> None:
    ep = episode(stmt(excluded=({"name": "--"},)))
    assert decide(ep, ask(name="Whittington Health")).code is DenialCode.CONSENT_EXCLUDED
