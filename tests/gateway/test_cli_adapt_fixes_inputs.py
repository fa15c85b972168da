"""Review of `cafx adapt`, its inputs and what it says: nothing skipped without a word, exit 2 for
what cannot be used and 1 for what a format's rules reject, and a summary printed as it is."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import get_adapter
from gateway.cli import cli

from ..adapters.facts import EXAMPLES

ECAF = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
CSC = EXAMPLES / "csc-closure-xml" / "csc-closure-xml-101-0.xml"
FAMILY = EXAMPLES / "eha-json" / "eha-json-101-0.json"
REGISTER = EXAMPLES / "caf-register-csv" / "register-101.csv"


def _adapt(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["adapt", *args], env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout_bytes, " ".join(result.stderr.split())


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- finding 4: nothing in a directory is skipped without a word ----------------------------------


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def test_a_directory_that_cannot_be_listed_is_reported(shared: Path) -> None:
    (shared / "in" / "ok").mkdir(parents=True)
    (shared / "in" / "locked").mkdir()
    shutil.copy(ECAF, shared / "in" / "ok" / "case.xml")
    shutil.copy(CSC, shared / "in" / "locked" / "summary.xml")
    (shared / "in" / "locked").chmod(0o700)
    args = ["adapt", "--out", str(shared / "out"), str(shared / "in")]
    if os.geteuid() != 0:
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
        code, err = result.exit_code, result.stderr
    else:  # root lists anything: run as nobody
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, and no setpriv to run as another user")
        ran = subprocess.run(  # noqa: S603  # fixed arguments, our own interpreter
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
            + ["from gateway.cli import main; main()", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "400"},
            check=False,
        )
        code, err = ran.returncode, ran.stderr
    assert code == 2, err
    said = " ".join(err.split())
    assert f"{shared / 'in' / 'locked'}: unsupported_format: cannot list the directory" in said
    assert _files(shared / "out") == ["ok/case.json"]


def test_links_to_directories_are_followed_once(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(ECAF, tmp_path / "in" / "case.xml")
    (tmp_path / "in" / "examples").symlink_to(EXAMPLES / "csc-closure-xml")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")  # back up: walked once
    out = tmp_path / "out"
    code, _, err = _adapt("--glob", "*.xml", "--out", str(out), str(tmp_path / "in"))
    assert code == 0, err
    assert _files(out) == [
        "case.json",
        "examples/csc-closure-xml-101-0.json",
        "examples/csc-closure-xml-101-1.json",
        "examples/csc-closure-xml-101-2.json",
    ]


def test_entries_that_are_not_regular_files_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ECAF, folder / "case.xml")
    (folder / "gone.xml").symlink_to(tmp_path / "nowhere.xml")
    os.mkfifo(folder / "pipe.xml")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(folder / "sock.xml"))
        code, _, err = _adapt("--out", str(tmp_path / "out"), str(folder))
    assert code == 2
    assert f"{folder / 'gone.xml'}: unsupported_format: a symbolic link to nothing" in err
    assert f"{folder / 'pipe.xml'}: unsupported_format: not a regular file" in err
    assert f"{folder / 'sock.xml'}: unsupported_format: not a regular file" in err
    assert _files(tmp_path / "out") == ["case.json"]


# -- finding 5: no input at all -------------------------------------------------------------------


def test_an_empty_directory_or_a_glob_matching_nothing_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = _adapt(str(tmp_path / "empty"))
    assert code == 2 and out == b"" and "no input files" in err
    (tmp_path / "docs").mkdir()
    shutil.copy(ECAF, tmp_path / "docs" / "case.xml")
    code, _, err = _adapt("--glob", "*.XML", str(tmp_path / "docs"))
    assert code == 2 and "no input files" in err
    assert _adapt("--glob", "**/*.xml", str(tmp_path / "docs"))[0] == 0  # rglob's spelling


# -- finding 9: 2 for what cannot be used, 1 for what the format rejects --------------------------


def _cut(path: Path, tmp_path: Path, size: int) -> Path:
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(path.read_bytes()[:size])
    return cut


def test_unusable_inputs_exit_2(tmp_path: Path) -> None:
    national = tmp_path / "national.json"
    national.write_bytes(_adapt(str(ECAF))[1])
    header = tmp_path / "header.csv"
    header.write_bytes(REGISTER.read_bytes().replace(b"la_code,", b"la,", 1))
    cases = {
        "truncated XML": [str(_cut(ECAF, tmp_path, 600))],
        "truncated JSON": ["--from", "eha-json", str(_cut(FAMILY, tmp_path, 300))],
        "register without a required column": ["--from", "caf-register-csv", str(header)],
        "XML read as a register": ["--from", "caf-register-csv", str(ECAF)],
        "a closing summary read as eCAF": ["--from", "ecaf-xml-v3", str(CSC)],
        "national JSON read as EHA": ["--from", "eha-json", str(national)],
        "EHA read as national JSON": ["--from", "national-json", str(FAMILY)],
        "eCAF read as national XML": ["--from", "national-xml", str(ECAF)],
    }
    for case, args in cases.items():
        code, out, err = _adapt(*args)
        assert code == 2, (case, err)
        assert out == b"", case


def test_rejected_documents_exit_1(tmp_path: Path) -> None:
    no_surname = tmp_path / "no-surname.xml"
    no_surname.write_bytes(
        b"\n".join(line for line in ECAF.read_bytes().split(b"\n") if b"Surname" not in line)
    )
    code, _, err = _adapt(str(no_surname))
    assert code == 1, err
    assert "schema_violation at /CAFEpisode/Child/Surname" in err
    code, _, err = _adapt("--from", "ecaf-xml-v3", str(no_surname))
    assert code == 1, err


def test_an_out_that_cannot_be_made_is_exit_2_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"")
    code, out, err = _adapt("--out", str(tmp_path / "afile" / "sub"), str(ECAF))
    assert code == 2
    assert "cannot create" in err and "Traceback" not in err


# -- finding 13: the summary ----------------------------------------------------------------------


def test_a_national_documents_first_reason_is_printed(tmp_path: Path) -> None:
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF.read_bytes()).episodes[0]
    doc = json.loads(get_adapter("national-json").from_national([episode]))
    doc["child"]["identifiers"]["nhs_number"] = "0778857251"  # a check digit that fails
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    code, _, err = _adapt(str(bad))
    assert code == 1
    assert "schema_violation at /child/identifiers/nhs_number: not a valid caf-episode/1" in err
    assert "error: /child/identifiers/nhs_number: nhs_number" in err  # the rule, and why
    assert "0778857251" not in err


def test_a_rejected_field_is_printed_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(ECAF.read_bytes().replace(b">0778857255<", b">0778857251<"))
    assert bad.read_bytes() != ECAF.read_bytes()
    code, _, err = _adapt(str(bad))
    assert code == 0, err
    assert err.count("nhs_number.checksum") == 1
    assert "0778857251" not in err


def test_paths_are_printed_as_they_are(tmp_path: Path) -> None:
    for name in ("case:thumbs_up:.xml", "x:warning:[b].xml"):
        (tmp_path / name).write_bytes(b"<not-caf/>")
        code, _, err = _adapt(str(tmp_path / name))
        assert code == 2
        assert f"{tmp_path / name}: unsupported_format" in err


def test_a_register_of_bad_rows_lists_the_first_ones(tmp_path: Path) -> None:
    text = REGISTER.read_text(encoding="utf-8").splitlines()
    bad_row = text[1].replace("29/05/2021", "31/02/2021")
    register = tmp_path / "bad.csv"
    register.write_text("\n".join([text[0], *[bad_row] * 120]) + "\n", encoding="utf-8")
    code, _, err = _adapt(str(register))
    assert code == 1
    assert err.count("rejected row") == 50
    assert "... and 70 more rejected records" in err
    assert "(+120 records)" in err
