"""eha-json, after review: a statement states only what its givers said, and an edit made on the
national side is neither half-applied (patch groups) nor lost to a sibling's copy (family parts).

Episodes go through their own JSON round trip first (`_stored`), as they do in the episode store:
what the writer relies on must survive it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters._base import Fate
from adapters.eha_json import ADAPTER
from adapters.eha_json._codes import adult_name
from gateway.consent._age import check_givers
from gateway.consent._types import Rule
from schemas import (
    Address,
    AgencyRef,
    AgencyType,
    Closure,
    ClosureOutcome,
    ConsentRole,
    Episode,
    EpisodeState,
    Problem,
)
from tests.adapters.test_eha_json import DOCUMENTS, PERSONAL, families

EXAMPLE = next(p for p in DOCUMENTS if p.stem == "eha-json-101-0")  # P1-P3 children, P4 parent
EDITED = "family_part.edited_copy"
CONFLICT = "family_part.conflicting_copies"
WITHDRAWN = "family_part.withdrawal_wins"
OPEN = "family_part.open_while_a_child_is_open"


def _doc() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(EXAMPLE.read_bytes())
    return value


def _stored(doc: Any) -> list[Episode]:
    """The document's episodes, as the episode store gives them back."""
    episodes = ADAPTER.to_national(json.dumps(doc).encode()).episodes
    return [Episode.model_validate_json(e.model_dump_json()) for e in episodes]


def _written(episodes: list[Episode]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(ADAPTER.from_national(episodes))
    return value


def _warnings(episodes: list[Episode]) -> list[Problem]:
    return ADAPTER.write(episodes).warnings


def _no_values(warnings: list[Problem], *values: str) -> bool:
    text = " ".join(f"{w.path} {w.rule} {w.message} {w.location}" for w in warnings)
    return not any(v in text for v in (*values, *PERSONAL))


def _edit(episode: Episode, **update: Any) -> Episode:
    return episode.model_copy(update=update)


def _edit_element(episode: Episode, index: int, **update: Any) -> Episode:
    assessment = episode.assessments[0]
    elements = list(assessment.elements)
    elements[index] = elements[index].model_copy(update=update)
    return _edit(episode, assessments=[assessment.model_copy(update={"elements": elements})])


def _area_position(episode: Episode, area: int) -> int:
    """Where area `area` of the document is among this episode's elements."""
    entries = episode.extensions["eha-json"]["elements"]
    assert isinstance(entries, list)
    return next(i for i, e in enumerate(entries) if isinstance(e, dict) and e.get("area") == area)


# -- 1. a sibling's statement says nothing about anyone's competence -------------------------------


def test_competence_is_stated_only_where_a_young_person_gave_the_consent() -> None:
    doc = _doc()  # givenBy P4 (the parent) and P1; youngPersonCompetent true, about P1
    episodes = _stored(doc)
    ewa, amara, zoe = (e.consents[0] for e in episodes)
    assert ewa.young_person_competent is True
    assert [g.role for g in amara.given_by] == [ConsentRole.PARENT_CARER]
    assert amara.young_person_competent is None and zoe.young_person_competent is None
    assert ewa.consent_id == amara.consent_id  # one family consent record: one id
    assert _written(episodes) == doc  # the family's consent is written back as it was
    assert _written(episodes[::-1]) == doc
    assert _warnings(episodes) == []


def test_a_parents_consent_for_a_sibling_of_14_is_judged_as_a_parents() -> None:
    """Amara (P2) was 14 when the parent consented. The competence copied from Ewa's statement made
    the consent rules ask for Amara's own consent, which a statement Amara did not give fails."""
    amara = _stored(_doc())[1]
    check = check_givers(amara.child, amara.consents[0], amara.parents_carers)
    assert check.valid and check.rule is Rule.AGE_12_15_PARENT


def test_competence_with_no_young_person_among_the_givers_is_kept_but_not_stated() -> None:
    doc = _doc()
    doc["consent"]["givenBy"] = ["P4"]
    translation = ADAPTER.to_national(json.dumps(doc).encode())
    assert all(e.consents[0].young_person_competent is None for e in translation.episodes)
    (entry,) = [
        f for f in translation.report.fields if f.location == "/consent/youngPersonCompetent"
    ]
    assert entry.fate is Fate.EXTENDED and entry.rule == "consent.competence_without_young_person"
    assert _written(_stored(doc)) == doc


def test_competence_of_a_younger_sibling_who_consented() -> None:
    doc = _doc()
    doc["consent"]["givenBy"] = ["P4", "P3"]
    doc["consent"]["youngPersonCompetent"] = False
    episodes = _stored(doc)
    assert [e.consents[0].young_person_competent for e in episodes] == [None, None, False]
    assert _written(episodes) == doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families())
def test_no_statement_states_a_competence_its_givers_did_not(doc: dict[str, Any]) -> None:
    stated = doc.get("consent", {}).get("youngPersonCompetent")
    for episode in _stored(doc):
        for statement in episode.consents:
            young = any(g.role is ConsentRole.YOUNG_PERSON for g in statement.given_by)
            if not young:
                assert statement.young_person_competent is None
            elif isinstance(stated, bool):
                assert statement.young_person_competent is stated


# -- 2a. keys written from one national value are patched together, or not at all ----------------


def _rename(episodes: list[Episode], name: str, only: int | None = None) -> list[Episode]:
    return [
        _edit(e, parents_carers=[e.parents_carers[0].model_copy(update={"name": name})])
        if only in (None, i)
        else e
        for i, e in enumerate(episodes)
    ]


@pytest.mark.parametrize(
    ("first", "last", "renamed", "written"),
    [
        (None, "Murphy", "Jones", ("Jones", None)),  # no firstName: not "Jones" + "Murphy"
        ("Mary Ann", "Murphy", "Mary Ann Jones", ("Mary", "Ann Jones")),  # not "Ann Jones"...
        ("Mary Ann", "Murphy", "Mary Ann Murphy", ("Mary Ann", "Murphy")),  # unchanged: as read
        (" Kai ", "Murphy", "Kai Jones", ("Kai", "Jones")),
    ],
)
def test_a_renamed_adult_is_written_from_the_new_name_alone(
    first: str | None, last: str, renamed: str, written: tuple[str, str | None]
) -> None:
    doc = _doc()
    adult = doc["family"]["members"][3]
    adult.pop("firstName")
    if first is not None:
        adult["firstName"] = first
    adult["lastName"] = last
    member = _written(_rename(_stored(doc), renamed))["family"]["members"][3]
    assert (member.get("firstName"), member.get("lastName")) == written


def test_a_family_that_moved_keeps_nothing_of_its_old_address() -> None:
    doc = _doc()
    doc["family"]["address"] = {
        "line2": "Flat 2, 66 Holloway Road",
        "town": " London",
        "postcode": "nw3 6ff",
        "uprn": "10023456789",  # a key nobody told us about: about the old address
    }
    assert _written(_stored(doc)) == doc
    moved = Address(lines=["1 New Street"], town="London", postcode="E1 6AN")
    episodes = [_edit(e, child=e.child.model_copy(update={"address": moved})) for e in _stored(doc)]
    assert _written(episodes)["family"]["address"] == {
        "line1": "1 New Street",
        "town": "London",
        "postcode": "E1 6AN",
    }


words = st.lists(
    st.text(st.characters(min_codepoint=0x41, max_codepoint=0x17F, categories=["L"]), min_size=1),
    min_size=1,
    max_size=3,
).map(" ".join)
maybe_padded = st.builds(lambda w, pad: f"{pad}{w}{pad}", words, st.sampled_from(["", " "]))


@settings(max_examples=150, deadline=None)
@given(
    first=st.none() | maybe_padded,
    last=st.none() | st.just("") | maybe_padded,
    renamed=words,
)
def test_any_renamed_adult_reads_back_as_the_new_name(
    first: str | None, last: str | None, renamed: str
) -> None:
    doc = _doc()
    adult = doc["family"]["members"][3]
    for key, value in (("firstName", first), ("lastName", last)):
        adult.pop(key)
        if value is not None:
            adult[key] = value
    assume(adult_name(*(adult.get(k, "").strip() or None for k in ("firstName", "lastName"))))
    written = _written(_rename(_stored(doc), renamed))
    (episode, *_) = ADAPTER.to_national(json.dumps(written).encode()).episodes
    assert episode.parents_carers[0].name == renamed


addresses = st.fixed_dictionaries(
    {},
    optional={
        "line1": st.none() | maybe_padded,
        "line2": st.none() | maybe_padded,
        "line3": st.none() | maybe_padded,
        "town": st.none() | maybe_padded,
        "postcode": st.sampled_from(["NW3 6FF", "nw36ff", None]),
        "uprn": words,
    },
)
new_addresses = st.builds(
    Address,
    lines=st.lists(words, max_size=3),
    town=st.none() | words,
    postcode=st.sampled_from(["E1 6AN", None]),
)


@settings(max_examples=150, deadline=None)
@given(old=addresses, new=new_addresses)
def test_any_move_reads_back_as_the_new_address(old: dict[str, Any], new: Address) -> None:
    doc = _doc()
    doc["family"]["address"] = old
    stored = _stored(doc)
    assert _written(stored) == doc
    assume(new != stored[0].child.address)  # else it is no move, and all is kept
    episodes = [_edit(e, child=e.child.model_copy(update={"address": new})) for e in stored]
    written = _written(episodes)
    assert set(written["family"]["address"]) <= {"line1", "line2", "line3", "town", "postcode"}
    (episode, *_) = ADAPTER.to_national(json.dumps(written).encode()).episodes
    assert episode.child.address == new


# -- 2b. family-level parts: the copy changed on the national side is written, and reported -------


@pytest.mark.parametrize("child", [0, 1, 2])
def test_an_edit_to_a_shared_area_in_any_childs_episode_is_written(child: int) -> None:
    episodes = _stored(_doc())
    position = _area_position(episodes[child], 2)  # FAMILY_RELATIONSHIPS: all three children's
    new = "UPDATED by the lead professional"
    episodes[child] = _edit_element(episodes[child], position, needs=new)
    assert _written(episodes)["areas"][2]["worries"] == new
    (warning,) = _warnings(episodes)
    assert (warning.rule, warning.location, warning.severity) == (EDITED, "/areas/2", "warning")
    assert _no_values([warning], new)


def test_differently_changed_copies_first_child_wins_and_it_is_reported() -> None:
    episodes = _stored(_doc())
    for child, text in ((2, "changed in P3's"), (1, "changed in P2's")):
        position = _area_position(episodes[child], 4)
        episodes[child] = _edit_element(episodes[child], position, needs=text)
    assert _written(episodes)["areas"][4]["worries"] == "changed in P2's"
    (warning,) = _warnings(episodes)
    assert (warning.rule, warning.location) == (CONFLICT, "/areas/4")


def test_a_withdrawal_recorded_in_one_childs_episode_is_the_familys() -> None:
    episodes = _stored(_doc())
    ewa, zoe = episodes[0].consents[0], episodes[2].consents[0]
    episodes[0] = _edit(episodes[0], consents=[ewa.model_copy(update={"share_with": []})])
    withdrawn = zoe.model_copy(update={"withdrawn_on": dt.date(2026, 3, 1)})
    episodes[2] = _edit(episodes[2], consents=[withdrawn])
    consent = _written(episodes)["consent"]
    assert consent["withdrawnDate"] == "01/03/2026" and consent["givenBy"] == ["P4", "P1"]
    # The withdrawn copy is written, sharing with nobody: Ewa's copy took every agency off.
    assert consent["shareWith"] == []
    assert [(w.rule, w.location) for w in _warnings(episodes)] == [
        (WITHDRAWN, "/consent"),
        ("family_part.consent_narrowed", "/consent"),
    ]
    # ...and a withdrawal as read is not undone by one child's copy that lacks it.
    doc = _doc()
    doc["consent"]["withdrawnDate"] = "01/03/2026"
    episodes = _stored(doc)
    amara = episodes[1].consents[0].model_copy(update={"withdrawn_on": None})
    episodes[1] = _edit(episodes[1], consents=[amara])
    assert _written(episodes) == doc


def _closed(episode: Episode) -> Episode:
    closure = Closure(closed_on=dt.date(2026, 3, 1), outcome=ClosureOutcome.MOVED_AUTHORITY)
    return _edit(episode, state=EpisodeState.CLOSED, closure=closure)


def test_the_family_is_open_while_any_childs_episode_is_open() -> None:
    episodes = _stored(_doc())
    episodes[1] = _closed(episodes[1])  # Amara's episode closed: not her siblings'
    doc = _written(episodes)
    assert doc["status"] == "OPEN" and "closure" not in doc
    (warning,) = _warnings(episodes)
    assert (warning.rule, warning.location) == (OPEN, "/status")
    everyone = [_closed(e) for e in _stored(_doc())]
    doc = _written(everyone)
    assert doc["status"] == "CLOSED" and doc["closure"]["reason"] == "MOVED_LA"
    assert _warnings(everyone) == []


def test_an_adult_renamed_in_one_childs_episode_is_not_written_twice() -> None:
    episodes = _rename(_stored(_doc()), "Kai Jones", only=2)
    members = _written(episodes)["family"]["members"]
    assert [(m["personRef"], m["firstName"], m["lastName"]) for m in members[3:]] == [
        ("P4", "Kai", "Jones")
    ]
    (warning,) = _warnings(episodes)
    assert warning.rule == EDITED and warning.path == ("parents_carers", 0)


def test_edits_to_several_parts_in_several_episodes_are_all_written() -> None:
    episodes = _stored(_doc())
    p1, p2, p3 = episodes
    moved = Address(lines=["1 New Street"], town="London", postcode="E1 6AN")
    lead = p2.lead_professional
    assert lead is not None
    episodes = [
        _edit(p1, delivery_plan=p1.delivery_plan[:1]),
        _edit(
            p2,
            child=p2.child.model_copy(update={"address": moved}),
            lead_professional=lead.model_copy(update={"telephone": "020 0000 0000"}),
        ),
        _edit(
            p3,
            local_ref="EHA-NEW",
            assessments=[p3.assessments[0].model_copy(update={"reason": "a new reason"})],
        ),
    ]
    doc = _written(episodes)
    assert len(doc["plan"]) == 1 and doc["family"]["address"]["line1"] == "1 New Street"
    assert doc["leadPractitioner"]["phone"] == "020 0000 0000"
    assert doc["assessmentId"] == "EHA-NEW" and doc["reason"] == "a new reason"
    warnings = _warnings(episodes)
    assert {w.rule for w in warnings} == {EDITED}
    assert sorted(w.location or "" for w in warnings) == [
        "/",
        "/assessmentId",
        "/family/address",
        "/leadPractitioner",
        "/plan",
    ]
    assert _no_values(warnings, "EHA-NEW", "a new reason", "New Street", "020 0000 0000")


def test_copies_from_elsewhere_that_differ_are_a_conflict_the_first_child_wins() -> None:
    """With no digests (episodes from another format), nothing says which copy is as read."""
    episodes = [_edit(e, extensions={}) for e in _stored(_doc())]
    episodes[1] = _edit(episodes[1], local_ref="EHA-NEW")
    assert _written(episodes)["assessmentId"] == episodes[0].local_ref
    assert [w.rule for w in _warnings(episodes)] == [CONFLICT]


def test_a_different_adult_in_an_episode_from_elsewhere_is_another_adult() -> None:
    """Only episodes read from one document are known to list the same people in the same order."""
    episodes = [_edit(e, extensions={}) for e in _stored(_doc())]
    episodes[1] = _rename(episodes, "Sam Okafor", only=1)[1]
    names = [(m["firstName"], m["lastName"]) for m in _written(episodes)["family"]["members"]]
    assert names[3:] == [("Kai", "Murphy"), ("Sam", "Okafor")]
    assert _warnings(episodes) == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_an_unchanged_family_is_written_as_read_without_warnings(path: Any) -> None:
    episodes = _stored(json.loads(path.read_bytes()))
    written = ADAPTER.write(episodes)
    assert json.loads(written.data) == json.loads(path.read_bytes())
    assert written.warnings == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families(), st.data())
def test_a_change_in_any_childs_episode_is_written_for_the_family(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    episodes = _stored(doc)
    assume(len(episodes) > 1 and episodes[0].assessments)
    child = data.draw(st.integers(0, len(episodes) - 1))
    reason = episodes[0].assessments[0].reason + " (changed)"
    assessment = episodes[child].assessments[0].model_copy(update={"reason": reason})
    episodes[child] = _edit(episodes[child], assessments=[assessment])
    assert _written(episodes)["reason"] == reason
    assert [(w.rule, w.location) for w in _warnings(episodes)] == [(EDITED, "/")]


def test_differently_changed_consents_share_no_wider_than_any_copy() -> None:
    """An exclusion added in a later child's episode, while another child's copy changed too, is
    the family's: the copy written (the first changed) must not widen sharing."""
    episodes = _stored(_doc())
    first, later = episodes[0].consents[0], episodes[2].consents[0]
    narrowed = first.model_copy(update={"share_with": first.share_with[1:]})
    excluded = later.model_copy(
        update={"excluded": [*later.excluded, AgencyRef(agency_type=AgencyType.HOUSING)]}
    )
    episodes[0] = _edit(episodes[0], consents=[narrowed])
    episodes[2] = _edit(episodes[2], consents=[excluded])
    consent = _written(episodes)["consent"]
    assert {"agencyType": "HOUSING"} in consent["doNotShareWith"]
    assert len(consent["shareWith"]) == len(first.share_with) - 1
    assert "family_part.consent_narrowed" in [w.rule for w in _warnings(episodes)]


def test_an_exclusion_lifted_in_one_copy_stays_and_the_writer_says_so() -> None:
    doc = _doc()
    doc["consent"]["doNotShareWith"] = [{"agencyType": "HOUSING"}]
    episodes = _stored(doc)
    consent = episodes[1].consents[0]
    assert consent.excluded
    episodes[1] = _edit(episodes[1], consents=[consent.model_copy(update={"excluded": []})])
    written = _written(episodes)["consent"]
    assert written["doNotShareWith"] == [{"agencyType": "HOUSING"}]
    rules = [w.rule for w in _warnings(episodes)]
    assert "family_part.consent_narrowed" in rules
