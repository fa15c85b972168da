"""csc-closure-xml, from a review: rejected values kept, professionals' details kept on their owner,
comments inside values, the location of a bad LA."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters._base import AdapterError, Fate, FieldReport
from adapters.csc_closure_xml import ADAPTER, NS
from schemas import Episode
from tests.adapters.test_csc_closure_xml import (
    EXAMPLES,
    content,
    ext_of,
    one,
    same_meaning,
    translate,
)

BASE = EXAMPLES[0].read_bytes()
CHILD = "/ClosingSummary/Child"


def _with(old: bytes, new: bytes) -> bytes:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def _through_json(episode: Episode) -> Episode:
    """The episode as the national side stores it and gives it back."""
    return Episode.model_validate_json(episode.model_dump_json())


def _reports(fields: list[FieldReport], location: str) -> list[tuple[Fate, str | None, str | None]]:
    return [(f.fate, f.target, f.rule) for f in fields if f.location == location]


# --- a rejected optional value is kept and written back in its place ---------------------------

NHS, BORN = b"<NHSNo>5640255498</NHSNo>", b"<BirthDate>2023-02-19</BirthDate>"
REJECTED = [
    (NHS, "NHSNo", "5640255499", "child.identifiers.nhs_number", "nhs_number.checksum"),
    (NHS, "NHSNo", "56402", "child.identifiers.nhs_number", "nhs_number.format"),
    (NHS, "UPN", "C801200005001", "child.identifiers.upn", "upn.checksum"),
    (BORN, "BirthDate", "2099-02-19", "child.date_of_birth", "dates.birth_in_future"),
    (BORN, "BirthDate", "19/02/2023", "child.date_of_birth", "date.iso"),
    (b"<Ethnicity>MOTH</Ethnicity>", "Ethnicity", "Mixed", "child.ethnicity", "ethnicity.code"),
    (
        b"<Postcode>E14 7FJ</Postcode>",
        "Postcode",
        "London",
        "child.address.postcode",
        "postcode.format",
    ),
]


def _rejected_doc(old: bytes, key: str, raw: str) -> bytes:
    new = f"<{key}>{raw}</{key}>".encode()
    return _with(old, old + new if key == "UPN" else new)  # UPN goes after NHSNo, as written


@pytest.mark.parametrize(
    ("old", "key", "raw", "target", "rule"), REJECTED, ids=[f"{r[1]}-{r[4]}" for r in REJECTED]
)
def test_a_rejected_value_is_reported_kept_and_written_back_in_its_place(
    old: bytes, key: str, raw: str, target: str, rule: str
) -> None:
    data = _rejected_doc(old, key, raw)
    translation = translate(data)
    where = f"{CHILD}/{key}"
    assert _reports(translation.report.fields, where) == [
        (Fate.REJECTED, target, rule),
        (Fate.EXTENDED, f"extensions.csc-closure-xml.Child.{key}", "extension.rejected_value"),
    ]
    assert all(raw not in (f.message or "") for f in translation.report.fields)
    episode = translation.episodes[0]
    assert ext_of(episode)["Child"] == {key: raw}
    for stored in (episode, _through_json(episode)):
        written = ADAPTER.from_national([stored])
        assert written == data  # in its place: the example's own bytes
        again = translate(written)
        assert content(again.episodes[0]) == content(episode)
        assert _reports(again.report.fields, where)[0] == (Fate.REJECTED, target, rule)


def test_a_rejected_value_keeps_its_attributes() -> None:
    data = _with(NHS, b'<NHSNo codeSet="NHS">5640255499</NHSNo>')
    episode = one(data)
    assert ext_of(episode)["Child"] == {"NHSNo": {"@codeSet": "NHS", "#text": "5640255499"}}
    written = ADAPTER.from_national([_through_json(episode)])
    assert b'<NHSNo codeSet="NHS">5640255499</NHSNo>' in written
    assert same_meaning(written, data)


def test_a_national_value_replaces_the_rejected_one() -> None:
    episode = one(_with(NHS, b"<NHSNo>5640255499</NHSNo>"))
    identifiers = episode.child.identifiers.model_copy(update={"nhs_number": "5640255498"})
    child = episode.child.model_copy(update={"identifiers": identifiers})
    written = ADAPTER.from_national([episode.model_copy(update={"child": child})])
    assert NHS in written and b"5640255499" not in written
    assert written.count(b"<NHSNo>") == 1


_XML_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn")), min_size=1, max_size=20
)


@given(raw=_XML_TEXT.map(str.strip).filter(bool), key=st.sampled_from(["Postcode", "Ethnicity"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_rejected_text_survives_the_round_trip(raw: str, key: str) -> None:
    root = etree.fromstring(BASE)
    element = root.find(f"{{{NS}}}Child/{{{NS}}}{key}")
    assert element is not None
    element.text = raw
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    translation = translate(data)
    fates = {f.fate for f in translation.report.fields if f.location == f"{CHILD}/{key}"}
    if Fate.REJECTED not in fates:
        return  # a valid value: mapped, as any other
    episode = _through_json(translation.episodes[0])
    written = ADAPTER.from_national([episode])
    back = etree.fromstring(written).find(f"{{{NS}}}Child/{{{NS}}}{key}")
    assert back is not None and back.text == raw
    assert content(translate(written).episodes[0]) == content(translation.episodes[0])


# --- a professional's details stay with that professional ---------------------------------------

PHONES = {"Ewa Hussain": "020 7000 1111", "Tomás O'Connor": "020 7000 3333"}
_LAST_OF = {  # the last element of each of those professionals
    "Ewa Hussain": b"<AgencyType>youth_justice</AgencyType>",
    "Tomás O'Connor": b"<AgencyType>police</AgencyType>",
}


def _with_phones() -> bytes:
    data = BASE
    for name, last in _LAST_OF.items():
        assert data.count(last) == 1
        data = data.replace(last, last + f"<Phone>{PHONES[name]}</Phone>".encode())
    return data


def _phones(written: bytes) -> dict[str, str | None]:
    """Each professional's phone in a written document, by name."""
    out: dict[str, str | None] = {}
    for professional in etree.fromstring(written).iter(f"{{{NS}}}Professional"):
        out[professional.findtext(f"{{{NS}}}Name") or ""] = professional.findtext(f"{{{NS}}}Phone")
    return out


def test_the_document_with_phones_round_trips() -> None:
    data = _with_phones()
    episode = one(data)
    assert [m.name for m in episode.tac_members] == ["Ewa Hussain", "Renée Nowak", "Tomás O'Connor"]
    assert ADAPTER.from_national([_through_json(episode)]) == data


@given(st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_phone_stays_with_its_professional_whatever_the_national_side_does(
    data: st.DataObject,
) -> None:
    episode = _through_json(one(_with_phones()))
    members = data.draw(st.permutations(episode.tac_members))
    kept = members[: data.draw(st.integers(0, len(members)))]
    written = ADAPTER.from_national([episode.model_copy(update={"tac_members": kept})])
    phones = _phones(written)
    for member in kept:
        assert phones[member.name] == PHONES.get(member.name)
    for name in set(PHONES) - {m.name for m in kept}:
        assert PHONES[name].encode() not in written  # left the TAC: their phone goes with them


def test_a_member_whose_agency_changed_no_longer_gets_the_details() -> None:
    episode = one(_with_phones())
    moved = episode.tac_members[0].model_copy(update={"organisation": "Another Service"})
    members = [moved, *episode.tac_members[1:]]
    written = ADAPTER.from_national([episode.model_copy(update={"tac_members": members})])
    assert _phones(written)["Ewa Hussain"] is None
    assert _phones(written)["Tomás O'Connor"] == PHONES["Tomás O'Connor"]


def _legacy(episode: Episode) -> Episode:
    """The extension as it was kept before entries named their professional: by position."""
    ext: dict[str, Any] = {**ext_of(episode), "#tac_members": [{"Phone": "020 7000 1111"}, {}, {}]}
    return episode.model_copy(update={"extensions": {"csc-closure-xml": ext}})


def test_details_kept_by_position_are_still_written_while_the_members_are_as_read() -> None:
    episode = _legacy(one(BASE))
    assert _phones(ADAPTER.from_national([episode]))["Ewa Hussain"] == "020 7000 1111"


def test_details_kept_by_position_are_dropped_once_members_change() -> None:
    episode = _legacy(one(BASE))
    left = episode.model_copy(update={"tac_members": episode.tac_members[1:]})
    written = ADAPTER.from_national([left])
    assert b"020 7000 1111" not in written


# --- a comment or processing instruction inside a value -----------------------------------------


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        (b"Adeyemi<!-- hyphenated -->-Jones", "Adeyemi-Jones"),
        (b"Adeyemi<?ics note?>-Jones", "Adeyemi-Jones"),
        (b"Adeyemi<!-- a --><!-- b -->-<?x?>Jones", "Adeyemi-Jones"),
        (b"Adeyemi <!-- a -->Jones", "Adeyemi Jones"),
        (b" <!-- a --> Adeyemi-Jones <!-- b --> ", "Adeyemi-Jones"),
    ],
)
def test_a_comment_inside_a_value_adds_nothing(family: bytes, expected: str) -> None:
    data = _with(b"<Family>Adeyemi-Jones</Family>", b"<Family>" + family + b"</Family>")
    assert one(data).child.family_name == expected


def test_a_comment_inside_an_identifier_or_kept_text_adds_nothing() -> None:
    data = _with(NHS, b"<NHSNo>5640<!-- x -->255498</NHSNo>")
    data = data.replace(b"<Strengths>Sleep is", b"<Strengths>Sleep<!-- c --> is", 1)
    translation = translate(data)
    assert translation.episodes[0].child.identifiers.nhs_number == "5640255498"
    assert not [f for f in translation.report.fields if f.fate is Fate.REJECTED]
    strengths = ext_of(translation.episodes[0])["Strengths"]
    assert strengths == "Sleep is disrupted; mum says bedtimes are 'a battle'."


# --- where a bad LA is reported ------------------------------------------------------------------


def test_a_bad_la_is_reported_at_the_la() -> None:
    with pytest.raises(AdapterError) as caught:
        translate(_with(b"<LA>E09000030</LA>", b"<LA>30</LA>"))
    assert caught.value.location == "/ClosingSummary/Case/LA"
    assert "30" not in caught.value.message
