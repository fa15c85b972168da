"""Review 2, finding 3: the documented 200 body of `GET /episodes/{episode_id}` holds a national
Episode or (with `?format=eha-json`) an EHA family document, and nothing else: a national episode
with a field missing or mistyped is no longer passed as "some EHA object", while every EHA document
the adapter writes (read from an EHA example, or from any other format's example) still conforms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapters import get_adapter
from gateway.api import openapi_document
from schemas import Episode

from ..adapters.facts import EXAMPLES

FORMATS = {
    "eha-json": ".json",
    "ecaf-xml-v3": ".xml",
    "caf-register-csv": ".csv",
    "csc-closure-xml": ".xml",
}
SAMPLES = [
    path
    for name, suffix in FORMATS.items()
    for path in sorted((EXAMPLES / name).glob(f"*{suffix}"))
    if not path.name.endswith(".facts.json")
]


def validator() -> jsonschema.Draft202012Validator:
    document = openapi_document()
    operation = document["paths"]["/episodes/{episode_id}"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def episodes(path: Path) -> list[Episode]:
    translation = get_adapter(path.parent.name).to_national(path.read_bytes())
    assert translation.episodes, path.name
    return translation.episodes


def problems(body: Any) -> list[str]:
    return [error.message[:120] for error in validator().iter_errors(body)]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_national_episodes_and_the_eha_documents_written_from_them_conform(path: Path) -> None:
    for episode in episodes(path):
        national = episode.model_dump(mode="json")
        assert problems(national) == []
        # What the node sends for ?format=eha-json: one episode written on its own.
        eha = json.loads(get_adapter("eha-json").from_national([episode]))
        assert problems(eha) == []


def test_an_eha_document_read_and_written_back_conforms() -> None:
    for path in (EXAMPLES / "eha-json").glob("*.json"):
        if path.name.endswith(".facts.json"):
            continue
        written = json.loads(get_adapter("eha-json").from_national(episodes(path)))
        assert problems(written) == [], path.name


def test_a_national_episode_missing_or_mistyping_a_field_does_not_pass_as_eha() -> None:
    national = episodes(EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-1.xml")[0]
    body = national.model_dump(mode="json")
    assert problems({"episode_id": 5, "child": "garbage"}) != []
    assert problems({}) != []
    for field in ("episode_id", "home_authority", "state", "child"):
        assert field in body
        assert problems({k: v for k, v in body.items() if k != field}) != [], field
    assert problems({**body, "child": "garbage"}) != []
    assert problems({**body, "episode_id": 5}) != []


def test_an_eha_document_missing_what_every_one_has_does_not_conform() -> None:
    path = EXAMPLES / "eha-json" / "eha-json-101-0.json"
    written = json.loads(get_adapter("eha-json").from_national(episodes(path)))
    for field in ("authority", "status", "family"):
        assert problems({k: v for k, v in written.items() if k != field}) != [], field
    assert problems({**written, "family": {**written["family"], "members": []}}) != []
