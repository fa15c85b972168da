"""Review of `cafx adapt` and the registry: detection by structure (the national JSON's top-level
`schema`, the closing summary's root element, a root after a long comment), and an EHA document
that never holds children of different families."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters import AdapterError, detect_adapter, get_adapter
from adapters._safe import XML_SNIFF_BYTES
from adapters.eha_json import ADAPTER as EHA
from schemas import Episode

from .facts import EXAMPLES

ECAF = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-102-0.xml").read_bytes()
CSC = (EXAMPLES / "csc-closure-xml" / "csc-closure-xml-101-0.xml").read_bytes()
EHA_DOC = (EXAMPLES / "eha-json" / "eha-json-101-0.json").read_bytes()
REGISTER = (EXAMPLES / "caf-register-csv" / "register-101.csv").read_bytes()


def _national(episode: Episode) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(get_adapter("national-json").from_national([episode]))
    return value


def _eha_with(custom: dict[str, Any]) -> bytes:
    """The EHA example with `customFields` as its first member (within the first bytes)."""
    doc = json.loads(EHA_DOC)
    return json.dumps({"customFields": custom, **doc}).encode()


# -- finding 6: national JSON by its top-level schema member -------------------------------------


def test_national_json_with_sorted_keys_is_detected() -> None:
    """`json.dumps(sort_keys=True)` puts `assessments` first: `schema` is far past 4 KB."""
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    data = json.dumps(_national(episode), sort_keys=True, indent=2).encode()
    assert data.index(b'"schema"') > 4096
    assert detect_adapter(data).name == "national-json"
    many = json.dumps([_national(episode)] * 2, sort_keys=True).encode()
    assert detect_adapter(many).name == "national-json"


def test_national_json_with_escaped_slashes_is_detected() -> None:
    """Some encoders (PHP's json_encode) write "/" as "\\/": the same string."""
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    data = get_adapter("national-json").from_national([episode]).replace(b"/", b"\\/")
    assert b'"caf-episode\\/1"' in data
    assert detect_adapter(data).name == "national-json"


def test_an_episode_id_member_deeper_in_is_not_national() -> None:
    data = _eha_with({"episode_id": "LEGACY-77", "schema": "caf-episode/1"})
    assert data.index(b'"episode_id"') < 100
    assert detect_adapter(data).name == "eha-json"
    assert not get_adapter("national-json").detect(data)
    assert get_adapter("eha-json").to_national(data).episodes


def test_national_json_without_schema_is_detected_by_its_required_members() -> None:
    """The published JSON Schema does not require `schema`; the members it requires say it. A
    top-level `episode_id` alone does not."""
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    doc = _national(episode)
    del doc["schema"]
    data = json.dumps(doc).encode()
    assert get_adapter("national-json").detect(data)
    assert get_adapter("national-json").to_national(data).episodes
    assert not get_adapter("national-json").detect(json.dumps({"episode_id": "x"}).encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"schema": "caf-episode/2"}', b"[1]", b'{"schema": "caf-episode/1"'],
)
def test_not_national_json(data: bytes) -> None:
    assert not get_adapter("national-json").detect(data)


# -- finding 7: the closing summary by its root element -------------------------------------------


def test_an_eha_document_that_mentions_a_closing_summary_is_eha() -> None:
    data = _eha_with({"imported_from": "ClosingSummary urn:x-csc:ics:closure:1"})
    assert not get_adapter("csc-closure-xml").detect(data)
    assert detect_adapter(data).name == "eha-json"


def test_a_closing_summary_in_a_comment_is_not_one() -> None:
    data = b'<!-- <ClosingSummary xmlns="urn:x-csc:ics:closure:1"> --><r/>'
    assert not get_adapter("csc-closure-xml").detect(data)
    assert get_adapter("csc-closure-xml").detect(CSC)


# -- finding 8: a root after a long comment -------------------------------------------------------


def _after(data: bytes, prologue: bytes) -> bytes:
    declaration, rest = data.split(b"?>", 1)
    return declaration + b"?>" + prologue + rest


@pytest.mark.parametrize(
    ("data", "name"),
    [(ECAF, "ecaf-xml-v3"), (CSC, "csc-closure-xml")],
    ids=["ecaf", "csc"],
)
def test_a_root_after_a_long_comment_is_detected(data: bytes, name: str) -> None:
    licence = b"\n<!-- " + b"Licensed under the Open Government Licence. " * 120 + b"-->\n"
    prologue = licence + b'<?xml-stylesheet type="text/xsl" href="x.xsl"?>\n' + licence
    assert len(prologue) > 10_000
    assert detect_adapter(_after(data, prologue)).name == name
    # Bounded: a root that starts past the sniff is not looked for.
    far = b"<!-- " + b"x" * XML_SNIFF_BYTES + b" -->"
    with pytest.raises(AdapterError) as caught:
        detect_adapter(_after(data, far))
    assert caught.value.code == "unsupported_format"


def test_national_xml_after_a_long_comment_is_detected() -> None:
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]
    data = get_adapter("national-xml").from_national([episode])
    comment = b"<!-- " + b"export header " * 500 + b"-->"
    assert detect_adapter(_after(data, comment)).name == "national-xml"


def test_the_examples_are_still_detected_as_their_format() -> None:
    for folder in ("ecaf-xml-v3", "csc-closure-xml", "eha-json", "caf-register-csv"):
        for path in (EXAMPLES / folder).iterdir():
            if not path.name.endswith(".facts.json"):
                assert detect_adapter(path.read_bytes()).name == folder, path.name


# -- finding 1: one EHA document holds one family -------------------------------------------------


def test_episodes_without_a_family_are_not_merged_into_one_family() -> None:
    """Three unrelated children of a register were written as siblings P1-P3 of one family."""
    rows = get_adapter("caf-register-csv").to_national(REGISTER).episodes
    assert len(rows) == 3 and {e.family_ref for e in rows} == {None}
    with pytest.raises(AdapterError) as caught:
        EHA.from_national(rows)
    assert caught.value.code == "schema_violation"
    assert caught.value.location == "/family/familyRef"
    assert "Mensah" not in str(caught.value)
    with pytest.raises(AdapterError):
        EHA.write(rows[:2])
    (member,) = json.loads(EHA.from_national(rows[:1]))["family"]["members"]
    assert member["role"] == "CHILD"


def test_episodes_of_different_families_are_still_refused() -> None:
    one = EHA.to_national(EHA_DOC).episodes
    other = EHA.to_national((EXAMPLES / "eha-json" / "eha-json-102-0.json").read_bytes()).episodes
    with pytest.raises(AdapterError) as caught:
        EHA.from_national([*one, *other])
    assert caught.value.location == "/family/familyRef"


def test_a_family_without_a_family_ref_read_from_one_document_is_written_whole() -> None:
    doc = json.loads(EHA_DOC)
    doc["family"].pop("familyRef", None)
    read = EHA.to_national(json.dumps(doc).encode()).episodes
    assert len(read) == 3 and {e.family_ref for e in read} == {None}
    assert json.loads(EHA.from_national(read)) == doc
    # ... also after a national round trip (the extensions are equal, no longer the same object)
    national = get_adapter("national-json")
    again = national.to_national(national.from_national(read)).episodes
    assert json.loads(EHA.from_national(again)) == doc
    # Two copies of one child, or the family's extensions changed in one episode: not one family.
    with pytest.raises(AdapterError):
        EHA.from_national([read[0], read[0]])
    changed = read[1].model_copy(
        update={"extensions": {"eha-json": {**read[1].extensions["eha-json"], "family": {}}}}
    )
    with pytest.raises(AdapterError):
        EHA.from_national([read[0], changed])


def test_children_of_one_family_with_different_authorities_keep_the_documented_rule() -> None:
    """Same family_ref: not refused; the copy changed on the national side wins, with a warning
    (`_shared`: family_part.edited_copy)."""
    read = EHA.to_national(EHA_DOC).episodes
    moved = read[1].model_copy(update={"home_authority": "E09000001"})
    written = EHA.write([read[0], moved, read[2]])
    assert json.loads(written.data)["authority"] == "E09000001"
    assert [w.rule for w in written.warnings] == ["family_part.edited_copy"]


def _from_every_format() -> list[Episode]:
    found: list[Episode] = []
    for folder in ("ecaf-xml-v3", "csc-closure-xml", "caf-register-csv"):
        for path in sorted((EXAMPLES / folder).iterdir()):
            if not path.name.endswith(".facts.json"):
                found += get_adapter(folder).to_national(path.read_bytes()).episodes
    return found


@pytest.mark.parametrize("count", [1, 2, 3])
def test_episodes_from_elsewhere_given_one_family_ref_are_written_and_round_trip(
    count: int,
) -> None:
    """What `test_episodes_from_anywhere_can_be_written_and_then_round_trip` checks, with a
    family_ref that says the episodes are one family (its strategy draws none)."""
    episodes = _from_every_format()[2 : 2 + count]
    family = [e.model_copy(update={"family_ref": "FAM-1"}) for e in episodes]
    written = EHA.from_national(family)
    again = EHA.to_national(written)
    assert len(again.episodes) == count
    assert json.loads(EHA.from_national(again.episodes)) == json.loads(written)
    if count > 1:
        with pytest.raises(AdapterError):
            EHA.from_national(episodes)  # no family_ref: not known to be one family
