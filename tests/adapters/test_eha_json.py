"""eha-json: one family per document, one national episode per child, and back, exactly.

The examples' facts describe the family; what an episode must hold is those facts as they apply to
its child (the split rules of `adapters.eha_json`), minus what the document does not carry or says
differently (`ABSENT`, `DIFFERENCES`: each says why).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters._base import AdapterError, Fate, Translation
from adapters._safe import MAX_DOCUMENT_BYTES
from adapters.eha_json import ADAPTER
from schemas import ClosureOutcome, ConsentRole, Element, Episode, EpisodeState, Gender
from tests.adapters.facts import examples, facts_path, load_facts, mismatches
from tests.strategies import episodes as national_episodes
from tests.strategies import nhs_numbers, upns

FORMAT = "eha-json"
DOCUMENTS = [p for p in examples(FORMAT, ".json") if not p.name.endswith(".facts.json")]
RECEIVED = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

# What no EHA document carries, or says differently from the facts (the document wins).
ABSENT = {
    # The facts hold the CAF register reference (CAF-...); the document's own reference is its
    # assessmentId (EHA-...), and local_ref is the source system's reference.
    "local_ref",
    # The worker and leadPractitioner name no authority; leadPractitioner has no team or email.
    "assessor.authority",
    "lead_professional.role",
    "lead_professional.email",
    "lead_professional.authority",
    # No TAC members and no reviews in the format.
    "tac",
    "reviews",
    # The facts fold the town into the address lines; the document has a town of its own, which
    # goes to address.town (checked by test_address_lines_and_town).
    "address_lines",
}
# Per (example, child): the document has only the FAMILY's address, and writes sex not_stated where
# the facts (which know more) say unknown.
OWN_POSTCODE = "the facts give this child a postcode of their own; the document has the family's"
NOT_STATED = "the facts say unknown; the document's sex is not_stated, and that is what it carries"
DIFFERENCES: dict[tuple[str, int], dict[str, str]] = {
    ("eha-json-101-0", 1): {"children.1.postcode": OWN_POSTCODE},
    ("eha-json-101-0", 2): {"children.2.postcode": OWN_POSTCODE, "children.2.gender": NOT_STATED},
    ("eha-json-101-1", 0): {"children.0.gender": NOT_STATED},
    ("eha-json-101-2", 1): {"children.1.postcode": OWN_POSTCODE},
    ("eha-json-101-2", 2): {"children.2.postcode": OWN_POSTCODE},
    ("eha-json-102-0", 1): {"children.1.postcode": OWN_POSTCODE},
}
PERSONAL = ("Murphy", "0753635380", "Kai", "Holloway")  # from eha-json-101-0


def _doc(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_bytes())
    return value


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _read(doc: Any) -> Translation:
    return ADAPTER.to_national(_bytes(doc), received_at=RECEIVED)


def _round_trip(doc: Any) -> Any:
    return json.loads(ADAPTER.from_national(_read(doc).episodes))


def _child_refs(doc: dict[str, Any]) -> list[str]:
    return [m["personRef"] for m in doc["family"]["members"] if m["role"] == "CHILD"]


def _expected(facts: dict[str, Any], doc: dict[str, Any], index: int) -> dict[str, Any]:
    """The family's facts as they apply to child `index` (the package docstring's split rules)."""
    want = copy.deepcopy(facts)
    children = _child_refs(doc)
    ref = children[index]
    applies = {(a["area"], a["worries"], a["goingWell"]): a["appliesTo"] for a in doc["areas"]}
    elements = []
    for element in want["elements"]:
        if element["eha"] is None:  # from a note: family-level, and a note is the NEEDS only
            elements.append({**element, "strengths": None})
            continue
        to = applies[(element["eha"], element["needs"], element["strengths"])]
        if ref in to or not set(to) & set(children):  # this child's, or family-level
            elements.append(element)
    want["elements"] = elements
    if ref not in doc["consent"]["givenBy"]:  # a sibling's own consent is not this child's
        want["consent"]["given_by"] = [
            r for r in want["consent"]["given_by"] if r != "young_person"
        ]
        # ...and the competence is that sibling's: no young person gave this child's statement.
        want["consent"]["young_person_competent"] = None
    return want


CASES = [
    (path, index)
    for path in DOCUMENTS
    for index in range(len(load_facts(facts_path(path))[0]["children"]))
]


@pytest.mark.parametrize(("path", "index"), CASES, ids=[f"{p.stem}-child{i}" for p, i in CASES])
def test_each_childs_episode_matches_the_facts(path: Path, index: int) -> None:
    facts = load_facts(facts_path(path))[0]
    doc = _doc(path)
    translation = ADAPTER.to_national(path.read_bytes(), received_at=RECEIVED)
    assert len(translation.episodes) == len(facts["children"])
    episode = translation.episodes[index]
    absent = ABSENT | set(DIFFERENCES.get((path.stem, index), {}))
    assert mismatches(episode, _expected(facts, doc, index), index, absent) == []
    assert episode.family_ref == doc["family"]["familyRef"]
    assert episode.source.format == FORMAT and episode.source.received_at == RECEIVED
    kept = episode.extensions[FORMAT]
    assert isinstance(kept, dict) and kept["personRef"] == _child_refs(doc)[index]
    if facts["extras"].get("eha") == "customFields":
        family = kept["family"]
        assert isinstance(family, dict) and family["customFields"] == doc["customFields"]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_address_lines_and_town(path: Path) -> None:
    facts = load_facts(facts_path(path))[0]
    for episode in ADAPTER.to_national(path.read_bytes()).episodes:
        address = episode.child.address
        assert address is not None and address.town is not None
        assert [*address.lines, address.town] == facts["address_lines"]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_a_note_is_the_elements_needs(path: Path) -> None:
    """Checked against the facts, not assumed: every note's text is its element's needs."""
    facts = load_facts(facts_path(path))[0]
    by_code = {e["local"]: e for e in facts["elements"]}
    episode = ADAPTER.to_national(path.read_bytes()).episodes[0]
    elements = episode.assessments[0].elements
    notes = [note.split(": ", 1) for note in _doc(path)["notes"]]
    assert all(by_code[code]["needs"] == text for code, text in notes)
    assert any(by_code[code]["strengths"] != text for code, text in notes)  # so: not strengths
    for _, text in notes:
        assert any(
            e.needs == text and e.strengths is None and e.applies_to is None for e in elements
        )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_round_trip_gives_the_document_back(path: Path) -> None:
    original = _doc(path)
    first = ADAPTER.to_national(path.read_bytes(), received_at=RECEIVED)
    written = ADAPTER.from_national(first.episodes)
    assert json.loads(written) == original
    again = ADAPTER.to_national(written, received_at=RECEIVED)

    def comparable(e: Episode) -> dict[str, Any]:
        return e.model_dump(mode="json", exclude={"episode_id"})

    assert [comparable(e) for e in again.episodes] == [comparable(e) for e in first.episodes]
    # The order episodes come in does not matter: extensions put them back in member order.
    assert json.loads(ADAPTER.from_national(first.episodes[::-1])) == original


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.stem)
def test_every_local_field_is_reported(path: Path) -> None:
    report = ADAPTER.to_national(path.read_bytes()).report
    located = {f.location for f in report.fields}

    def leaves(value: Any, pointer: str) -> list[str]:
        if isinstance(value, dict) and value:
            return [p for k, v in value.items() for p in leaves(v, f"{pointer}/{k}")]
        if isinstance(value, list) and value:
            return [p for i, v in enumerate(value) for p in leaves(v, f"{pointer}/{i}")]
        return [pointer]

    # A list's own entry accounts for the list, not for what is in it.
    lists = {
        "/areas",
        "/notes",
        "/plan",
        "/family/members",
        "/consent/shareWith",
        "/consent/doNotShareWith",
    }
    for leaf in leaves(_doc(path), ""):
        parts = leaf.split("/")
        ancestors = {"/".join(parts[:n]) for n in range(2, len(parts))} - lists
        assert ({leaf} | ancestors) & located, leaf
    assert report.counts()[Fate.REJECTED] == 0


def test_detect() -> None:
    for path in DOCUMENTS:
        raw = path.read_bytes()
        assert ADAPTER.detect(raw)
        assert ADAPTER.detect(b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n"))
    national = Path(__file__).parent.parent / "fixtures" / "national" / "valid-episode.json"
    assert not ADAPTER.detect(national.read_bytes())
    for other in (b"", b"<CAFEpisode/>", b"caf_ref,la_code\r\n", b"[]", b'{"a": 1}', b"\xff\xfe"):
        assert not ADAPTER.detect(other)


# -- the family split ------------------------------------------------------------------------------


def test_a_childs_episode_holds_its_own_areas_and_its_own_consent() -> None:
    path = next(p for p in DOCUMENTS if p.stem == "eha-json-101-0")
    ewa, amara, _ = ADAPTER.to_national(path.read_bytes()).episodes
    mine = [e for e in amara.assessments[0].elements if e.applies_to is not None]
    assert [e.applies_to for e in mine] == [["P1", "P2", "P3"], ["P1", "P2", "P3"]]
    assert len(ewa.assessments[0].elements) == 9 and len(amara.assessments[0].elements) == 6
    # Ewa (P1) consented for herself; that is not consent for her brother.
    assert [g.role for g in ewa.consents[0].given_by] == [
        ConsentRole.PARENT_CARER,
        ConsentRole.YOUNG_PERSON,
    ]
    assert [(g.role, g.name) for g in amara.consents[0].given_by] == [
        (ConsentRole.PARENT_CARER, "Kai Murphy")
    ]
    assert [p.name for p in amara.parents_carers] == ["Kai Murphy"]


def test_some_of_a_familys_episodes_write_a_smaller_family() -> None:
    path = next(p for p in DOCUMENTS if p.stem == "eha-json-101-0")
    episodes = ADAPTER.to_national(path.read_bytes()).episodes
    doc = json.loads(ADAPTER.from_national([episodes[1]]))
    assert [m["personRef"] for m in doc["family"]["members"]] == ["P2", "P4"]
    assert [a["appliesTo"] for a in doc["areas"]] == [["P2"], ["P2"]]
    assert doc["consent"]["givenBy"] == ["P4"]
    (episode,) = _read(doc).episodes
    assert episode.child == episodes[1].child and episode.consents == episodes[1].consents


def test_episodes_of_different_families_are_refused() -> None:
    a = ADAPTER.to_national(DOCUMENTS[0].read_bytes()).episodes[0]
    b = ADAPTER.to_national(DOCUMENTS[1].read_bytes()).episodes[0]
    with pytest.raises(AdapterError) as caught:
        ADAPTER.from_national([a, b])
    assert caught.value.location == "/family/familyRef"
    with pytest.raises(AdapterError):
        ADAPTER.from_national([])


def test_finance_and_home_environment_stay_apart() -> None:
    doc = _doc(DOCUMENTS[0])
    doc["areas"][0]["area"] = "FINANCE"
    area = _read(doc).episodes[0].assessments[0].elements[0]
    assert area.element is Element.HOUSING_EMPLOYMENT_FINANCIAL and area.applies_to == ["P1"]
    assert _round_trip(doc)["areas"][0]["area"] == "FINANCE"
    assert _round_trip(doc) == doc


def test_a_change_made_on_the_national_side_wins() -> None:
    doc = _doc(DOCUMENTS[0])
    doc["family"]["members"][0]["nhsNo"] = "075 363 5380"  # kept as written...
    episodes = _read(doc).episodes
    assert _round_trip(doc) == doc
    child = episodes[0].child.model_copy(
        update={
            "given_names": "Eva",
            "identifiers": episodes[0].child.identifiers.model_copy(
                update={"nhs_number": "9434765919"}
            ),
        }
    )
    written = json.loads(ADAPTER.from_national([episodes[0].model_copy(update={"child": child})]))
    member = written["family"]["members"][0]
    assert member["firstName"] == "Eva" and member["nhsNo"] == "9434765919"  # ...unless changed


def test_variations_bom_crlf_layout_and_unknown_keys_are_kept() -> None:
    doc = _doc(DOCUMENTS[3])
    doc["legacyId"] = {"system": "EHM", "id": [1, 2]}
    doc["family"]["members"][0]["favourite/colour"] = "green"
    doc["family"]["members"][3]["email"] = None
    doc["areas"][1]["reviewedBy"] = "x"
    doc["consent"]["channel"] = "portal"
    doc["plan"][0]["priority"] = 1
    doc["family"]["address"]["line2"] = "Flat 2"
    del doc["dateCompleted"]
    raw = b"\xef\xbb\xbf" + json.dumps(doc, indent=4).replace("\n", "\r\n").encode()
    translation = ADAPTER.to_national(raw)
    extended = {f.location for f in translation.report.fields if f.fate is Fate.EXTENDED}
    assert {"/legacyId", "/family/members/0/favourite~1colour", "/areas/1/reviewedBy"} <= extended
    assert {"/consent/channel", "/plan/0/priority", "/customFields"} <= extended
    assert translation.episodes[0].child.address is not None
    assert translation.episodes[0].child.address.lines == ["218 Mare Road", "Flat 2"]
    assert json.loads(ADAPTER.from_national(translation.episodes)) == doc


# -- values the national schema cannot take --------------------------------------------------------


def _rejected(translation: Translation) -> dict[str, str | None]:
    return {f.location: f.rule for f in translation.report.fields if f.fate is Fate.REJECTED}


def test_impossible_or_invalid_optional_values_are_rejected_and_kept() -> None:
    doc = _doc(DOCUMENTS[0])
    member = doc["family"]["members"][0]
    member |= {"dob": "31/02/2020", "nhsNo": "0753635381", "ethnicityCode": "XXXX", "sex": "?"}
    doc["family"]["members"][1]["dob"] = "01/01/2099"
    doc["plan"][0]["when"] = "2026-04-18"
    doc["plan"][1]["outcome"] = "be_happy"
    doc["consent"]["shareWith"].append("ASTROLOGY")
    translation = _read(doc)
    assert _rejected(translation) == {
        "/family/members/0/dob": "date.dd_mm_yyyy",
        "/family/members/0/nhsNo": "nhs_number.checksum",
        "/family/members/0/ethnicityCode": "ethnicity.cin_code",
        "/family/members/0/sex": "sex.eha",
        "/family/members/1/dob": "dates.birth_in_future",
        "/plan/0/when": "date.dd_mm_yyyy",
        "/plan/1/outcome": "ecm_outcome",
        "/consent/shareWith/4": "agency_type.upper_case",
    }
    child = translation.episodes[0].child
    assert child.date_of_birth is None and child.identifiers.nhs_number is None
    assert child.ethnicity is None and child.gender is Gender.UNKNOWN
    assert len(translation.episodes[0].consents[0].share_with) == 4  # not shared with the unknown
    assert not any("0753635381" in str(f) for f in translation.report.fields)
    assert json.loads(ADAPTER.from_national(translation.episodes)) == doc


def test_areas_and_notes_with_no_national_element_are_kept() -> None:
    doc = _doc(DOCUMENTS[0])
    doc["areas"].insert(1, {"area": "SLEEP", "appliesTo": ["P3"], "worries": "w", "scale": 3})
    doc["areas"][0]["scale"] = 11
    doc["areas"].append("legacy text")
    doc["notes"][1:1] = ["Misc: phoned school", 42]
    translation = _read(doc)
    assert translation.episodes[2].extensions[FORMAT]["areas"] == {  # P3's, and the family's
        "1": doc["areas"][1],
        "6": "legacy text",
    }
    ewa = translation.episodes[0].extensions[FORMAT]
    assert ewa["areas"] == {"6": "legacy text"}  # not P3's area
    assert [w.rule for w in translation.warnings] == ["scale.0_to_10"]
    assert _round_trip(doc) == doc


def test_consent_not_obtained_is_no_statement_and_is_kept() -> None:
    doc = _doc(DOCUMENTS[0])
    doc["consent"] = {"obtained": False, "date": None, "reason": "declined"}
    translation = _read(doc)
    assert all(e.consents == [] for e in translation.episodes)
    assert _round_trip(doc) == doc
    doc["consent"] = {**_doc(DOCUMENTS[0])["consent"], "givenBy": ["P1"]}  # no one for P2, P3
    assert [len(e.consents) for e in _read(doc).episodes] == [1, 0, 0]
    assert _round_trip(doc) == doc


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("NEEDS_MET", ClosureOutcome.RESOLVED_MULTI_AGENCY),
        ("DISENGAGED", ClosureOutcome.CONSENT_WITHDRAWN),
        ("MOVED_LA", ClosureOutcome.MOVED_AUTHORITY),
        ("STEP_UP_CSC", ClosureOutcome.STEPPED_UP),
    ],
)
def test_closure(reason: str, outcome: ClosureOutcome) -> None:
    doc = _doc(DOCUMENTS[1])
    doc |= {"status": "CLOSED", "closure": {"date": "01/03/2026", "reason": reason}}
    (episode,) = _read(doc).episodes
    assert episode.state is EpisodeState.CLOSED and episode.closure is not None
    assert episode.closure.outcome is outcome
    assert episode.closure.closed_on == dt.date(2026, 3, 1)
    assert _round_trip(doc) == doc


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda d: d.update(dateStarted="30/02/2026"), "/dateStarted"),
        (lambda d: d["consent"].update(date="1/1/2099"), "/consent/date"),
        (lambda d: d["consent"].update(withdrawnDate="soon"), "/consent/withdrawnDate"),
        (lambda d: d["consent"]["doNotShareWith"].append("PSYCHICS"), "/consent/doNotShareWith/0"),
        (lambda d: d["consent"]["givenBy"].append("P9"), "/consent/givenBy/2"),
        (lambda d: d["areas"][2]["appliesTo"].append("P9"), "/areas/2/appliesTo/3"),
        (lambda d: d.update(closure={"date": "01/03/2026", "reason": "NEEDS_MET"}), "/closure"),
        (lambda d: d.update(status="PAUSED"), "/status"),
        (lambda d: d.update(authority="Camden"), "/authority"),
        (lambda d: d["worker"].update(serviceType="WIZARDRY"), "/worker/serviceType"),
        (lambda d: d["plan"][1].pop("who"), "/plan/1/who"),
        (lambda d: d["family"]["members"][1].update(personRef="P1"), "/family/members/1/personRef"),
        (lambda d: d["family"].update(members=d["family"]["members"][3:]), "/family/members"),
    ],
)
def test_a_document_that_cannot_make_episodes_fails_where_and_why(
    change: Any, location: str
) -> None:
    doc = _doc(DOCUMENTS[0])
    change(doc)
    with pytest.raises(AdapterError) as caught:
        _read(doc)
    assert caught.value.code == "schema_violation" and caught.value.location == location
    assert not any(value in str(caught.value) for value in PERSONAL)


# -- hostile JSON ----------------------------------------------------------------------------------


def _member_without(index: int, key: str) -> bytes:
    doc = _doc(DOCUMENTS[0])
    del doc["family"]["members"][index][key]
    return _bytes(doc)


def _nested(depth: int) -> bytes:
    doc = _doc(DOCUMENTS[0])
    value: Any = []
    for _ in range(depth - 2):
        value = [value]
    doc["customFields"] = {"x": value}
    return _bytes(doc)


EXAMPLE = DOCUMENTS[0].read_bytes()
HOSTILE = {
    "nested 40 deep": (_nested(40), "schema_violation", "/"),
    "invalid utf-8": (EXAMPLE.replace(b"Murphy", b"Murph\xff", 1), "unsupported_format", "byte "),
    "utf-16 with bom": (
        b"\xff\xfe" + EXAMPLE.decode().encode("utf-16-le"),
        "unsupported_format",
        "byte 0",
    ),
    "nested arrays 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "schema_violation", "/"),
    "nested objects 100,000 deep": (
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "schema_violation",
        "/",
    ),
    "over the size limit": (
        EXAMPLE[:-2] + b', "pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}',
        "payload_too_large",
        "/",
    ),
    "NaN": (EXAMPLE.replace(b'"scale": 0', b'"scale": NaN'), "schema_violation", "/areas/0/scale"),
    "Infinity": (
        EXAMPLE.replace(b'"scale": 9', b'"scale": -Infinity'),
        "schema_violation",
        "/areas/1/scale",
    ),
    "duplicate keys": (
        EXAMPLE.replace(b'"nhsNo": "0753635380"', b'"nhsNo": "0753635380", "nhsNo": "1"'),
        "schema_violation",
        "/family/members/0",
    ),
    "not JSON": (EXAMPLE[:500], "schema_violation", "line "),
    "top level is a list": (b"[" + EXAMPLE + b"]", "schema_violation", "/"),
    "top level is a string": (b'"Murphy 0753635380"', "schema_violation", "/"),
    "lone surrogate": (
        EXAMPLE.replace(b"Murphy", b"Murphy\\udc00", 1),
        "schema_violation",
        "/worker/fullName",
    ),
    "member without personRef": (
        _member_without(0, "personRef"),
        "schema_violation",
        "/family/members/0/personRef",
    ),
    "member without role": (
        _member_without(1, "role"),
        "schema_violation",
        "/family/members/1/role",
    ),
    "child without firstName": (
        _member_without(2, "firstName"),
        "schema_violation",
        "/family/members/2/firstName",
    ),
    "adult without parentalResponsibility": (
        _member_without(3, "parentalResponsibility"),
        "schema_violation",
        "/family/members/3/parentalResponsibility",
    ),
    "adult without relationship": (
        _member_without(3, "relationship"),
        "schema_violation",
        "/family/members/3/relationship",
    ),
    "member is not an object": (
        EXAMPLE.replace(b'"members": [', b'"members": ["Murphy 0753635380", '),
        "schema_violation",
        "/family/members/0",
    ),
}


@pytest.mark.parametrize(("data", "code", "where"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_fails_with_a_code_a_location_and_no_personal_data(
    data: bytes, code: str, where: str
) -> None:
    with pytest.raises(AdapterError) as caught:
        ADAPTER.to_national(data)
    error = caught.value
    assert error.code == code
    assert error.location.startswith(where) if where.endswith(" ") else error.location == where
    assert not any(value in str(error) for value in PERSONAL)
    assert ADAPTER.detect(data) in (True, False)  # never raises


def test_a_utf8_bom_is_fine() -> None:
    plain = ADAPTER.to_national(EXAMPLE).episodes
    with_bom = ADAPTER.to_national(b"\xef\xbb\xbf" + EXAMPLE).episodes
    assert [e.child for e in with_bom] == [e.child for e in plain]


# -- properties ------------------------------------------------------------------------------------

TODAY = dt.date.today()
# Any text a document may hold: not the characters it is refused for (C0 but tab, LF and CR, and
# DEL: `text.control_characters`; U+FFFE and U+FFFF: `text.noncharacter`;
# tests/adapters/test_json_control_characters.py); C1 kept.
_CHARACTERS = st.characters(
    exclude_categories=["Cs"],
    exclude_characters=[
        chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFFFE, 0xFFFF)
    ],
)
text = st.text(_CHARACTERS, max_size=12)
some_text = st.text(_CHARACTERS, min_size=1, max_size=12)
AGENCIES = ["EDUCATION", "HEALTH", "SOCIAL_CARE", "POLICE", "EARLY_HELP", "VOLUNTARY", "HOUSING"]
AREAS = ["GENERAL_HEALTH", "EDUCATION", "HOME_ENVIRONMENT", "FINANCE", "PARENTING", "SLEEP"]
CODES = ["FAM.HISTORY", "DEV.LEARNING.PROGRESS", "PAR.WARMTH", "fam.wider", "OTHER"]


@st.composite
def dates(draw: st.DrawFn, low: dt.date = dt.date(1990, 1, 1), high: dt.date = TODAY) -> str:
    day = draw(st.dates(min_value=low, max_value=high))
    if draw(st.booleans()):
        return f"{day.day:02d}/{day.month:02d}/{day.year}"
    return f"{day.day}/{day.month}/{day.year}"


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def families(draw: st.DrawFn) -> dict[str, Any]:
    """Valid EHA documents with the variation real ones have: missing and null keys, keys nobody
    told us about, identifiers with spaces, un-padded dates, rejected values, odd areas, odd notes.
    """
    n_children, n_adults = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    n = n_children + n_adults
    refs = draw(st.lists(some_text, min_size=n, max_size=n, unique=True))
    children, adults = refs[:n_children], refs[n_children:]
    members: list[dict[str, Any]] = [
        draw(
            st.fixed_dictionaries(
                {"personRef": st.just(r), "role": st.sampled_from(["CHILD", "child"])},
                optional={
                    "firstName": some_text,
                    "lastName": some_text,
                    "dob": maybe(dates() | st.just("31/02/2015")),
                    "sex": maybe(st.sampled_from(["male", "female", "not_stated", "MALE", "x"])),
                    "ethnicityCode": maybe(st.sampled_from(["WBRI", "abanx", "NOBT"])),
                    "nhsNo": maybe(nhs_numbers() | st.just("943 476 5919") | st.just("1234567890")),
                    "upn": maybe(upns()),
                    "youngCarer": st.booleans(),
                    "legacy": text,
                },
            ).map(lambda m: {"firstName": "A", "lastName": "B"} | m)
        )
        for r in children
    ] + [
        draw(
            st.fixed_dictionaries(
                {
                    "personRef": st.just(r),
                    "role": st.sampled_from(["PARENT", "CARER"]),
                    "firstName": some_text,
                    "relationship": some_text,
                    "parentalResponsibility": st.booleans(),
                },
                optional={"lastName": maybe(text), "phone": maybe(text), "email": maybe(text)},
            )
        )
        for r in adults
    ]
    area = st.fixed_dictionaries(
        {"area": st.sampled_from(AREAS)},
        optional={
            "appliesTo": maybe(st.lists(st.sampled_from(refs), max_size=3)),
            "worries": maybe(text),
            "goingWell": maybe(text),
            "scale": st.integers(0, 10) | st.just(None),
        },
    )
    note = st.builds(lambda c, t: f"{c}: {t}", st.sampled_from(CODES), text) | text | st.integers()
    started = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=TODAY))
    doc: dict[str, Any] = {
        "assessmentId": draw(maybe(text)),
        "authority": draw(st.sampled_from(["E09000007", "202", " e09000028 "])),
        "dateStarted": f"{started.day:02d}/{started.month:02d}/{started.year}",
        "dateCompleted": draw(maybe(dates(low=dt.date(2000, 1, 1)))),
        "worker": {
            "fullName": draw(some_text),
            "team": draw(maybe(text)),
            "service": draw(some_text),
            "serviceType": draw(st.sampled_from(AGENCIES)),
            "phone": draw(maybe(text)),
            "email": draw(maybe(text)),
        },
        "family": {"familyRef": draw(maybe(text)), "members": draw(st.permutations(members))},
        "reason": draw(some_text),
        "areas": draw(st.lists(area | st.just("legacy"), max_size=4)),
        "notes": draw(st.lists(note, max_size=4)),
        "parentViews": draw(maybe(text)),
        "plan": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"need": some_text, "action": some_text, "who": some_text},
                    optional={
                        "when": maybe(dates(high=dt.date(2030, 1, 1))),
                        "outcome": maybe(st.sampled_from(["stay_safe", "be_happy"])),
                    },
                ),
                max_size=2,
            )
        ),
        "status": "OPEN",
    }
    if draw(st.booleans()):
        doc["family"]["address"] = {
            "line1": draw(maybe(text)),
            "town": draw(maybe(text)),
            "postcode": draw(st.sampled_from(["NW3 6FF", "nw36ff", "NOWHERE", None])),
        }
    if draw(st.booleans()):
        given_on = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=TODAY))
        agency = st.sampled_from(AGENCIES) | st.sampled_from(AGENCIES).map(
            lambda a: {"agencyType": a}
        )
        doc["consent"] = {
            "obtained": draw(st.sampled_from([True, True, False])),
            "date": f"{given_on.day:02d}/{given_on.month:02d}/{given_on.year}",
            "type": draw(st.sampled_from(["WRITTEN", "VERBAL", "verbal"])),
            "givenBy": draw(st.lists(st.sampled_from(refs), max_size=3)),
            "youngPersonCompetent": draw(maybe(st.booleans())),
            "shareWith": draw(st.lists(agency, max_size=3)),
            "doNotShareWith": draw(st.lists(agency, max_size=2)),
            "withdrawnDate": draw(maybe(dates(low=given_on, high=dt.date(2030, 1, 1)))),
        }
    if draw(st.booleans()):
        doc["leadPractitioner"] = {
            "name": draw(some_text),
            "service": draw(some_text),
            "serviceType": draw(st.sampled_from(AGENCIES)),
            "phone": draw(maybe(text)),
        }
    if draw(st.booleans()):
        doc["status"] = "CLOSED"
        doc["closure"] = {"date": draw(dates()), "reason": draw(st.sampled_from(["NEEDS_MET"]))}
    if draw(st.booleans()):
        doc["customFields"] = draw(st.dictionaries(text, maybe(text | st.integers()), max_size=2))
    for key in draw(st.lists(st.sampled_from(["parentViews", "dateCompleted", "notes"]))):
        doc.pop(key, None)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families())
def test_any_family_comes_back_exactly(doc: dict[str, Any]) -> None:
    translation = _read(doc)
    assert len(translation.episodes) == len(
        [m for m in doc["family"]["members"] if m["role"] in ("CHILD", "child")]
    )
    assert json.loads(ADAPTER.from_national(translation.episodes)) == doc


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(national_episodes(), min_size=1, max_size=2, unique_by=lambda e: e.episode_id))
def test_episodes_from_anywhere_can_be_written_and_then_round_trip(
    episodes: list[Episode],
) -> None:
    """National episodes (not from this format) are written with what has a local home; the
    document written is then read and written again unchanged."""
    one_family = episodes[0].family_ref or "FAM-1"  # episodes of no family are not written as one
    same_family = [e.model_copy(update={"family_ref": one_family}) for e in episodes]
    written = ADAPTER.from_national(same_family)
    again = ADAPTER.to_national(written)
    assert len(again.episodes) == len(episodes)
    assert [e.home_authority for e in again.episodes] == [episodes[0].home_authority] * len(
        episodes
    )
    assert json.loads(ADAPTER.from_national(again.episodes)) == json.loads(written)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(text, text))
)
def test_garbage_never_raises_anything_but_an_adapter_error(data: bytes) -> None:
    assert ADAPTER.detect(data) in (True, False)
    try:
        ADAPTER.to_national(data)
    except AdapterError as error:
        assert error.code in ("schema_violation", "unsupported_format", "payload_too_large")


def test_an_episode_given_twice_is_refused_not_written_as_its_own_sibling() -> None:
    read = ADAPTER.to_national(DOCUMENTS[0].read_bytes())
    twice = [read.episodes[0], read.episodes[0]]
    with pytest.raises(AdapterError) as refused:
        ADAPTER.from_national(twice)
    assert (refused.value.code, refused.value.location) == ("schema_violation", "/family/members")
