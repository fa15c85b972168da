"""What a document written in a local format does not give back (`adapters.write_checked`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters import (
    CHANGED,
    NOT_CARRIED,
    NOT_READABLE,
    Adapter,
    Translation,
    detect_adapter,
    get_adapter,
    not_carried,
    write_checked,
)
from adapters._written import _national
from schemas import Episode

from .facts import EXAMPLES

FORMS = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in {".xml", ".json", ".csv"})
FORMS = [p for p in FORMS if not p.name.endswith(".facts.json")]


def _episodes(path: Path) -> list[Episode]:
    return detect_adapter(path.read_bytes()).to_national(path.read_bytes()).episodes


def _said(adapter: Adapter, episodes: Sequence[Episode]) -> dict[str, str]:
    """pointer -> rule"""
    return {p.pointer: p.rule for p in write_checked(adapter, episodes).warnings}


@pytest.mark.parametrize("form", FORMS, ids=lambda p: p.name)
def test_a_form_written_back_in_its_own_format_loses_nothing(form: Path) -> None:
    adapter = detect_adapter(form.read_bytes())
    assert _said(adapter, _episodes(form)) == {}


@pytest.mark.parametrize("form", FORMS, ids=lambda p: p.name)
@pytest.mark.parametrize("target", ["national-json", "national-xml"])
def test_the_national_formats_carry_everything(form: Path, target: str) -> None:
    """Which is why `write_checked` does not read their documents again."""
    adapter = get_adapter(target)
    for episode in _episodes(form):
        [back] = adapter.to_national(adapter.from_national([episode])).episodes
        assert _national(back) == _national(episode)


def test_what_a_register_has_no_column_for_is_named() -> None:
    [episode] = _episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    said = _said(get_adapter("caf-register-csv"), [episode])
    assert said["/0/parents_carers/0/name"] == NOT_CARRIED
    assert said["/0/tac_members/1/organisation"] == NOT_CARRIED
    assert said["/0/assessments/0/elements/0/strengths"] == NOT_CARRIED
    # What the register holds is not named: the child's names and date of birth.
    assert not {"/0/child/given_names", "/0/child/family_name", "/0/child/date_of_birth"} & set(
        said
    )


def test_a_value_given_back_otherwise_is_changed() -> None:
    """A step-down from children's social care is a potential episode; eCAF has no potential
    state, and reads its episode back in another."""
    [episode] = _episodes(EXAMPLES / "csc-closure-xml" / "csc-closure-xml-101-0.xml")
    assert _said(get_adapter("ecaf-xml-v3"), [episode]) == {"/0/state": CHANGED}


def test_each_episode_of_a_document_is_named_by_its_place() -> None:
    episodes = _episodes(EXAMPLES / "caf-register-csv" / "register-101.csv")
    fuller = _episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    said = _said(get_adapter("caf-register-csv"), [*episodes, *fuller])
    assert {pointer.split("/")[1] for pointer in said} == {"3"}


def test_values_come_in_the_order_of_the_document() -> None:
    [episode] = _episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    many = episode.model_copy(
        update={"delivery_plan": [episode.delivery_plan[0]] * 12}  # places 2 and 10 and 11
    )
    pointers = [
        p.pointer
        for p in write_checked(get_adapter("caf-register-csv"), [many]).warnings
        if p.pointer.startswith("/0/delivery_plan/") and p.pointer.endswith("/need")
    ]
    assert pointers == [f"/0/delivery_plan/{n}/need" for n in range(12)]


@dataclass
class _Written:
    """A format whose writer is broken in a given way: what `not_carried` must say of it."""

    real: Adapter
    data: bytes
    name: str = "ecaf-xml-v3"
    media_type: str = "application/xml"
    many_per_document: bool = False

    def detect(self, data: bytes) -> bool:
        return self.real.detect(data)

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        return self.real.to_national(data, received_at=received_at)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        return self.data


def test_a_document_its_own_reader_refuses_is_said() -> None:
    [episode] = _episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    broken = _Written(get_adapter("ecaf-xml-v3"), b"<not-caf/>")
    [problem] = write_checked(broken, [episode]).warnings
    assert problem.rule == NOT_READABLE and "unsupported_format" in problem.message


def test_an_episode_missing_from_the_document_is_said_whole() -> None:
    form = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    [episode] = _episodes(form)
    one = _Written(get_adapter("ecaf-xml-v3"), form.read_bytes())
    problems = list(not_carried(one, [episode, episode], form.read_bytes()))
    assert [(p.pointer, p.rule) for p in problems] == [("/1", NOT_CARRIED)]


def test_a_family_given_in_another_order_is_compared_child_by_child() -> None:
    """The EHA writer orders a family's children its own way: each episode is compared with its
    own child's, not with whoever comes at its place."""
    family = _episodes(EXAMPLES / "eha-json" / "eha-json-101-0.json")
    assert len(family) > 1
    assert _said(get_adapter("eha-json"), list(reversed(family))) == {}


def test_a_row_its_reader_rejects_is_that_episode_alone() -> None:
    """A given name of spaces is national (a text), and an empty cell to the register: that row
    is rejected when read again, and the rows after it are still compared with their own."""
    episodes = _episodes(EXAMPLES / "caf-register-csv" / "register-101.csv")
    blank = episodes[1].child.model_copy(update={"given_names": " "})
    episodes[1] = episodes[1].model_copy(update={"child": blank})
    said = _said(get_adapter("caf-register-csv"), episodes)
    assert said == {"/1": NOT_CARRIED}


def test_an_entry_given_back_elsewhere_in_its_list_is_carried() -> None:
    [episode] = _episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml")
    assert len(episode.delivery_plan) > 1
    ecaf = get_adapter("ecaf-xml-v3")
    turned = episode.model_copy(update={"delivery_plan": episode.delivery_plan[::-1]})
    data = ecaf.from_national([turned])  # read back with its plan the other way round
    assert list(not_carried(ecaf, [episode], data)) == []
    # An entry changed is still found, at its own place.
    first = episode.delivery_plan[0].model_copy(update={"action": "Another action"})
    edited = episode.model_copy(update={"delivery_plan": [first, *episode.delivery_plan[1:]]})
    found = [
        (p.pointer, p.rule) for p in not_carried(ecaf, [episode], ecaf.from_national([edited]))
    ]
    assert found == [("/0/delivery_plan/0/action", CHANGED)]


def test_children_of_one_name_are_told_apart_by_their_person_ref() -> None:
    """Twins not yet born, both "Baby Smith" without a date of birth."""
    form = EXAMPLES / "eha-json" / "eha-json-101-0.json"
    document = json.loads(form.read_bytes())
    children = [m for m in document["family"]["members"] if m["role"] == "CHILD"]
    assert len(children) > 1
    for child in children:
        child.update(firstName="Baby", lastName="Smith", dob=None)
    eha = get_adapter("eha-json")
    family = eha.to_national(json.dumps(document).encode()).episodes
    assert _said(eha, family) == {}
    assert _said(eha, list(reversed(family))) == {}
