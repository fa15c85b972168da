"""The national format as an adapter: JSON (one or many) and XML, detection and the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import AdapterError, Fate, adapter_names, detect_adapter, get_adapter
from adapters.national import NATIONAL_JSON, NATIONAL_XML, check_national
from adapters.national._validate import sniff_encoding
from schemas import Episode

from ..strategies import episodes

NATIONAL = Path(__file__).resolve().parent.parent / "fixtures" / "national"


def test_every_field_of_a_national_document_is_reported_mapped() -> None:
    data = (NATIONAL / "valid-episode.json").read_bytes()
    translation = NATIONAL_JSON.to_national(data)
    (episode,) = translation.episodes
    counts = translation.report.counts()
    assert counts[Fate.MAPPED] > 30
    assert counts[Fate.REJECTED] == counts[Fate.EXTENDED] == counts[Fate.TRANSFORMED] == 0
    locations = {f.location for f in translation.report.fields}
    assert "/child/identifiers/nhs_number" in locations
    assert "/consents/0/share_with/1/agency_type" in locations


def test_xml_report_locations_are_xpaths() -> None:
    translation = NATIONAL_XML.to_national((NATIONAL / "valid-episode.xml").read_bytes())
    locations = {f.location for f in translation.report.fields}
    assert "/episode/consents/consent[1]/given_by/giver[1]/role" in locations
    assert "/episode/child/identifiers/upn" in locations


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(episodes())
def test_national_json_and_xml_round_trip(episode: Episode) -> None:
    for adapter in (NATIONAL_JSON, NATIONAL_XML):
        data = adapter.from_national([episode])
        assert detect_adapter(data) is adapter
        (again,) = adapter.to_national(data).episodes
        assert again == episode


def test_json_array_rejects_bad_episodes_and_keeps_the_good() -> None:
    good = json.loads((NATIONAL / "valid-episode.json").read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(good))
    bad["child"]["identifiers"]["nhs_number"] = "9434765918"
    translation = NATIONAL_JSON.to_national(json.dumps([good, bad, "nonsense"]).encode())
    assert len(translation.episodes) == 1
    assert [r.location for r in translation.rejected] == ["/1", "/2"]
    assert translation.rejected[0].problems[0].pointer == "/1/child/identifiers/nhs_number"
    assert translation.rejected[0].problems[0].rule == "nhs_number.checksum"


def test_single_invalid_document_raises_with_every_problem() -> None:
    document = json.loads((NATIONAL / "valid-episode.json").read_text(encoding="utf-8"))
    document["state"] = "nope"
    document["child"]["gender"] = "?"
    with pytest.raises(AdapterError) as caught:
        NATIONAL_JSON.to_national(json.dumps(document).encode())
    assert caught.value.code == "schema_violation"
    assert {p.pointer for p in caught.value.problems} == {"/state", "/child/gender"}


def _wrongly_typed() -> dict[str, Any]:
    """The reviewer's document: each value of another JSON type than the schema's."""
    document: dict[str, Any] = json.loads((NATIONAL / "valid-episode.json").read_text("utf-8"))
    document["child"].update(interpreter_required="yes", date_of_birth=1254528000)
    document["assessments"][0]["version"] = "1"
    document["assessments"][0]["started_on"] = "2026-01-10T00:00:00"
    return document


def test_json_values_are_taken_only_in_their_json_type() -> None:
    """Once converted silently (`"yes"` -> True, a number -> a date) and reported `mapped`."""
    with pytest.raises(AdapterError) as caught:
        NATIONAL_JSON.to_national(json.dumps(_wrongly_typed()).encode())
    assert caught.value.code == "schema_violation"
    assert {(p.pointer, p.rule) for p in caught.value.problems} == {
        ("/child/interpreter_required", "bool_type"),
        ("/child/date_of_birth", "date_type"),
        ("/assessments/0/version", "int_type"),
        ("/assessments/0/started_on", "date_parsing"),
    }
    assert "yes" not in str(caught.value) and "1254528000" not in str(caught.value)


def test_a_wrongly_typed_episode_of_an_array_is_rejected_alone() -> None:
    good = json.loads((NATIONAL / "valid-episode.json").read_text(encoding="utf-8"))
    data = json.dumps([good, _wrongly_typed(), good]).encode()
    translation = NATIONAL_JSON.to_national(data)
    assert len(translation.episodes) == 2
    assert [r.location for r in translation.rejected] == ["/1"]
    assert {p.pointer for p in translation.rejected[0].problems} == {
        "/1/child/interpreter_required",
        "/1/child/date_of_birth",
        "/1/assessments/0/version",
        "/1/assessments/0/started_on",
    }


def test_dates_and_ids_are_read_from_their_json_strings_with_or_without_a_bom() -> None:
    data = (NATIONAL / "valid-episode.json").read_bytes()
    for document in (data, b"\xef\xbb\xbf" + data, b"[" + data + b"," + data + b"]"):
        translation = NATIONAL_JSON.to_national(document)
        assert translation.episodes and not translation.rejected
        assert translation.episodes[0].child.date_of_birth is not None


def test_national_xml_holds_one_episode() -> None:
    (episode,) = NATIONAL_JSON.to_national((NATIONAL / "valid-episode.json").read_bytes()).episodes
    with pytest.raises(AdapterError) as caught:
        NATIONAL_XML.from_national([episode, episode])
    assert caught.value.code == "unsupported_format"


def test_registry_names_and_unknown_format() -> None:
    assert {"national-json", "national-xml"} <= set(adapter_names())
    assert get_adapter("national-xml") is NATIONAL_XML
    with pytest.raises(AdapterError) as caught:
        get_adapter("word-document")
    assert caught.value.code == "unsupported_format"
    with pytest.raises(AdapterError):
        detect_adapter(b"%PDF-1.7 not a CAF form")


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(episodes(), st.integers(min_value=0, max_value=3))
def test_national_json_written_piece_by_piece_is_one_json_dump(episode: Episode, n: int) -> None:
    """`pieces` (what `cafx adapt` streams a register through) is `json.dumps(..., indent=2)` of
    the episode alone, or of the array of them, byte for byte."""
    many = [episode] * n
    values = [e.model_dump(mode="json") for e in many]
    document = values[0] if n == 1 else values
    expected = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    assert b"".join(NATIONAL_JSON.pieces(iter(many))) == expected
    assert NATIONAL_JSON.from_national(many) == expected


def _xml_of(fixture: str = "valid-episode.json") -> str:
    (episode,) = NATIONAL_JSON.to_national((NATIONAL / fixture).read_bytes()).episodes
    return NATIONAL_XML.from_national([episode]).decode()


def test_xml_text_around_a_comment_is_read_whole() -> None:
    """`element.text` ends at a comment: a name, a list item and an extension's string split by
    one must be read whole, not cut short with nothing said."""
    xml = _xml_of()
    (episode,) = NATIONAL_JSON.to_national((NATIONAL / "valid-episode.json").read_bytes()).episodes
    family = episode.child.family_name
    xml = xml.replace(
        f"<family_name>{family}</family_name>",
        f"<family_name>{family[:2]}<!-- checked -->{family[2:]}</family_name>",
    )
    xml = xml.replace("<extensions/>", "").replace(
        "</episode>",
        '<extensions><map key="f"><string key="k">ab<!--x-->cd</string>'
        '<array key="a"><string>e<!--y-->f</string></array></map></extensions></episode>',
    )
    assert "<!-- checked -->" in xml
    (read,) = NATIONAL_XML.to_national(xml.encode()).episodes
    assert read.child.family_name == family
    assert read.extensions == {"f": {"k": "abcd", "a": ["ef"]}}


def test_xml_dates_with_white_space_around_them_are_read() -> None:
    """The XSD takes `<date_of_birth> 2015-06-01 </date_of_birth>` (xs:date collapses white
    space), so the reader must too."""
    (episode,) = NATIONAL_JSON.to_national((NATIONAL / "valid-episode.json").read_bytes()).episodes
    born = episode.child.date_of_birth
    assert born is not None
    xml = _xml_of().replace(
        f"<date_of_birth>{born.isoformat()}</date_of_birth>",
        f"<date_of_birth>\n   {born.isoformat()}\n  </date_of_birth>",
    )
    assert "\n   " + born.isoformat() in xml
    (read,) = NATIONAL_XML.to_national(xml.encode()).episodes
    assert read.child.date_of_birth == born


def test_xml_extension_map_repeating_a_key_is_refused() -> None:
    xml = (
        _xml_of()
        .replace("<extensions/>", "")
        .replace(
            "</episode>",
            '<extensions><map key="f"><string key="k">first</string><number key="n">1</number>'
            '<string key="k">second</string></map></extensions></episode>',
        )
    )
    with pytest.raises(AdapterError) as caught:
        NATIONAL_XML.to_national(xml.encode())
    assert caught.value.code == "schema_violation"
    assert caught.value.location == "/episode/extensions/map/string[2]"
    assert "first" not in str(caught.value) and "second" not in str(caught.value)


def test_an_extension_member_name_xml_cannot_hold_is_a_located_error() -> None:
    (episode,) = NATIONAL_JSON.to_national((NATIONAL / "valid-episode.json").read_bytes()).episodes
    odd = episode.model_copy(update={"extensions": {"f": {"note\x01x": "y"}}})
    with pytest.raises(AdapterError) as caught:
        NATIONAL_XML.from_national([odd])
    assert caught.value.code == "schema_violation"
    assert caught.value.location == "/episode/extensions/map/string"


def test_utf16_national_xml_is_checked_as_xml() -> None:
    xml = _xml_of().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    data = xml.encode("utf-16")  # with its byte order mark
    assert sniff_encoding(data) == "xml"
    check = check_national(data)
    assert check.valid and len(check.episodes) == 1
