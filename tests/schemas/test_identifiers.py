"""Identifier vectors: the published ones, every one in the example facts, and hand-made failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    IdentifierError,
    authority_by_dfe,
    authority_by_gss,
    is_gss_code,
    london_authorities,
    normalise_nhs_number,
    normalise_postcode,
    normalise_uln,
    normalise_upn,
    postcode_is_strict,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "examples"


def _facts_children() -> list[dict[str, str | None]]:
    children = []
    for path in sorted(EXAMPLES.glob("*/*.facts.json")):
        facts = json.loads(path.read_text(encoding="utf-8"))
        for record in facts if isinstance(facts, list) else [facts]:
            children += record["children"]
    return children


FACT_NHS = sorted({c["nhs_number"] for c in _facts_children() if c["nhs_number"]})
FACT_UPN = sorted({c["upn"] for c in _facts_children() if c["upn"]})


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", " 943-476-5919 ", *FACT_NHS])
def test_valid_nhs_numbers(value: str) -> None:
    assert normalise_nhs_number(value) == value.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("9434765918", "nhs_number.checksum"),  # wrong check digit
        ("943476591", "nhs_number.format"),  # 9 digits
        ("94347659190", "nhs_number.format"),  # 11 digits
        ("94347A5919", "nhs_number.format"),
        ("", "nhs_number.format"),
        ("0500000000", "nhs_number.checksum"),  # sum 45, r = 1, check 10: never valid
        ("0500000001", "nhs_number.checksum"),
    ],
)
def test_invalid_nhs_numbers(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        normalise_nhs_number(value)
    assert caught.value.rule == rule
    assert value.strip() == "" or value not in str(caught.value)


def test_nhs_check_digit_eleven_means_zero() -> None:
    # weighted sum 0, r = 0, 11 - 0 = 11, which is written as 0
    assert normalise_nhs_number("0000000000") == "0000000000"


@pytest.mark.parametrize(
    "value",
    ["B801200005001", "M80120000500A", "B80120000500B", "b801200005001", *FACT_UPN],
)
def test_valid_upns(value: str) -> None:
    assert normalise_upn(value) == value.upper()


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("R247962919251", "upn.checksum"),  # the published invalid one
        ("A801200005001", "upn.checksum"),
        ("B80120000500", "upn.format"),  # 12 characters
        ("I801200005001", "upn.format"),  # I is not in the check alphabet
        ("B8012000050S1", "upn.format"),
        ("M80120000500S", "upn.format"),  # S is not a temporary-UPN letter
        ("N80120000500A", "upn.checksum"),  # temporary UPN with the wrong check letter
    ],
)
def test_invalid_upns(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        normalise_upn(value)
    assert caught.value.rule == rule


def test_valid_and_invalid_ulns() -> None:
    # 123456789: weighted sum 210, r = 1, check = 9
    assert normalise_uln("1234567899") == "1234567899"
    for value, rule in (
        ("1234567890", "uln.checksum"),
        ("123456789", "uln.format"),
        ("1100000000", "uln.checksum"),  # sum 19, r = 8, check 2: wrong digit
        ("0000000000", "uln.checksum"),  # r = 0 is never valid
    ):
        with pytest.raises(IdentifierError) as caught:
            normalise_uln(value)
        assert caught.value.rule == rule


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_exactly_one_uln_check_digit_or_none(body: str) -> None:
    valid = []
    for digit in "0123456789":
        try:
            valid.append(normalise_uln(body + digit))
        except IdentifierError:
            pass
    assert len(valid) <= 1


@pytest.mark.parametrize(
    ("raw", "normalised", "strict"),
    [
        ("NW1 6XE", "NW1 6XE", True),
        ("nw16xe", "NW1 6XE", True),
        ("  sw1a   1aa ", "SW1A 1AA", True),
        ("EC1A 1BB", "EC1A 1BB", True),
        ("QX1 1AA", "QX1 1AA", False),  # Q cannot start a postcode: accepted with a warning
        ("E1 1CI", "E1 1CI", False),  # C and I are not inward-code letters
        ("gir0aa", "GIR 0AA", True),  # the one postcode of another shape
    ],
)
def test_postcodes(raw: str, normalised: str, strict: bool) -> None:
    assert normalise_postcode(raw) == normalised
    assert postcode_is_strict(normalised) is strict


@pytest.mark.parametrize("raw", ["", "12345", "NW1", "NW1 6X", "NW1 6XE 7"])
def test_not_postcodes(raw: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        normalise_postcode(raw)
    assert caught.value.rule == "postcode.format"


def test_london_authorities_both_ways() -> None:
    authorities = london_authorities()
    assert len(authorities) == 33
    assert {a.gss for a in authorities} == {f"E090000{n:02d}" for n in range(1, 34)}
    camden = authority_by_gss("E09000007")
    assert camden is not None and camden.name == "Camden" and camden.dfe == "202"
    assert authority_by_dfe("202") == camden
    assert authority_by_dfe(202) == camden
    for authority in authorities:
        assert authority_by_dfe(authority.dfe) == authority
    assert authority_by_gss("E09000034") is None
    assert authority_by_dfe("999") is None


@pytest.mark.parametrize(
    ("code", "ok"),
    [("E09000007", True), ("W06000015", True), ("E0900007", False), ("X09000007", False)],
)
def test_gss_code_shape(code: str, ok: bool) -> None:
    assert is_gss_code(code) is ok
