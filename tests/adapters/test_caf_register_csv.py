"""caf-register-csv: the CAF register's bulk export, many episodes per file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters._base import Adapter, AdapterError, Fate, Translation
from adapters.caf_register_csv import (
    ADAPTER,
    COLUMNS,
    MAX_CELL_CHARS,
    OUTCOME_TO_WORD,
    Progress,
    iter_rows,
)
from adapters.caf_register_csv._codes import column_key, guarded, unguarded
from schemas import AgencyType, ClosureOutcome, Episode, EpisodeState, Gender, london_authorities
from tests.adapters.facts import examples, facts_path, load_facts, mismatches
from tests.strategies import episodes, nhs_numbers, upns

_CONFORMS: Adapter = ADAPTER  # mypy checks the adapter protocol (extra keywords allowed)
EXAMPLE = examples("caf-register-csv", ".csv")[0]
OTHER_FORMATS = [
    p
    for name, suffix in (
        ("ecaf-xml-v3", ".xml"),
        ("eha-json", ".json"),
        ("csc-closure-xml", ".xml"),
    )
    for p in examples(name, suffix)
]
RECEIVED = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
EXT = "caf-register-csv"
# Facts a register row does not carry, each for a reason the row shows:
ABSENT = {
    "children.0.ethnicity",  # no ethnicity column
    "parents",  # no parents or carers in a register
    "address_lines",  # postcode only
    "started_on",  # no assessment in a register (see the package docstring)
    "completed_on",  # assessment_completed: kept in extensions (checked below)
    "assessor",  # initiating_agency and agency_type: kept in extensions (checked below)
    "reason",
    "elements",
    "consent",
    "lead_professional",  # no agency type for it in these rows: kept in extensions (below)
    "tac",
    "plan",
    "reviews",
}


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def register(rows: list[list[str]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header or list(COLUMNS))
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


EXAMPLE_ROWS = rows_of(EXAMPLE.read_bytes())[1:]


def translate(data: bytes) -> Translation:
    return ADAPTER.to_national(data, received_at=RECEIVED)


def content(episode: Episode) -> dict[str, Any]:
    return episode.model_dump(mode="json", exclude={"episode_id"})


def with_cells(row: list[str], **cells: str) -> list[str]:
    changed = list(row)
    for column, value in cells.items():
        changed[COLUMNS.index(column)] = value
    return changed


# --- detection ------------------------------------------------------------------------------------


def test_detects_the_register() -> None:
    data = EXAMPLE.read_bytes()
    assert ADAPTER.detect(data)
    assert ADAPTER.detect(b"\xef\xbb\xbf" + data)
    assert ADAPTER.detect(data.replace(b"caf_ref,la_code", b'"CAF Ref","LA Code"'))


@pytest.mark.parametrize("path", OTHER_FORMATS, ids=lambda p: p.name)
def test_does_not_detect_other_formats(path: Path) -> None:
    assert not ADAPTER.detect(path.read_bytes())


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00\x01", b"caf_ref\r\n", b"," * 10000])
def test_detect_never_raises(data: bytes) -> None:
    assert ADAPTER.detect(data) is False


# --- the facts --------------------------------------------------------------------------------------


def test_recovers_the_facts() -> None:
    facts = load_facts(facts_path(EXAMPLE))
    translation = translate(EXAMPLE.read_bytes())
    assert translation.rejected == [] and translation.warnings == []
    assert len(translation.episodes) == len(facts) == 3
    for episode, fact in zip(translation.episodes, facts, strict=True):
        assert mismatches(episode, fact, 0, ABSENT) == []
        assert episode.source.format == EXT and episode.source.received_at == RECEIVED
        assert episode.source.step_down is None and episode.assessments == []
        kept = episode.extensions[EXT]
        # The assessment and lead practitioner columns, kept, agree with the facts.
        assert kept["initiating_agency"] == fact["assessor"]["organisation"]
        assert kept["agency_type"] == fact["assessor"]["agency_type"]
        assert kept["assessment_completed"] == fact["completed_on"]
        lead = fact["lead_professional"]
        assert kept["lead_practitioner"] == lead["name"]
        assert kept["lp_agency"] == lead["organisation"]
        assert kept["lp_phone"] == lead["telephone"]
        assert fact["extras"] == {}
        assert authority_dfe(episode) == fact["dfe_la"]


def authority_dfe(episode: Episode) -> str:
    return {a.gss: a.dfe for a in london_authorities()}[episode.home_authority]


def test_report_accounts_for_every_column_once() -> None:
    report = translate(EXAMPLE.read_bytes()).report
    located = [f.location for f in report.fields]
    assert sorted({loc.removeprefix("column ") for loc in located}) == sorted(COLUMNS)
    assert len(located) == len(set(located)) == len(COLUMNS)  # one way each, in these rows
    assert report.counts()[Fate.REJECTED] == 0


def _ways(translation: Translation, column: str) -> list[tuple[Fate, str | None]]:
    return [(f.fate, f.rule) for f in translation.report.fields if f.location == f"column {column}"]


def test_stripped_padding_is_reported_as_text_strip() -> None:
    padded = with_cells(
        EXAMPLE_ROWS[0],
        caf_ref=f"{EXAMPLE_ROWS[0][0]} ",
        child_surname="  Mensah ",
        nhs_number=" 4309086624",
        initiating_agency="\tChildren's Social Care",
        lp_phone="020 7777 5150  ",
    )
    translation = translate(register([padded]))
    [episode] = translation.episodes
    assert episode.child.family_name == "Mensah"
    assert episode.extensions[EXT]["initiating_agency"] == "Children's Social Care"
    strip = "text.strip"
    assert _ways(translation, "child_surname") == [(Fate.TRANSFORMED, strip)]
    assert _ways(translation, "caf_ref") == [(Fate.TRANSFORMED, strip)]
    assert _ways(translation, "nhs_number") == [(Fate.TRANSFORMED, strip)]
    assert _ways(translation, "initiating_agency") == [(Fate.EXTENDED, strip)]
    assert _ways(translation, "lp_phone") == [(Fate.EXTENDED, strip)]
    assert _ways(translation, "child_forename") == [(Fate.MAPPED, None)]  # not padded
    # Per column, like the other ways: a register with and without padding reports both.
    both = translate(register([EXAMPLE_ROWS[0], padded]))
    assert _ways(both, "child_surname") == [(Fate.MAPPED, None), (Fate.TRANSFORMED, strip)]
    # The padding is not written back (a decision: see `_row`).
    assert rows_of(ADAPTER.from_national([episode]))[1] == EXAMPLE_ROWS[0]


def test_extended_columns_that_are_changed_name_their_rule() -> None:
    row = with_cells(EXAMPLE_ROWS[0], agency_type="SOCIAL_CARE")
    translation = translate(register([row, EXAMPLE_ROWS[0]]))
    assert [e.extensions[EXT]["agency_type"] for e in translation.episodes] == ["social_care"] * 2
    assert _ways(translation, "agency_type") == [
        (Fate.EXTENDED, "agency_type.lower_case"),
        (Fate.EXTENDED, "extension.no_assessment"),  # as written: kept as it is
    ]
    kept = translation.episodes[0].extensions[EXT]["assessment_completed"]
    assert kept == "2025-01-22"  # stored ISO, written back dd/mm/yyyy
    assert _ways(translation, "assessment_completed") == [(Fate.EXTENDED, "date.dd_mm_yyyy")]


# --- round trips ------------------------------------------------------------------------------------


def test_round_trip_gives_the_same_rows() -> None:
    original = EXAMPLE.read_bytes()
    translation = translate(original)
    written = ADAPTER.from_national(translation.episodes)
    assert rows_of(written) == rows_of(original)
    assert written == original  # UTF-8, CRLF, the header, minimal quoting: byte for byte
    again = translate(written)
    assert [content(e) for e in again.episodes] == [content(e) for e in translation.episodes]


# Any text but control characters (a row holding one is rejected), with CSV's own specials.
_TEXT_CHARACTERS = st.characters(
    exclude_categories=("Cs", "Cc", "Cn"), include_characters=',"\n\r\t '
)
_SAFE_TEXT = st.text(_TEXT_CHARACTERS, min_size=1, max_size=20).filter(lambda s: s == s.strip())
_DATES = st.dates(dt.date(1990, 1, 1), dt.date.today()).map(lambda d: d.strftime("%d/%m/%Y"))
_EXTRA_NAMES = ("notes", "Team", "review due")


def _maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.just("") | strategy


@st.composite
def register_rows(draw: st.DrawFn) -> dict[str, str]:
    """A valid register row, by column name (extra columns too)."""
    row = {
        "caf_ref": draw(_maybe(_SAFE_TEXT)),
        "la_code": draw(st.sampled_from([a.dfe for a in london_authorities()])),
        "child_forename": draw(_SAFE_TEXT),
        "child_surname": draw(_SAFE_TEXT),
        "dob": draw(_maybe(_DATES)),
        "gender": draw(st.sampled_from(["Male", "Female", "Not known"])),
        "postcode": draw(st.sampled_from(["", "NW1 6XE", "E8 1DY", "SW1A 1AA", "QQ1 1QQ"])),
        "nhs_number": draw(_maybe(nhs_numbers())),
        "upn": draw(_maybe(upns())),
        "initiating_agency": draw(_maybe(_SAFE_TEXT)),
        "agency_type": draw(_maybe(st.sampled_from([a.value for a in AgencyType]))),
        "assessment_completed": draw(_maybe(_DATES)),
        "lead_practitioner": draw(_maybe(_SAFE_TEXT)),
        "lp_agency": draw(_maybe(_SAFE_TEXT)),
        "lp_phone": draw(_maybe(_SAFE_TEXT)),
        "status": "Open",
        "closed_date": "",
        "closure_outcome": "",
    }
    if draw(st.booleans()):  # a lead practitioner of the initiating agency: national
        row["lp_agency"] = row["initiating_agency"]
    status = draw(st.sampled_from(["Open", "Potential", "Closed", "Closed, no closure"]))
    row["status"] = status.split(",")[0]
    if status == "Closed":
        row["closed_date"] = draw(_DATES)
        row["closure_outcome"] = draw(st.sampled_from(list(OUTCOME_TO_WORD.values())))
    for name in _EXTRA_NAMES[: draw(st.integers(0, len(_EXTRA_NAMES)))]:
        row[name] = draw(st.text(_TEXT_CHARACTERS, max_size=10))  # verbatim: spaces, empty...
    return row


@given(st.lists(register_rows(), min_size=1, max_size=5))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_rows_come_back_cell_for_cell(generated: list[dict[str, str]]) -> None:
    extras = [n for n in _EXTRA_NAMES if any(n in r for r in generated)]
    header = [*COLUMNS, *extras]
    rows = [[r.get(name, "") for name in header] for r in generated]
    translation = translate(register(rows, header))
    assert translation.rejected == []
    assert len(translation.episodes) == len(rows)
    written = rows_of(ADAPTER.from_national(translation.episodes))

    # As written, cells a spreadsheet would take for a formula are guarded by an apostrophe. A
    # cell that came guarded already (`'@`) is read as what it guards (`@`) and written as it came;
    # a register column's value is then taken without padding (`'\r0` is `0`, `text.strip`), an
    # extra column's verbatim.
    def expected(name: str, cell: str) -> str:
        value = unguarded(cell)
        return guarded(value.strip() if name in COLUMNS else value)

    assert written[0] == [guarded(name) for name in header]
    assert written[1:] == [
        [expected(n, c) for n, c in zip(header, row, strict=True)] for row in rows
    ]


@given(episodes())
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_national_episode_keeps_what_has_a_home_here(episode: Episode) -> None:
    child = episode.child
    assume(all(v is None or v == v.strip() for v in (child.given_names, child.family_name)))
    assume(episode.local_ref is None or episode.local_ref == episode.local_ref.strip())
    translation = translate(ADAPTER.from_national([episode]))
    assert translation.rejected == []
    [back] = translation.episodes
    assert back.local_ref == episode.local_ref and back.home_authority == episode.home_authority
    assert (back.child.given_names, back.child.family_name) == (
        child.given_names,
        child.family_name,
    )
    assert back.child.date_of_birth == child.date_of_birth
    assert back.child.identifiers.nhs_number == child.identifiers.nhs_number
    assert back.child.identifiers.upn == child.identifiers.upn
    known = child.gender in (Gender.MALE, Gender.FEMALE, Gender.UNKNOWN)
    assert back.child.gender is (child.gender if known else Gender.UNKNOWN)
    postcode = child.address.postcode if child.address else None
    assert (back.child.address.postcode if back.child.address else None) == postcode
    closed = (EpisodeState.CLOSED, EpisodeState.ARCHIVED, EpisodeState.TRANSFERRED)
    assert back.state is (EpisodeState.CLOSED if episode.state in closed else episode.state)
    assert back.closure == episode.closure
    if episode.assessments:  # the register's assessment columns come from the first one
        organisation = episode.assessments[0].assessor.organisation.strip()  # cells are stripped
        assert back.extensions[EXT].get("initiating_agency", "") == organisation


# --- real-world variation ---------------------------------------------------------------------------


def test_bom_and_line_endings_do_not_matter() -> None:
    base = [content(e) for e in translate(EXAMPLE.read_bytes()).episodes]
    for data in (
        b"\xef\xbb\xbf" + EXAMPLE.read_bytes(),
        EXAMPLE.read_bytes().replace(b"\r\n", b"\n"),
        EXAMPLE.read_bytes().removesuffix(b"\r\n"),
        EXAMPLE.read_bytes() + b"\r\n\r\n,,,\r\n",  # trailing blank rows
    ):
        assert [content(e) for e in translate(data).episodes] == base


def test_header_names_are_read_by_meaning_and_order_does_not_matter() -> None:
    header = [c.replace("_", " ").upper() for c in COLUMNS]
    order = list(reversed(range(len(COLUMNS))))
    data = register(
        [[r[i] for i in order] for r in EXAMPLE_ROWS], [f" {header[i]} " for i in order]
    )
    base = [content(e) for e in translate(EXAMPLE.read_bytes()).episodes]
    translation = translate(data)
    assert [content(e) for e in translation.episodes] == base
    assert rows_of(ADAPTER.from_national(translation.episodes))[1:] == EXAMPLE_ROWS


def test_quoted_fields_with_commas_and_line_breaks() -> None:
    tricky = with_cells(
        EXAMPLE_ROWS[0],
        child_forename='Mary, "May"',
        initiating_agency="Family Hub,\r\nNorth Team",
        lp_phone="020 7777 5150\next 2",
    )
    data = register([tricky, with_cells(EXAMPLE_ROWS[1], dob="31/02/2020")])
    translation = translate(data)
    [episode] = translation.episodes
    assert episode.child.given_names == 'Mary, "May"'
    assert episode.extensions[EXT]["initiating_agency"] == "Family Hub,\r\nNorth Team"
    assert [r.location for r in translation.rejected] == ["row 3, column dob"]  # records, not lines
    assert rows_of(ADAPTER.from_national([episode]))[1] == tricky


def test_a_header_cell_with_a_control_character_refuses_the_register() -> None:
    """A column name is kept in extensions (national XML cannot hold a control character in a
    member name) and named in every location and report line: refused at its header cell."""
    header = [*COLUMNS, "note\x01x"]
    rows = [[*r, "y"] for r in EXAMPLE_ROWS]
    with pytest.raises(AdapterError) as caught:
        translate(register(rows, header))
    assert caught.value.code == "schema_violation"
    assert caught.value.location == f"row 1, column {len(COLUMNS) + 1}"


def test_unknown_columns_are_kept_and_written_back() -> None:
    header = [*COLUMNS[:3], "Notes", *COLUMNS[3:], "team "]
    rows = [[*r[:3], f"note {i}, with comma", *r[3:], ""] for i, r in enumerate(EXAMPLE_ROWS)]
    translation = translate(register(rows, header))
    assert len(translation.episodes) == 3
    kept = translation.episodes[0].extensions[EXT]["extra_columns"]
    assert kept == {"Notes": "note 0, with comma", "team ": ""}
    extended = {f.location for f in translation.report.fields if f.fate is Fate.EXTENDED}
    assert {"column Notes", "column team "} <= extended
    written = rows_of(ADAPTER.from_national(translation.episodes))
    assert written[0] == [*COLUMNS, "Notes", "team "]
    assert [r[-2:] for r in written[1:]] == [[f"note {i}, with comma", ""] for i in range(3)]


def _with_extras(episode: Episode, extras: dict[str, str]) -> Episode:
    kept = {**episode.extensions.get(EXT, {}), "extra_columns": extras}
    return episode.model_copy(update={"extensions": {**episode.extensions, EXT: kept}})


_COLUMN_NAMES = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(" -\t\r\n")
)


_RESPELLINGS: list[Callable[[str], str]] = [
    str.upper,
    str.lower,
    str.swapcase,
    lambda name: f" {name.replace(' ', '-')}\t",
]


@given(_COLUMN_NAMES, st.sampled_from(_RESPELLINGS) | _COLUMN_NAMES.map(lambda n: lambda _: n))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extra_columns_spelled_alike_are_written_as_one(
    first: str, respell: Callable[[str], str]
) -> None:
    # Episodes of two registers whose extra column is "Notes" in one, "NOTES" in the other: the
    # writer merges them by the rule the reader refuses repeats by, so it can read what it wrote.
    second = respell(first)  # the same column spelled otherwise, or another column
    key = column_key
    assume(key(first) and key(second) and {key(first), key(second)}.isdisjoint(COLUMNS))
    base = translate(EXAMPLE.read_bytes()).episodes
    written = ADAPTER.from_national(
        [_with_extras(base[0], {first: "a"}), _with_extras(base[1], {second: "b"})]
    )
    back = translate(written)
    assert back.rejected == []
    extras = [e.extensions[EXT]["extra_columns"] for e in back.episodes]
    if key(first) == key(second):
        assert rows_of(written)[0] == [*COLUMNS, guarded(first)]
        assert extras == [{first: "a"}, {first: "b"}]
    else:
        assert rows_of(written)[0] == [*COLUMNS, guarded(first), guarded(second)]
        assert extras == [{first: "a", second: ""}, {first: "", second: "b"}]


@pytest.mark.parametrize(
    "extras",
    [{"CAF Ref": "x"}, {"notes": "a", "Notes": "b"}, {" ": "x"}],
    ids=["a known column", "twice in one episode", "unnamed with a value"],
)
def test_an_extra_column_that_cannot_be_read_back_is_refused(extras: dict[str, str]) -> None:
    episode = translate(EXAMPLE.read_bytes()).episodes[0]
    with pytest.raises(AdapterError) as caught:
        ADAPTER.from_national([episode, _with_extras(episode, extras)])
    assert caught.value.code == "schema_violation"
    assert caught.value.location == f"/1/extensions/{EXT}/extra_columns"


def test_an_empty_unnamed_extra_column_is_not_written() -> None:
    episode = _with_extras(translate(EXAMPLE.read_bytes()).episodes[0], {"": "", "Notes": "n"})
    assert rows_of(ADAPTER.from_national([episode]))[0] == [*COLUMNS, "Notes"]


def test_optional_columns_may_be_left_out() -> None:
    keep = [i for i, c in enumerate(COLUMNS) if c not in ("upn", "lp_phone", "dob")]
    data = register([[r[i] for i in keep] for r in EXAMPLE_ROWS], [COLUMNS[i] for i in keep])
    translation = translate(data)
    assert len(translation.episodes) == 3 and translation.rejected == []
    assert all(e.child.identifiers.upn is None for e in translation.episodes)


# --- bad rows ---------------------------------------------------------------------------------------


def test_bad_rows_are_rejected_with_row_and_column_and_the_rest_go_on() -> None:
    good = EXAMPLE_ROWS
    bad = [
        with_cells(good[0], dob="31/02/2020"),
        with_cells(good[1], nhs_number="5087023208"),
        with_cells(good[1], la_code="999"),
        with_cells(good[2], closure_outcome="Sorted out"),
        good[2][:-1],
        with_cells(good[0], gender="M", upn="H211779947620"),
    ]
    data = register([good[0], bad[0], good[1], bad[1], bad[2], bad[3], bad[4], bad[5], good[2]])
    translation = translate(data)
    assert [e.local_ref for e in translation.episodes] == [r[0] for r in good]
    assert [r.location for r in translation.rejected] == [
        "row 3, column dob",
        "row 5, column nhs_number",
        "row 6, column la_code",
        "row 7, column closure_outcome",
        "row 8, column closure_outcome",
        "row 9, column gender",
    ]
    rules = [[p.rule for p in r.problems] for r in translation.rejected]
    assert rules == [
        ["date.dd_mm_yyyy"],
        ["nhs_number.checksum"],
        ["authority.unknown_dfe"],
        ["closure.register_word"],
        ["csv.cell_count"],
        ["gender.register_word", "upn.checksum"],  # every failing column of the row
    ]
    words = {"Male", "Female", "Not known", "Open", "Closed", *OUTCOME_TO_WORD.values()}
    personal = {cell for row in bad for cell in row if len(cell) > 3} - words
    for rejection in translation.rejected:
        for problem in rejection.problems:
            text = f"{problem} {rejection.location}"
            assert not [p for p in personal if p in text], text


@pytest.mark.parametrize(
    ("cells", "location", "rule"),
    [
        ({"status": "Open", "closed_date": "01/01/2026"}, "column closed_date", "state.closure"),
        ({"closed_date": ""}, "column closed_date", "closure.incomplete"),
        ({"status": "Suspended"}, "column status", "status.register_word"),
        ({"child_surname": "  "}, "column child_surname", "required.empty"),
        ({"dob": "01/01/2099"}, "column dob", "dates.birth_in_future"),
        ({"postcode": "London"}, "column postcode", "postcode.format"),
        ({"agency_type": "Health visiting"}, "column agency_type", "agency_type.national"),
        ({"assessment_completed": "2025-01-22"}, "column assessment_completed", "date.dd_mm_yyyy"),
    ],
)
def test_row_rules(cells: dict[str, str], location: str, rule: str) -> None:
    translation = translate(register([with_cells(EXAMPLE_ROWS[2], **cells)]))
    assert translation.episodes == []
    [rejection] = translation.rejected
    assert rejection.location == f"row 2, {location}"
    assert rejection.problems[0].rule.startswith(rule)


def test_a_cell_over_the_register_limit_rejects_only_its_row() -> None:
    huge = with_cells(EXAMPLE_ROWS[1], child_surname="M" * (MAX_CELL_CHARS + 1))
    longest = with_cells(EXAMPLE_ROWS[2], lp_phone="9" * MAX_CELL_CHARS)  # at the limit: read
    translation = translate(register([EXAMPLE_ROWS[0], huge, longest]))
    assert [e.local_ref for e in translation.episodes] == [EXAMPLE_ROWS[0][0], EXAMPLE_ROWS[2][0]]
    [rejection] = translation.rejected
    assert rejection.location == "row 3, column child_surname"
    assert [p.rule for p in rejection.problems] == ["csv.cell_too_long"]
    assert "MMM" not in str(rejection)


@pytest.mark.parametrize("process_limit", [1 << 30, 1_000], ids=["raised", "lowered"])
def test_the_cell_limit_is_the_registers_whatever_the_csv_modules(process_limit: int) -> None:
    """`csv.field_size_limit` is one setting for the whole process: any other code may change it.
    Raised, it let a 3 MB surname through; lowered, it refused ordinary cells as `csv.syntax`."""
    surname = with_cells(EXAMPLE_ROWS[0], child_surname="M" * 3_000_000)
    phone = with_cells(EXAMPLE_ROWS[1], lp_phone="9" * 5_000)
    data = register([surname, phone, EXAMPLE_ROWS[2]])
    before = csv.field_size_limit(process_limit)
    try:
        translation = translate(data)
        assert csv.field_size_limit() == process_limit  # put back as it was found
    finally:
        csv.field_size_limit(before)
    assert [e.local_ref for e in translation.episodes] == [r[0] for r in EXAMPLE_ROWS[1:]]
    assert [(r.location, [p.rule for p in r.problems]) for r in translation.rejected] == [
        ("row 2, column child_surname", ["csv.cell_too_long"])
    ]


def test_a_long_cell_is_located_in_its_column_and_no_row_is_lost() -> None:
    # Over the csv module's own limit, its error stopped a quoted cell half-way, column unknown,
    # and the rest of the cell was read as rows of its own.
    lines = "a line of notes\r\n" * (MAX_CELL_CHARS // 17 + 1)
    header = [*COLUMNS, "Notes"]
    rows = [[*EXAMPLE_ROWS[0], lines], [*EXAMPLE_ROWS[1], "short"], [*EXAMPLE_ROWS[2], ""]]
    translation = translate(register(rows, header))
    assert [e.local_ref for e in translation.episodes] == [r[0] for r in EXAMPLE_ROWS[1:]]
    [rejection] = translation.rejected
    assert [(p.where, p.rule) for p in rejection.problems] == [
        ("row 2, column Notes", "csv.cell_too_long"),
        ("row 2, column *", "csv.lines_taken_in"),
    ]
    [first, second] = translate(register(rows[1:], header)).episodes  # the rows after it: as ever
    assert [first.local_ref, second.local_ref] == [r[0] for r in EXAMPLE_ROWS[1:]]


def test_a_header_cell_over_the_limit_refuses_the_file() -> None:
    with pytest.raises(AdapterError) as caught:
        translate(register(EXAMPLE_ROWS, [*COLUMNS, "N" * (MAX_CELL_CHARS + 1)]))
    assert caught.value.code == "payload_too_large"
    assert caught.value.location == f"row 1, column {len(COLUMNS) + 1}"


def test_a_control_character_rejects_its_row() -> None:
    data = register(EXAMPLE_ROWS).replace("Tomás".encode(), b"Tom\x00s")
    translation = translate(data)
    assert len(translation.episodes) == 2
    assert [r.location for r in translation.rejected] == ["row 2, column child_forename"]


def test_closed_without_a_closure_is_a_warning() -> None:
    row = with_cells(EXAMPLE_ROWS[2], closed_date="", closure_outcome="")
    translation = translate(register([row, with_cells(row, postcode="QQ1 1QQ")]))
    assert [e.state for e in translation.episodes] == [EpisodeState.CLOSED] * 2
    assert all(e.closure is None for e in translation.episodes)
    assert [(w.rule, w.where) for w in translation.warnings] == [
        ("closure.missing", "row 2, column closure_outcome"),
        ("postcode.not_bs7666", "row 3, column postcode"),
        ("closure.missing", "row 3, column closure_outcome"),
    ]


def test_register_words_ignore_case_and_spacing() -> None:
    row = with_cells(
        EXAMPLE_ROWS[2],
        gender="  male",
        status="CLOSED",
        closure_outcome="consent  overridden (safeguarding ISSUE)",
        nhs_number="190 392 6416",
        postcode="n74qd",
        dob="7/1/2011",
    )
    translation = translate(register([row]))
    [episode] = translation.episodes
    assert episode.child.gender is Gender.MALE
    assert episode.closure is not None
    assert episode.closure.outcome is ClosureOutcome.CONSENT_OVERRIDDEN
    assert episode.child.identifiers.nhs_number == "1903926416"
    assert episode.child.date_of_birth == dt.date(2011, 1, 7)
    rules = {(f.location, f.rule) for f in translation.report.fields}
    assert ("column nhs_number", "identifier.normalise") in rules
    assert ("column postcode", "postcode.normalise") in rules
    written = rows_of(ADAPTER.from_national([episode]))[1]
    assert written == with_cells(
        EXAMPLE_ROWS[2],
        closure_outcome="Consent overridden (safeguarding issue)",
        postcode="N7 4QD",
        dob="07/01/2011",
    )


def test_potential_status_is_read_and_written() -> None:
    row = with_cells(EXAMPLE_ROWS[0], status="Potential")
    [episode] = translate(register([row])).episodes
    assert episode.state is EpisodeState.POTENTIAL
    assert rows_of(ADAPTER.from_national([episode]))[1] == row


def test_lead_practitioner_of_the_initiating_agency_is_national() -> None:
    row = with_cells(EXAMPLE_ROWS[1], lp_agency="Housing Needs Team")  # = initiating_agency
    translation = translate(register([row]))
    [episode] = translation.episodes
    lead = episode.lead_professional
    assert lead is not None
    assert (lead.name, lead.organisation, lead.agency_type, lead.telephone) == (
        "Jack Fernández",
        "Housing Needs Team",
        AgencyType.HOUSING,
        "020 7373 4422",
    )
    assert "lead_practitioner" not in episode.extensions[EXT]
    assert rows_of(ADAPTER.from_national([episode]))[1] == row


# --- the whole file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n"])
def test_an_empty_file_has_no_header(data: bytes) -> None:
    with pytest.raises(AdapterError) as caught:
        translate(data)
    assert caught.value.code == "schema_violation" and caught.value.location == "row 1"


def test_header_only_is_an_empty_register() -> None:
    translation = translate(register([]))
    assert translation.episodes == [] and translation.rejected == []
    assert rows_of(ADAPTER.from_national([])) == [list(COLUMNS)]


@pytest.mark.parametrize("column", ["la_code", "gender", "status", "caf_ref"])
def test_a_missing_required_column_refuses_the_file(column: str) -> None:
    keep = [i for i, c in enumerate(COLUMNS) if c != column]
    data = register([[r[i] for i in keep] for r in EXAMPLE_ROWS], [COLUMNS[i] for i in keep])
    with pytest.raises(AdapterError) as caught:
        translate(data)
    assert caught.value.code == "schema_violation"
    assert column in caught.value.message and caught.value.location == f"row 1, column {column}"


def test_a_repeated_column_refuses_the_file() -> None:
    data = register([[*r, r[1]] for r in EXAMPLE_ROWS], [*COLUMNS, "LA code"])
    with pytest.raises(AdapterError) as caught:
        translate(data)
    assert caught.value.location == f"row 1, column {len(COLUMNS) + 1}"


@pytest.mark.parametrize("blank", ["", " "])
def test_trailing_empty_header_cells_are_ignored(blank: str) -> None:
    # Excel writes `...,closure_outcome,,`, with rows that end in empty cells, or stop short.
    good = EXAMPLE_ROWS
    header = [*COLUMNS, "", blank]
    rows = [[*good[0], "", ""], good[1], [*good[2], " "], [*good[1], "", "stray"], good[0][:-1]]
    translation = translate(register(rows, header))
    assert [e.local_ref for e in translation.episodes] == [good[0][0], good[1][0], good[2][0]]
    assert [(r.location, [p.rule for p in r.problems]) for r in translation.rejected] == [
        (f"row 5, column {len(COLUMNS) + 2}", ["csv.unnamed_column"]),
        ("row 6, column closure_outcome", ["csv.cell_count"]),
    ]
    assert "stray" not in str(translation.rejected[0])
    located = {f.location for f in translation.report.fields}
    assert located == {f"column {c}" for c in COLUMNS}  # an unnamed column is no field
    written = rows_of(ADAPTER.from_national(translation.episodes))
    assert written[0] == list(COLUMNS) and written[1:] == good


def test_an_empty_header_cell_between_named_ones_is_an_unnamed_column() -> None:
    # A spacer column: read past while empty; a value under it has no name to be kept (and written
    # back) by, so its row is rejected along with every other failing column of the row.
    header = [*COLUMNS[:3], "", *COLUMNS[3:], "", "Notes"]
    rows = [[*r[:3], "", *r[3:], "", "note"] for r in EXAMPLE_ROWS]
    rows[1][3] = "stray"
    rows[2][COLUMNS.index("dob") + 1] = "31/02/2020"
    rows[2][3] = "stray"
    translation = translate(register(rows, header))
    assert [e.local_ref for e in translation.episodes] == [EXAMPLE_ROWS[0][0]]
    assert translation.episodes[0].extensions[EXT]["extra_columns"] == {"Notes": "note"}
    problems = [[(p.where, p.rule) for p in r.problems] for r in translation.rejected]
    assert problems == [
        [("row 3, column 4", "csv.unnamed_column")],
        [("row 4, column dob", "date.dd_mm_yyyy"), ("row 4, column 4", "csv.unnamed_column")],
    ]


def test_not_utf8_is_unsupported() -> None:
    with pytest.raises(AdapterError) as caught:
        translate(EXAMPLE.read_bytes().decode("utf-8").encode("latin-1"))
    assert caught.value.code == "unsupported_format"


def test_a_non_london_authority_cannot_be_written() -> None:
    episode = translate(EXAMPLE.read_bytes()).episodes[0]
    elsewhere = episode.model_copy(update={"home_authority": "E08000025"})
    with pytest.raises(AdapterError) as caught:
        ADAPTER.from_national([episode, elsewhere])
    assert caught.value.location == "/1/home_authority"


# --- streaming and progress -------------------------------------------------------------------------


def _big(rows: int) -> bytes:
    body = (EXAMPLE_ROWS * (rows // len(EXAMPLE_ROWS) + 1))[:rows]
    return register(body)


def test_rows_stream_with_progress() -> None:
    data = _big(300)
    reader = iter_rows(data, received_at=RECEIVED)
    first = next(iter(reader))
    assert first.row == 2 and first.episode is not None
    assert 0 < reader.position < reader.size / 10  # read as it goes, not all at once
    seen: list[Progress] = []
    translation = ADAPTER.to_national(data, received_at=RECEIVED, on_row=seen.append)
    assert len(translation.episodes) == len(seen) == 300
    assert [p.row for p in seen] == list(range(2, 302))
    assert all(a.position < b.position for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1].position == seen[-1].size and seen[-1].episodes == 300


def test_ten_thousand_rows(capsys: pytest.CaptureFixture[str]) -> None:
    data = _big(10_000)
    text = data.decode("utf-8")
    started = time.perf_counter()
    raw = sum(1 for _ in csv.reader(io.StringIO(text, newline="")))
    raw_seconds = time.perf_counter() - started
    started = time.perf_counter()
    translation = ADAPTER.to_national(data)
    seconds = time.perf_counter() - started
    assert raw == 10_001
    assert len(translation.episodes) == 10_000 and translation.rejected == []
    assert len(translation.report.fields) == len(COLUMNS)  # per column, not per cell
    started = time.perf_counter()
    written = ADAPTER.from_national(translation.episodes)
    write_seconds = time.perf_counter() - started
    assert written == data
    with capsys.disabled():
        print(
            f"\ncaf-register-csv: to_national {10_000 / seconds:,.0f} rows/s "
            f"(csv.reader alone {10_000 / raw_seconds:,.0f} rows/s), "
            f"from_national {10_000 / write_seconds:,.0f} rows/s"
        )


@pytest.mark.parametrize("rows", [40, 4_000], ids=["to the end of the file", "past the csv limit"])
def test_the_lines_a_stray_quote_takes_in_are_named(rows: int) -> None:
    """Before, they were lost without a word: 1,999 of 2,000 rows in one such register."""
    good = EXAMPLE_ROWS[0]
    data = register([good] * rows).split(b"\r\n")
    data[2] = data[2].replace(b",", b',"', 1)  # an opening quote in row 2, never closed
    translation = translate(b"\r\n".join(data))
    rejected = translation.rejected[0]
    taken = [p for p in rejected.problems if p.rule == "csv.lines_taken_in"]
    assert len(taken) == 1 and "from line 3 to line" in taken[0].message
    last = int(taken[0].message.split("to line ")[1].split()[0])
    assert last > 3
    # Every line of the file is an episode, or inside a rejection that names it.
    accounted = len(translation.episodes) + sum(
        1 + (last - 3 if r is rejected else 0) for r in translation.rejected
    )
    assert accounted >= rows


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://x")',
        "@SUM(A1)",
        '-HYPERLINK("http://x?"&A1)',
        "+cmd|' /C calc'!A0",
        "-1+1+cmd|' /C calc'!A0",
        "- see notes",  # a text, but a spreadsheet would take it for a formula (and fail)
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_written_as_text_and_read_back(cell: str) -> None:
    """CSV injection: a value from one borough must not become a formula in another's spreadsheet."""
    row = with_cells(EXAMPLE_ROWS[0], child_surname=cell, lp_phone=cell)
    [episode] = translate(register([row])).episodes
    written = ADAPTER.from_national([episode])
    cells = dict(zip(COLUMNS, rows_of(written)[1], strict=False))
    assert cells["child_surname"] == cells["lp_phone"] == "'" + cell
    [back] = translate(written).episodes
    assert back.child.family_name == episode.child.family_name == cell
    assert back.extensions[EXT]["lp_phone"] == cell


@pytest.mark.parametrize(
    "cell",
    [
        "+44 20 7373 4422",
        "+44 (0)20 7373 4422",
        "-12.5",
        "-1,000",
        "-",
        "+",
        "'Connor",  # an apostrophe that guards nothing is the value's own
        "O'Brien",
        "'",
        "''",
    ],
)
def test_a_cell_no_spreadsheet_would_run_comes_back_as_it_was(cell: str) -> None:
    """Issue 4: a register read and written back gives the same cells. Only cells that could run as
    a formula are guarded: a sign before a number or telephone number cannot."""
    row = [*with_cells(EXAMPLE_ROWS[1], child_surname=cell, lp_phone=cell), cell]
    data = register([row], [*COLUMNS, "Notes"])
    [episode] = translate(data).episodes
    assert episode.child.family_name == episode.extensions[EXT]["lp_phone"] == cell
    assert episode.extensions[EXT]["extra_columns"] == {"Notes": cell}
    assert ADAPTER.from_national([episode]) == data


@pytest.mark.parametrize("cell", [' =HYPERLINK("x")', "\n=1+1", "  @SUM(A1)", " -A1", "\t=A1"])
def test_an_extra_cell_that_runs_after_leading_spaces_is_guarded(cell: str) -> None:
    # Extra columns are kept verbatim, spaces too; some spreadsheets take them off, then run it.
    header = [*COLUMNS, "Notes", cell]
    [episode] = translate(register([[*EXAMPLE_ROWS[0], cell, "n"]], header)).episodes
    written = ADAPTER.from_national([episode])
    assert rows_of(written)[0][-1] == "'" + cell
    assert rows_of(written)[1][-2:] == ["'" + cell, "n"]
    [back] = translate(written).episodes
    assert back.extensions[EXT]["extra_columns"] == {"Notes": cell, cell: "n"}


def _could_run(cell: str) -> bool:
    """The rule, said once more independently: a spreadsheet may take off leading whitespace (and
    OWASP names a leading tab or CR), then run `=` and `@`, and a sign before anything but a
    number or telephone shape."""
    if cell[:1] in ("\t", "\r"):
        return True
    text = cell.lstrip()
    if text[:1] in ("=", "@"):
        return True
    return text[:1] in ("+", "-") and not set(text[1:]) <= set("0123456789 ().,-")


@given(st.text(alphabet="'=+-@a1 .,()|\t\n\r", max_size=8))
def test_guarding_is_undone_exactly(cell: str) -> None:
    runs = _could_run(cell.lstrip("'"))
    assert guarded(cell) == ("'" + cell if runs else cell)  # only what could run
    assert unguarded(guarded(cell)) == cell
    # Read and written back, a cell is unchanged unless it could run and came unguarded.
    assert (guarded(unguarded(cell)) == cell) is (cell.startswith("'") or not runs)


_LEADS = st.text(alphabet="=+-@' \t\n", max_size=4)
_BODIES = st.sampled_from(
    ["44 20 7373 4422", "12.5", 'HYPERLINK("x")', "SUM(A1)", "cmd|' /C calc'!A0", "", "'"]
) | st.text(_TEXT_CHARACTERS, max_size=8)
_LEADING = st.builds(str.__add__, _LEADS, _BODIES)
_CELL_TEXT = _LEADING.map(str.strip).filter(bool)  # a register column is read without padding
_TEXT_COLUMNS = ("initiating_agency", "lead_practitioner", "lp_agency", "lp_phone")


@given(
    local_ref=_CELL_TEXT,
    names=st.tuples(_CELL_TEXT, _CELL_TEXT),
    kept=st.tuples(*(_CELL_TEXT for _ in _TEXT_COLUMNS)),
    notes=_LEADING,
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_written_and_read_back_is_the_same(
    local_ref: str, names: tuple[str, str], kept: tuple[str, ...], notes: str
) -> None:
    """A register written by us and read back gives the same values: leading `=+-@'`, spaces."""
    values = dict(zip(_TEXT_COLUMNS, kept, strict=True))
    assume(values["lp_agency"] != values["initiating_agency"])  # else a national lead professional
    base = translate(EXAMPLE.read_bytes()).episodes[1]
    child = base.child.model_copy(update={"given_names": names[0], "family_name": names[1]})
    extensions = {EXT: {**base.extensions[EXT], **values, "extra_columns": {"Notes": notes}}}
    episode = base.model_copy(
        update={"local_ref": local_ref, "child": child, "extensions": extensions}
    )
    translation = translate(ADAPTER.from_national([episode]))
    assert translation.rejected == []
    [back] = translation.episodes
    assert back.local_ref == local_ref
    assert (back.child.given_names, back.child.family_name) == names
    assert back.extensions == episode.extensions
