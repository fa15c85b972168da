"""Review 2 of `cafx adapt`'s detection: national JSON without its `schema` member (taken by the
members the schema requires, at the top level only), national JSON too large to parse (said to be
too large, never "not recognised" nor EHA), and an EHA assessmentId of control characters only
(the consent statement is named after the family instead)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters import AdapterError, detect_adapter, get_adapter
from adapters._safe import MAX_DOCUMENT_BYTES, XML_SNIFF_BYTES
from adapters.eha_json import _MARKERS
from adapters.national import _OWN_MEMBERS
from schemas import Episode

from .facts import EXAMPLES

ECAF = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-102-0.xml").read_bytes()
EHA_DOC = (EXAMPLES / "eha-json" / "eha-json-101-0.json").read_bytes()
NATIONAL = get_adapter("national-json")
EHA = get_adapter("eha-json")


def _episode() -> Episode:
    return get_adapter("ecaf-xml-v3").to_national(ECAF).episodes[0]


def _without_schema(episode: Episode) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(NATIONAL.from_national([episode]))
    del doc["schema"]
    return doc


# -- finding 4: national JSON without `schema` ----------------------------------------------------


def test_the_members_taken_are_those_the_published_schema_requires() -> None:
    assert set(_OWN_MEMBERS) == set(Episode.model_json_schema()["required"])


@pytest.mark.parametrize("many", [False, True])
def test_national_json_without_schema_is_detected_and_read(many: bool) -> None:
    doc = _without_schema(_episode())
    data = json.dumps([doc, doc] if many else doc, sort_keys=True).encode()
    assert b"caf-episode" not in data
    assert detect_adapter(data).name == "national-json"
    assert not EHA.detect(data)
    assert NATIONAL.to_national(data).episodes


def test_national_json_without_schema_naming_eha_keys_is_not_taken_for_eha() -> None:
    """Extensions may name familyRef, assessmentId...: the EHA markers are in its head, and EHA's
    detection defers to the national one."""
    episode = EHA.to_national(EHA_DOC).episodes[0]
    local = {"familyRef": "F-1", "assessmentId": "A-1", "personRef": "P1"}
    episode = episode.model_copy(update={"extensions": {**episode.extensions, "local": local}})
    data = json.dumps(_without_schema(episode)).encode()
    assert sum(marker in data[:65536] for marker in _MARKERS) >= 2
    assert detect_adapter(data).name == "national-json"
    assert not EHA.detect(data)


def test_required_members_deeper_in_or_in_part_do_not_make_national_json() -> None:
    members = dict.fromkeys(_OWN_MEMBERS, "x")
    eha = json.loads(EHA_DOC)
    nested = json.dumps({"customFields": members, **eha}).encode()
    assert detect_adapter(nested).name == "eha-json"
    assert not NATIONAL.detect(nested)
    doc = _without_schema(_episode())
    del doc["child"]
    assert not NATIONAL.detect(json.dumps(doc).encode())
    assert not NATIONAL.detect(json.dumps({"schema": "caf-episode/2", **members}).encode())


def test_every_eha_example_is_eha() -> None:
    for path in sorted((EXAMPLES / "eha-json").glob("eha-json-*[0-9].json")):
        data = path.read_bytes()
        assert not NATIONAL.detect(data), path.name
        assert detect_adapter(data).name == "eha-json", path.name


# -- finding 5: national JSON too large to parse ---------------------------------------------------


def _too_large(episodes: list[Episode]) -> bytes:
    data = NATIONAL.from_national(episodes)
    assert len(data) > MAX_DOCUMENT_BYTES
    return data


def test_a_national_array_too_large_is_national_and_refused_as_too_large() -> None:
    episode = _episode()
    size = len(NATIONAL.from_national([episode]))
    data = _too_large([episode] * (MAX_DOCUMENT_BYTES // size + 2))
    assert detect_adapter(data).name == "national-json"
    with pytest.raises(AdapterError) as caught:
        NATIONAL.to_national(data)
    assert caught.value.code == "payload_too_large"


def test_a_national_object_too_large_with_eha_extensions_is_not_eha() -> None:
    episode = EHA.to_national(EHA_DOC).episodes[0]
    local = {"familyRef": "F-1", "assessmentId": "A-1"}
    pad = {"pad": "x" * MAX_DOCUMENT_BYTES}
    padded = episode.model_copy(
        update={"extensions": {**episode.extensions, "local": local, "zz": pad}}
    )
    data = _too_large([padded])
    head = data[:XML_SNIFF_BYTES]
    assert sum(marker in head for marker in _MARKERS) >= 2
    assert not EHA.detect(data)
    assert detect_adapter(data).name == "national-json"


def test_json_too_large_that_does_not_begin_as_national_is_not_taken() -> None:
    pad = "x" * MAX_DOCUMENT_BYTES
    for doc in (
        {"pad": pad, "schema": "caf-episode/1"},
        {"x": {"schema": "caf-episode/1"}, "p": pad},
    ):
        assert not NATIONAL.detect(json.dumps(doc).encode())


# -- finding 9: an assessmentId of control characters only ----------------------------------------


# C1 controls and white space only (C0 controls refuse the document: `text.control_characters`).
@pytest.mark.parametrize("assessment_id", ["\x85", "\x85\x9b", " \x80\t\x9f "])
def test_an_assessment_id_of_control_characters_only_gives_the_family_ref(
    assessment_id: str,
) -> None:
    family = json.loads(EHA_DOC)
    data = json.dumps({**family, "assessmentId": assessment_id}).encode()
    translation = EHA.to_national(data)
    assert translation.episodes, translation.rejected
    expected = f"{family['family']['familyRef']}:consent"
    assert {c.consent_id for e in translation.episodes for c in e.consents} == {expected}


def test_with_no_family_ref_either_the_format_names_the_statement() -> None:
    family = json.loads(EHA_DOC)
    del family["family"]["familyRef"]
    data = json.dumps({**family, "assessmentId": "\x85"}).encode()
    translation = EHA.to_national(data)
    assert {c.consent_id for e in translation.episodes for c in e.consents} == {"eha-json:consent"}
