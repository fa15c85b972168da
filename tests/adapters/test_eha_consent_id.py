"""The consent statement an EHA document yields is named after its assessment, "<assessmentId>:consent";
the id is kept in plain columns and sent to other members, so it never holds a control character
and always fits (1 to 200 characters), however the assessment id is written. Such a document is
translated, not refused, and comes back out unchanged; unless the id holds a control character that
any text of an EHA document is refused for (C0 but tab, LF and CR, or DEL: `text.control_characters`,
tests/adapters/test_json_control_characters.py). C1 controls are left out of the name."""

from __future__ import annotations

import json

import pytest

from adapters import get_adapter
from schemas import CONSENT_ID_MAX

from .facts import EXAMPLES

ADAPTER = get_adapter("eha-json")
FAMILY = json.loads((EXAMPLES / "eha-json" / "eha-json-101-0.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("assessment_id", "expected"),
    [
        ("EHA-1\x9b31m", "EHA-131m:consent"),  # an escape sequence's control character left out
        ("EHA\x80-2\u0085", "EHA-2:consent"),  # C1 controls
        ("\t\n", f"{FAMILY['family']['familyRef']}:consent"),  # nothing left: the family's
        ("E" * 300, "E" * (CONSENT_ID_MAX - len(":consent")) + ":consent"),
    ],
)
def test_the_statement_id_is_clean_and_fits(assessment_id: str, expected: str) -> None:
    document = {**FAMILY, "assessmentId": assessment_id}
    data = json.dumps(document).encode()
    translation = ADAPTER.to_national(data)
    assert translation.episodes, translation.rejected
    assert {c.consent_id for e in translation.episodes for c in e.consents} == {expected}
    assert json.loads(ADAPTER.from_national(translation.episodes))["assessmentId"] == assessment_id
