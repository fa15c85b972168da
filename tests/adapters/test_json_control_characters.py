"""Texts in JSON (eha-json, national-json) the node could not write out again: refused where the
JSON is read.

Before, they were taken, and failed later: writing national XML or eCAF (XML 1.0 cannot hold C0 but
tab, LF and CR, nor U+FFFE and U+FFFF) exited 2, a register holding them was rejected row by row
when read back (DEL too), and a text longer than an XML text may be was written and could not be
read back. Now the document (or, in a national array, the episode) is refused at once, at the JSON
pointer of the text (`text.control_characters`, `text.noncharacter`, `text.too_long`), never
quoting it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import AdapterError, detect_adapter, get_adapter
from adapters._safe import (
    CONTROL_CHARACTERS,
    MAX_TEXT_CHARS,
    NONCHARACTERS,
    TOO_LONG,
    json_text_problems,
    parse_json,
)

from .facts import EXAMPLES

EHA = get_adapter("eha-json")
NATIONAL_JSON = get_adapter("national-json")
EHA_DOCUMENT: dict[str, Any] = json.loads(
    (EXAMPLES / "eha-json" / "eha-json-101-0.json").read_text(encoding="utf-8")
)
NATIONAL_DOCUMENT: dict[str, Any] = json.loads(
    (EXAMPLES.parent / "national" / "valid-episode.json").read_text(encoding="utf-8")
)
REFUSED = [chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]


def _found(data: bytes) -> list[tuple[str, str]]:
    return [(p.pointer, p.rule) for p in json_text_problems(data, parse_json(data))]


@pytest.mark.parametrize("character", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "as written"])
def test_each_control_character_is_found_at_its_pointer(character: str, ascii_only: bool) -> None:
    # json.dumps writes `\u0001`, `\b`, `\f`; DEL it writes raw unless ascii_only.
    data = json.dumps({"a": [{"b/c": f"x{character}y"}]}, ensure_ascii=ascii_only).encode()
    assert _found(data) == [("/a/0/b~1c", CONTROL_CHARACTERS)]


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "tab\\there, line\\nand return\\r, \\u0009 \\u000a \\u000D"}',
        b'{"a": "C:\\\\bin\\\\fonts \\\\u0001"}',  # escaped backslashes: the text is `\b`, `\u0001`
        b'{"a": "NEL \\u0085, CSI \\u009b: C1, which XML holds"}',
        b'{"a": "\xc3\xa9 \\u00e9"}',
    ],
    ids=["tab LF CR", "escaped backslashes", "C1", "letters"],
)
def test_what_xml_holds_is_not_found(data: bytes) -> None:
    assert _found(data) == []


def test_a_member_name_is_located_at_its_object_and_every_text_is_found() -> None:
    data = b'{"ok": "fine", "x": {"bad\\u0001name": "v"}, "y": ["\\b", "z", "\\f"]}'
    assert _found(data) == [
        ("/x", CONTROL_CHARACTERS),
        ("/y/0", CONTROL_CHARACTERS),
        ("/y/2", CONTROL_CHARACTERS),
    ]


def _eha(**changes: Any) -> bytes:
    return json.dumps({**EHA_DOCUMENT, **changes}).encode()


def test_an_eha_document_holding_one_is_refused_where_it_is() -> None:
    family = json.loads(json.dumps(EHA_DOCUMENT["family"]))
    family["members"][0]["firstName"] = "Ke\u0001ira"
    data = _eha(family=family, reason="a\x00b")
    assert detect_adapter(data) is EHA  # well-formed, and its format: rejected, not unusable
    with pytest.raises(AdapterError) as caught:
        EHA.to_national(data)
    error = caught.value
    assert (error.code, error.location) == ("schema_violation", "/family/members/0/firstName")
    assert [(p.pointer, p.rule) for p in error.problems] == [
        ("/family/members/0/firstName", CONTROL_CHARACTERS),
        ("/reason", CONTROL_CHARACTERS),
    ]
    assert "Ke" not in str(error) and "ira" not in str(error)


def test_a_single_national_document_holding_one_is_refused() -> None:
    document = json.loads(json.dumps(NATIONAL_DOCUMENT))
    document["child"]["given_names"] = "Le\u0001ah"
    data = json.dumps(document).encode()
    assert detect_adapter(data) is NATIONAL_JSON
    with pytest.raises(AdapterError) as caught:
        NATIONAL_JSON.to_national(data)
    assert caught.value.location == "/child/given_names"
    assert [(p.pointer, p.rule) for p in caught.value.problems] == [
        ("/child/given_names", CONTROL_CHARACTERS)
    ]


def test_an_episode_of_a_national_array_holding_one_is_rejected_alone() -> None:
    bad = json.loads(json.dumps(NATIONAL_DOCUMENT))
    bad["child"]["family_name"] = "Cos\u007fta"
    translation = NATIONAL_JSON.to_national(json.dumps([NATIONAL_DOCUMENT, bad]).encode())
    assert len(translation.episodes) == 1
    [rejection] = translation.rejected
    assert rejection.location == "/1"
    assert [(p.pointer, p.rule) for p in rejection.problems] == [
        ("/1/child/family_name", CONTROL_CHARACTERS)
    ]


_TEXTS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)


@given(_TEXTS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_what_is_read_can_be_written_everywhere(reason: str) -> None:
    """A text is refused exactly when it holds a control character or a noncharacter; one that is
    taken can be written as national XML, eCAF and a register, and the register reads it back."""
    data = _eha(reason=reason, assessmentId=f"EHA-{reason}")
    if any(c in REFUSED or c in "\ufffe\uffff" for c in reason):
        with pytest.raises(AdapterError) as caught:
            EHA.to_national(data)
        assert {p.pointer for p in caught.value.problems} == {"/reason", "/assessmentId"}
        return
    episodes = EHA.to_national(data).episodes
    for episode in episodes:
        for name in ("national-xml", "ecaf-xml-v3"):
            assert get_adapter(name).from_national([episode])
    register = get_adapter("caf-register-csv")
    assert register.to_national(register.from_national(episodes)).rejected == []


@pytest.mark.parametrize("written", ["\ufffe", "\uffff"], ids=["FFFE", "FFFF"])
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "as written"])
def test_a_noncharacter_is_found_at_its_pointer(written: str, ascii_only: bool) -> None:
    data = json.dumps({"a": {"b": f"x{written}y"}}, ensure_ascii=ascii_only).encode()
    assert _found(data) == [("/a/b", NONCHARACTERS)]


def test_a_text_longer_than_an_xml_text_is_refused_and_one_as_long_is_not() -> None:
    at_most = json.dumps({"a": "x" * MAX_TEXT_CHARS, "b": "é" * MAX_TEXT_CHARS}).encode()
    assert _found(at_most) == []
    longer = json.dumps({"a": ["x" * (MAX_TEXT_CHARS + 1)]}).encode()
    assert _found(longer) == [("/a/0", TOO_LONG)]
    data = _eha(reason="x" * (MAX_TEXT_CHARS + 1))  # was translated, then unreadable as XML
    with pytest.raises(AdapterError) as caught:
        EHA.to_national(data)
    assert [(p.pointer, p.rule) for p in caught.value.problems] == [("/reason", TOO_LONG)]
