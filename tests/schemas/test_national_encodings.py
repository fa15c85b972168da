"""JSON <-> XML: lossless round trips, and the JSON Schema and XSD agreeing with the models."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from adapters.national import check_national
from adapters.national._xml import decode, encode
from schemas import Episode, EpisodeInvalid, validate_episode
from schemas._xml_schema import build_xsd, episode_json_schema, shipped_xsd

from ..strategies import episode_documents
from .test_models import CASES, _set, valid_document

XSD = etree.XMLSchema(etree.fromstring(shipped_xsd().encode()))
JSON_SCHEMA = jsonschema.Draft202012Validator(
    episode_json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def test_shipped_xsd_is_generated_from_the_models() -> None:
    assert shipped_xsd() == build_xsd(), (
        "run: cafx schema export --format xsd --out schemas/caf-episode-1.xsd"
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(episode_documents())
def test_json_model_xml_model_round_trip(document: dict[str, Any]) -> None:
    episode = Episode.model_validate(document)
    as_json = episode.model_dump(mode="json")
    assert JSON_SCHEMA.is_valid(as_json), list(JSON_SCHEMA.iter_errors(as_json))[:1]
    xml = encode(as_json)
    root = etree.fromstring(xml)
    assert XSD.validate(root), XSD.error_log.last_error
    again = Episode.model_validate(decode(root))
    assert again == episode
    assert again.model_dump(mode="json") == as_json


# Structural faults: the models, the JSON Schema and the XSD must all reject these.
STRUCTURAL = [
    c
    for c in CASES
    if not c[3].startswith(("dates.", "state.", "agency_ref.")) and "checksum" not in c[3]
]
# Checks no schema language here can state (check digits, dates compared with each other or today):
# the models reject them; JSON Schema and XSD accept. `cafx validate` runs both, so it catches them.
SEMANTIC = [c for c in CASES if c not in STRUCTURAL]


def _xsd_accepts(document: dict[str, Any]) -> bool:
    return bool(XSD.validate(etree.fromstring(encode(document))))


@pytest.mark.parametrize(
    ("path", "value", "where", "rule"), STRUCTURAL, ids=[c[3] for c in STRUCTURAL]
)
def test_structural_faults_rejected_by_all_three(
    path: tuple[str | int, ...], value: Any, where: Any, rule: str
) -> None:
    document = _set(valid_document(), path, value)
    with pytest.raises(EpisodeInvalid):
        validate_episode(document)
    assert not JSON_SCHEMA.is_valid(document)
    assert not _xsd_accepts(document)


@pytest.mark.parametrize(("path", "value", "where", "rule"), SEMANTIC, ids=[c[3] for c in SEMANTIC])
def test_semantic_faults_rejected_by_models_only(
    path: tuple[str | int, ...], value: Any, where: Any, rule: str
) -> None:
    document = _set(valid_document(), path, value)
    with pytest.raises(EpisodeInvalid):
        validate_episode(document)
    assert JSON_SCHEMA.is_valid(document)
    assert _xsd_accepts(document)


def test_valid_document_accepted_by_all_three() -> None:
    document = valid_document()
    validate_episode(document)
    assert JSON_SCHEMA.is_valid(document)
    assert _xsd_accepts(document)
    check = check_national(json.dumps(document).encode(), "json")  # dates, UUIDs: strings
    assert check.valid and len(check.episodes) == 1


# Values of another JSON type than the JSON Schema's, which pydantic's lax (Python) validation
# converted, and national JSON once took as `mapped`: refused by the JSON Schema and the models
# alike. (XML has no JSON types: `1` and `false` are an xs:boolean's own spellings there.)
WRONG_TYPES: list[tuple[tuple[str | int, ...], Any, str]] = [
    (("child", "interpreter_required"), "yes", "bool_type"),
    (("child", "interpreter_required"), 1, "bool_type"),
    (("consents", 0, "storage_agreed"), "false", "bool_type"),
    (("child", "date_of_birth"), 1254528000, "date_type"),
    (("child", "date_of_birth"), "2009-10-03T00:00:00", "date_parsing"),
    (("assessments", 0, "version"), "1", "int_type"),
    (("assessments", 0, "version"), True, "int_type"),
    (("source", "received_at"), 1772443800, "datetime_type"),
]


@pytest.mark.parametrize(
    ("path", "value", "rule"), WRONG_TYPES, ids=[f"{c[0][-1]}={c[1]!r}" for c in WRONG_TYPES]
)
def test_values_of_the_wrong_json_type_are_rejected_reading_json(
    path: tuple[str | int, ...], value: Any, rule: str
) -> None:
    document = _set(valid_document(), path, value)
    Episode.model_validate(document)  # what lax validation converts
    assert not JSON_SCHEMA.is_valid(document)
    check = check_national(json.dumps(document).encode(), "json")
    assert [(p.path, p.rule) for p in check.problems] == [(path, rule)]
    assert check.episodes == []


def test_extensions_keep_every_json_value() -> None:
    document = valid_document()
    document["extensions"] = {"x": {"n": [1, -2.5, 1e300, None, True, False, "", {"": {"k": []}}]}}
    episode = Episode.model_validate(document)
    again = Episode.model_validate(
        decode(etree.fromstring(encode(episode.model_dump(mode="json"))))
    )
    assert again.extensions == document["extensions"]
    assert json.dumps(again.extensions) == json.dumps(document["extensions"])


def test_xml_text_survives_carriage_returns_and_markup() -> None:
    document = copy.deepcopy(valid_document())
    document["assessments"][0]["reason"] = "line one\r\nline two <b>&amp;</b> ]]> \t "
    episode = Episode.model_validate(document)
    again = Episode.model_validate(
        decode(etree.fromstring(encode(episode.model_dump(mode="json"))))
    )
    assert again.assessments[0].reason == document["assessments"][0]["reason"]


@pytest.mark.parametrize("number", [".5", "+1", "1.", "INF", "01"])
def test_xsd_takes_an_extension_number_only_as_json_writes_it(number: str) -> None:
    """`xs:double` alone takes these; the reader (JSON's own number syntax) does not."""
    document = valid_document()
    document["extensions"] = {"x": {"n": 1}}
    xml = (
        encode(document)
        .decode()
        .replace('<number key="n">1</number>', f'<number key="n">{number}</number>')
    )
    assert f">{number}<" in xml
    assert not XSD.validate(etree.fromstring(xml.encode()))
    assert XSD.validate(etree.fromstring(encode(document)))
