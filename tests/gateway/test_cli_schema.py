"""`cafx schema export` and `cafx validate`, run as a user would (through click's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from lxml import etree

from gateway.cli import cli

NATIONAL = Path(__file__).resolve().parent.parent / "fixtures" / "national"


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_export_json_schema_is_a_valid_2020_12_schema(tmp_path: Path) -> None:
    code, _, _ = _run(
        "schema", "export", "--format", "json-schema", "--out", str(tmp_path / "s.json")
    )
    assert code == 0
    schema = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads((NATIONAL / "valid-episode.json").read_text(encoding="utf-8"))
    assert jsonschema.Draft202012Validator(schema).is_valid(document)


def test_export_xsd_validates_the_hand_written_xml() -> None:
    code, out, _ = _run("schema", "export", "--format", "xsd")
    assert code == 0
    xsd = etree.XMLSchema(etree.fromstring(out.encode()))
    assert xsd.validate(etree.parse(str(NATIONAL / "valid-episode.xml")))


@pytest.mark.parametrize("name", ["valid-episode.json", "valid-episode.xml"])
def test_validate_hand_written_documents(name: str) -> None:
    code, out, err = _run("validate", str(NATIONAL / name))
    assert code == 0, out + err
    assert "valid:" in err and "0 error(s)" in err


def test_validate_reports_every_problem_with_location_and_exit_1(tmp_path: Path) -> None:
    document = json.loads((NATIONAL / "valid-episode.json").read_text(encoding="utf-8"))
    document["child"]["identifiers"]["nhs_number"] = "9434765918"
    document["state"] = "half-open"
    document["child"]["address"]["postcode"] = "QX1 1AA"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    code, out, err = _run("validate", str(path))
    assert code == 1
    lines = out.splitlines()
    assert (
        "error\t/child/identifiers/nhs_number\tnhs_number.checksum\tNHS number check digit does not match"
        in lines
    )
    assert any(line.startswith("error\t/state\tenum\t") for line in lines)
    assert "9434765918" not in out + err


def test_validate_xml_locates_problems_by_xpath(tmp_path: Path) -> None:
    xml = (NATIONAL / "valid-episode.xml").read_bytes()
    path = tmp_path / "bad.xml"
    path.write_bytes(xml.replace(b"M80120000500A", b"N80120000500A"))
    code, out, _ = _run("validate", str(path))
    assert code == 1
    assert "error\t/episode/child/identifiers/upn\tupn.checksum\t" in out
    path.write_bytes(xml.replace(b"<caf:state>closed</caf:state>", b"<caf:state>shut</caf:state>"))
    code, out, _ = _run("validate", str(path))
    assert code == 1
    assert "/episode/state\txsd.schemav_cvc_enumeration_valid" in out
    assert "shut" not in out


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"<episode xmlns='urn:caf:national:1'><unclosed></episode>",
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>',
        b"\xff\xfe\x00garbage",
    ],
)
def test_validate_unreadable_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "doc"
    path.write_bytes(content)
    code, out, err = _run("validate", str(path))
    assert code == 2
    assert "root:" not in out + err  # nothing of /etc/passwd


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = _run("validate", str(tmp_path / "absent.json"))
    assert code == 2


def test_validate_reads_standard_input() -> None:
    code, _, _ = _run("validate", "-", stdin=(NATIONAL / "valid-episode.json").read_bytes())
    assert code == 0
