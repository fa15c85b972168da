"""The models' rules: each failure names the field and the rule, and never the value."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from schemas import Episode, EpisodeInvalid, london_today, problems_from, validate_episode

VALID = Path(__file__).resolve().parent.parent / "fixtures" / "national" / "valid-episode.json"


def valid_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(VALID.read_text(encoding="utf-8"))
    return document


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()
TOMORROW = (london_today() + dt.timedelta(days=1)).isoformat()

# (path, new value, where the error must be, rule)
CASES: list[tuple[tuple[str | int, ...], Any, tuple[str | int, ...], str]] = [
    (
        ("child", "identifiers", "nhs_number"),
        "9434765918",
        ("child", "identifiers", "nhs_number"),
        "nhs_number.checksum",
    ),
    (
        ("child", "identifiers", "nhs_number"),
        "943 476 5919",
        ("child", "identifiers", "nhs_number"),
        "nhs_number.not_normalised",
    ),
    (
        ("child", "identifiers", "upn"),
        "R247962919251",
        ("child", "identifiers", "upn"),
        "upn.checksum",
    ),
    (
        ("child", "identifiers", "uln"),
        "1234567890",
        ("child", "identifiers", "uln"),
        "uln.checksum",
    ),
    (
        ("child", "address", "postcode"),
        "not a postcode",
        ("child", "address", "postcode"),
        "postcode.format",
    ),
    (("home_authority",), "Camden", ("home_authority",), "gss_code.format"),
    (("child", "date_of_birth"), TOMORROW, ("child", "date_of_birth"), "dates.birth_in_future"),
    (
        ("child", "expected_date_of_delivery"),
        "2026-12-01",
        ("child", "expected_date_of_delivery"),
        "dates.birth_and_expected_delivery",
    ),
    (
        ("assessments", 0, "completed_on"),
        "2026-02-01",
        ("assessments", 0, "completed_on"),
        "dates.completed_before_started",
    ),
    (
        ("consents", 0, "withdrawn_on"),
        "2026-01-01",
        ("consents", 0, "withdrawn_on"),
        "dates.before_consent_given",
    ),
    (("consents", 0, "given_on"), TOMORROW, ("consents", 0, "given_on"), "dates.consent_in_future"),
    (("consents", 0, "given_by"), [], ("consents", 0, "given_by"), "too_short"),
    (("consents", 0, "share_with"), [{}], ("consents", 0, "share_with", 0), "agency_ref.empty"),
    (
        ("closure",),
        {"closed_on": "2026-03-01", "outcome": "resolved_family"},
        ("closure",),
        "state.closure_without_closed_state",
    ),
    (("state",), "pending", ("state",), "enum"),
    (("child", "gender"), "M", ("child", "gender"), "enum"),
    (("child", "given_names"), "", ("child", "given_names"), "string_too_short"),
    (("child", "favourite_colour"), "blue", ("child", "favourite_colour"), "extra_forbidden"),
    (("source", "received_at"), "2026-03-02T09:30:00", ("source", "received_at"), "timezone_aware"),
    (("schema",), "caf-episode/2", ("schema",), "literal_error"),
    (
        ("source", "received_at"),
        "2026-03-02T09:30:00+15:00",  # XML Schema's dateTime allows 14 hours at most
        ("source", "received_at"),
        "datetime.offset_out_of_range",
    ),
    (("consents", 0, "consent_id"), "c" * 201, ("consents", 0, "consent_id"), "string_too_long"),
    (("source", "format"), "f" * 33, ("source", "format"), "string_too_long"),
    (("episode_id",), "12345678-12341234-1234-123456781234", ("episode_id",), "uuid_parsing"),
    (("extensions",), {"x": "not an object"}, ("extensions", "x"), "dict_type"),
    (("child",), _DELETE, ("child",), "missing"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "rule"),
    CASES,
    ids=[c[3] + ":" + "/".join(map(str, c[0])) for c in CASES],
)
def test_rule_named_at_field(
    path: tuple[str | int, ...], value: Any, where: tuple[str | int, ...], rule: str
) -> None:
    document = _set(valid_document(), path, value)
    with pytest.raises(EpisodeInvalid) as caught:
        validate_episode(document)
    found = [(p.path, p.rule) for p in caught.value.problems]
    assert (where, rule) in found
    # No personal data in the error: nothing of the document's values appears in its text.
    for secret in (
        "9434765918",
        "943 476 5919",
        "R247962919251",
        "Maya",
        "Testchild",
        "2015-06-01",
    ):
        assert secret not in str(caught.value)


def test_valid_document_and_postcode_normalised_with_warning_only_when_not_strict() -> None:
    validated = validate_episode(valid_document())
    assert validated.episode.child.address is not None
    assert validated.episode.child.address.postcode == "NW1 6XE"
    assert validated.warnings == []
    loose = _set(valid_document(), ("child", "address", "postcode"), "QX1 1AA")
    warnings = validate_episode(loose).warnings
    assert [(w.pointer, w.rule, w.severity) for w in warnings] == [
        ("/child/address/postcode", "postcode.not_bs7666", "warning")
    ]


def test_archived_episode_may_keep_its_closure() -> None:
    document = _set(valid_document(), ("state",), "archived")
    document["closure"] = {"closed_on": "2026-03-01", "outcome": "resolved_family"}
    assert validate_episode(document).episode.closure is not None


def test_models_are_frozen_and_hide_input_in_pydantic_errors() -> None:
    episode = Episode.model_validate(valid_document())
    with pytest.raises(ValidationError):
        episode.child.given_names = "Other"  # type: ignore[misc]
    try:
        Episode.model_validate(
            _set(valid_document(), ("child", "identifiers", "nhs_number"), "9434765918")
        )
    except ValidationError as exc:
        assert "9434765918" not in str(exc)
    else:
        pytest.fail("an invalid NHS number was accepted")


def test_json_round_trip_is_exact() -> None:
    episode = Episode.model_validate(valid_document())
    again = Episode.model_validate_json(episode.model_dump_json())
    assert again == episode
    assert json.loads(episode.model_dump_json())["schema"] == "caf-episode/1"


@pytest.mark.parametrize("server_zone", ["Etc/GMT+12", "Etc/GMT-14"])
def test_today_is_londons_whatever_the_servers_zone(
    server_zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consent given today in London is not "in the future" on a server whose date is behind,
    and tomorrow in London is refused on one whose date is ahead. At any hour one of the two zones
    has another date than London's, so a check against the server's date fails here."""
    monkeypatch.setenv("TZ", server_zone)
    time.tzset()
    try:
        today = dt.datetime.now(ZoneInfo("Europe/London")).date()
        given = _set(valid_document(), ("consents", 0, "given_on"), today.isoformat())
        assert validate_episode(given).episode.consents[0].given_on == today
        ahead = _set(given, ("consents", 0, "given_on"), (today + dt.timedelta(days=1)).isoformat())
        with pytest.raises(EpisodeInvalid) as caught:
            validate_episode(ahead)
        assert [p.rule for p in caught.value.problems] == ["dates.consent_in_future"]
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("model", "value", "quoted"),
    [
        ("event", {"event": {"type": "Zqxsent"}}, "Zqxsent"),
        ("uuid", "Zqxsent-0000-0000-0000-000000000000", "`Z`"),
    ],
)
def test_problems_never_quote_the_input(model: str, value: object, quoted: str) -> None:
    """Pydantic's messages for a wrong tag or a bad UUID quote what was sent."""

    class A(BaseModel):
        type: Literal["a"]

    class B(BaseModel):
        type: Literal["b"]

    class Wrapper(BaseModel):
        event: Annotated[A | B, Field(discriminator="type")]

    with pytest.raises(ValidationError) as caught:
        if model == "event":
            Wrapper.model_validate(value)
        else:
            TypeAdapter(uuid.UUID).validate_python(value)
    assert quoted in str(caught.value.errors()[0]["msg"])  # pydantic's own would tell it
    [problem] = problems_from(caught.value)
    assert quoted not in problem.message
