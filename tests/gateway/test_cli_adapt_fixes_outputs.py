"""Review of `cafx adapt`, its results: one EHA document per family, one document on standard
output, `--out` apart from the inputs, results that land together, names kept apart by folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import get_adapter
from adapters.national import check_national
from gateway.cli import cli
from gateway.cli._adapt import _commit

from ..adapters.facts import EXAMPLES

REGISTER = EXAMPLES / "caf-register-csv" / "register-101.csv"
ECAF = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
CSC = EXAMPLES / "csc-closure-xml" / "csc-closure-xml-101-0.xml"
FAMILY = EXAMPLES / "eha-json" / "eha-json-101-0.json"  # three children
OTHER_FAMILY = EXAMPLES / "eha-json" / "eha-json-102-0.json"


def _adapt(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["adapt", *args], env={"COLUMNS": "400"})
    return result.exit_code, result.stdout_bytes, " ".join(result.stderr.split())


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _digest(folder: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in _files(folder)
    }


# -- finding 1: one EHA document per family -------------------------------------------------------


def test_a_register_to_eha_json_makes_one_document_per_child(tmp_path: Path) -> None:
    """Three unrelated children were written as the siblings P1-P3 of one family, exit 0."""
    out = tmp_path / "out"
    code, _, err = _adapt("--to", "eha-json", "--out", str(out), str(REGISTER))
    assert code == 0, err
    assert _files(out) == ["register-101-1.json", "register-101-2.json", "register-101-3.json"]
    docs = [json.loads((out / name).read_bytes()) for name in _files(out)]
    assert [d["assessmentId"] for d in docs] == [
        "CAF-211-2024-84536",
        "CAF-206-2026-51354",
        "CAF-206-2024-74090",
    ]
    for doc in docs:
        assert [m["role"] for m in doc["family"]["members"]] == ["CHILD"]
    assert docs[2]["status"] == "CLOSED" and "closure" in docs[2]  # Noah's closure is kept
    assert "conflicting_copies" not in err


def test_national_episodes_are_grouped_by_family(tmp_path: Path) -> None:
    eha, national = get_adapter("eha-json"), get_adapter("national-json")
    one = eha.to_national(FAMILY.read_bytes()).episodes
    other = eha.to_national(OTHER_FAMILY.read_bytes()).episodes
    alone = get_adapter("ecaf-xml-v3").to_national(ECAF.read_bytes()).episodes
    mixed = tmp_path / "mixed.json"
    mixed.write_bytes(national.from_national([one[0], *other, *alone, one[1], one[2]]))
    out = tmp_path / "out"
    code, _, err = _adapt(
        "--from", "national-json", "--to", "eha-json", "--out", str(out), str(mixed)
    )
    assert code == 0, err
    written = [json.loads((out / name).read_bytes()) for name in _files(out)]
    assert len(written) == 3
    assert written[0] == json.loads(FAMILY.read_bytes())  # the family whole, in member order
    assert written[1] == json.loads(OTHER_FAMILY.read_bytes())
    assert written[2]["family"]["familyRef"] is None
    assert written[2]["assessmentId"] == alone[0].local_ref


# -- finding 2: standard output takes one document ------------------------------------------------


def test_several_documents_for_standard_output_are_refused(tmp_path: Path) -> None:
    code, out, err = _adapt("--to", "ecaf-xml-v3", str(OTHER_FAMILY), str(CSC))
    assert code == 2 and out == b""
    assert "standard output takes one" in err and "--out" in err
    # One input, several documents (a family of three to a one-episode format): refused too.
    code, out, err = _adapt("--to", "national-xml", str(FAMILY))
    assert code == 2 and out == b""
    assert "too_many_documents: 3 documents" in err
    code, out, err = _adapt("--to", "eha-json", str(REGISTER))
    assert code == 2 and out == b""


def test_national_json_on_standard_output_is_one_array(tmp_path: Path) -> None:
    code, out, err = _adapt(str(ECAF), str(CSC), str(FAMILY))
    assert code == 0, err
    episodes = json.loads(out)
    assert isinstance(episodes, list) and len(episodes) == 5
    assert check_national(out).valid
    code, out, err = _adapt(str(ECAF))  # one episode: written as itself, as the adapter does
    assert code == 0 and isinstance(json.loads(out), dict)


def test_registers_on_standard_output_are_one_register(tmp_path: Path) -> None:
    second = tmp_path / "second.csv"
    second.write_bytes(REGISTER.read_bytes())
    code, out, err = _adapt("--to", "caf-register-csv", str(REGISTER), str(second), str(ECAF))
    assert code == 0, err
    assert out.count(b"caf_ref") == 1
    back = get_adapter("caf-register-csv").to_national(out)
    assert len(back.episodes) == 7 and not back.rejected


# -- finding 3: --out apart from the inputs -------------------------------------------------------


def test_out_among_the_inputs_is_refused(tmp_path: Path) -> None:
    same = tmp_path / "same"
    same.mkdir()
    (same / "family.json").write_bytes(FAMILY.read_bytes())
    (same / "case.xml").write_bytes(ECAF.read_bytes())
    before = _digest(same)
    for args in (
        ["--out", str(same), str(same)],
        ["--out", str(same / "results"), str(same)],
        ["--to", "national-xml", "--out", str(same), str(same / "case.xml")],
        ["--out", str(tmp_path), str(same / "case.xml")],
    ):
        code, out, err = _adapt(*args)
        assert code == 2, args
        assert "inside" in err or "is the input directory" in err
        assert _digest(same) == before
    (tmp_path / "link").symlink_to(same)
    assert _adapt("--out", str(tmp_path / "link"), str(same))[0] == 2
    assert _digest(same) == before
    assert not (same / "results").exists()


# -- finding 10: an input's results land together, or not at all ----------------------------------


def test_a_rename_that_fails_puts_back_what_was_replaced(tmp_path: Path) -> None:
    kept, new = tmp_path / "kept.xml", tmp_path / "new.xml"
    kept.write_bytes(b"old")
    first, missing = tmp_path / ".t1", tmp_path / ".t2"
    first.write_bytes(b"replacement")
    with pytest.raises(FileNotFoundError):
        _commit([(first, kept), (missing, new)])  # the second temporary is not there
    assert kept.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.xml"]  # no copy of it left


# -- finding 11: inputs of the same name ----------------------------------------------------------


def test_inputs_of_the_same_name_keep_their_folders_under_out(tmp_path: Path) -> None:
    for borough in ("camden", "hackney/2024"):
        (tmp_path / "in" / borough).mkdir(parents=True)
        (tmp_path / "in" / borough / "case.xml").write_bytes(ECAF.read_bytes())
    out = tmp_path / "out"
    code, _, err = _adapt("--out", str(out), str(tmp_path / "in"))
    assert code == 0, err
    assert _files(out) == ["camden/case.json", "hackney/2024/case.json"]


def test_results_that_would_share_a_name_are_refused_naming_the_other(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.xml").write_bytes(ECAF.read_bytes())
    (folder / "a.json").write_bytes(FAMILY.read_bytes())
    out = tmp_path / "out"
    code, _, err = _adapt("--out", str(out), str(folder))
    assert code == 2
    assert f"output_name_taken: its results would have the names of {folder / 'a.json'}" in err
    assert _files(out) == ["a.json"]
    assert json.loads((out / "a.json").read_bytes())[0]["local_ref"] == "EHA-202-2026-97825"
    # The same file given twice: the second is refused before it is translated.
    code, _, err = _adapt("--out", str(tmp_path / "twice"), str(ECAF), str(ECAF))
    assert code == 2 and "output_name_taken" in err
    assert _files(tmp_path / "twice") == ["ecaf-xml-v3-101-0.json"]


def test_results_are_written_with_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "case.xml").write_bytes(ECAF.read_bytes())
    code, _, err = _adapt("--out", str(out), str(tmp_path / "in"))
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "sub" / "case.json").stat().st_mode & 0o777 == 0o666 & ~umask
