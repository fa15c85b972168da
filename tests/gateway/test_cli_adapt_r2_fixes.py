"""Review 2 of `cafx adapt`: an EHA family without a familyRef written back as one document, a
commit that cannot be undone keeps (and names) what it replaced, several named DIRs or files keep
apart under `--out`, nothing on standard output when nothing was read, national JSON without
`schema` or too large said for what it is."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters import get_adapter
from adapters._safe import MAX_DOCUMENT_BYTES
from gateway.cli import cli
from gateway.cli._adapt import _commit

from ..adapters.facts import EXAMPLES

ECAF = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
FAMILY = EXAMPLES / "eha-json" / "eha-json-101-0.json"  # three children
OTHER_FAMILY = EXAMPLES / "eha-json" / "eha-json-102-0.json"


def _adapt_run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["adapt", *args], env={"COLUMNS": "400"})
    return result.exit_code, result.stdout_bytes, " ".join(result.stderr.split())


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _no_family_ref(path: Path, folder: Path) -> tuple[Path, dict[str, Any]]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    del doc["family"]["familyRef"]
    folder.mkdir(parents=True, exist_ok=True)
    written = folder / path.name
    written.write_text(json.dumps(doc), encoding="utf-8")
    return written, doc


# -- finding 1: an EHA family without a familyRef -------------------------------------------------


def test_a_family_without_a_family_ref_comes_back_as_one_document(tmp_path: Path) -> None:
    fam, doc = _no_family_ref(FAMILY, tmp_path / "nofam")
    assert len([m for m in doc["family"]["members"] if m["role"] == "CHILD"]) == 3
    out = tmp_path / "rt"
    code, _, err = _adapt_run("--to", "eha-json", "--out", str(out), str(fam))
    assert code == 0, err
    assert _files(out) == ["eha-json-101-0.json"]
    assert json.loads((out / "eha-json-101-0.json").read_bytes()) == doc
    # Standard output takes it too: one document.
    code, stdout, err = _adapt_run("--to", "eha-json", str(fam))
    assert code == 0, err
    assert json.loads(stdout) == doc


def test_through_national_json_each_family_without_a_ref_stays_whole(tmp_path: Path) -> None:
    """Two such families in one national array: one document each, never one of both."""
    fam, doc = _no_family_ref(FAMILY, tmp_path / "a")
    other, other_doc = _no_family_ref(OTHER_FAMILY, tmp_path / "b")
    code, national, err = _adapt_run(str(fam), str(other))
    assert code == 0, err
    (tmp_path / "n.json").write_bytes(national)
    out = tmp_path / "rt"
    code, _, err = _adapt_run("--to", "eha-json", "--out", str(out), str(tmp_path / "n.json"))
    assert code == 0, err
    assert _files(out) == ["n-1.json", "n-2.json"]
    assert json.loads((out / "n-1.json").read_bytes()) == doc
    assert json.loads((out / "n-2.json").read_bytes()) == other_doc


def test_the_same_family_given_twice_without_a_ref_is_written_one_per_child(
    tmp_path: Path,
) -> None:
    """The writer does not take a child twice as one family's: each episode is a document."""
    fam, _ = _no_family_ref(FAMILY, tmp_path / "a")
    code, national, err = _adapt_run(str(fam), str(fam))
    assert code == 0, err
    (tmp_path / "n.json").write_bytes(national)
    out = tmp_path / "rt"
    code, _, err = _adapt_run("--to", "eha-json", "--out", str(out), str(tmp_path / "n.json"))
    assert code == 0, err
    assert len(_files(out)) == 6


# -- finding 2: a commit that cannot be undone ----------------------------------------------------


def _three(tmp_path: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for n in (1, 2, 3):
        (tmp_path / f"x-{n}.xml").write_bytes(f"OLD{n}".encode())
        (tmp_path / f".t{n}").write_bytes(f"NEW{n}".encode())
        pairs.append((tmp_path / f".t{n}", tmp_path / f"x-{n}.xml"))
    return pairs


def _targets(tmp_path: Path) -> list[bytes]:
    """What the three targets `_three` made hold now."""
    return [(tmp_path / f"x-{n}.xml").read_bytes() for n in (1, 2, 3)]


def test_a_backup_that_cannot_be_put_back_is_kept_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three(tmp_path)
    real = os.replace
    calls = {"n": 0}

    def replace(source: Any, destination: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if calls["n"] > 3:  # putting back
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as caught:
        _commit(pairs)
    monkeypatch.undo()
    message = str(caught.value)
    assert os.strerror(errno.ENOSPC) in message
    kept = sorted(tmp_path.glob(".cafx-*.old"))
    assert len(kept) == 2  # x-3's rename failed: its original stands, so no backup is kept
    assert all(str(path) in message for path in kept)
    assert sorted(p.read_bytes() for p in kept) == [b"OLD1", b"OLD2"]
    assert (tmp_path / "x-3.xml").read_bytes() == b"OLD3"


def test_a_rename_that_fails_onto_a_file_leaves_it_and_no_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup is a hard link to the file itself until the rename: putting it "back" would be
    a rename onto another link of the same file, which does nothing and leaves the backup."""
    pairs = _three(tmp_path)

    def replace(source: Any, destination: Any) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        _commit(pairs)
    monkeypatch.undo()
    assert (tmp_path / "x-1.xml").read_bytes() == b"OLD1"
    assert list(tmp_path.glob(".cafx-*.old")) == []


def test_an_interruption_between_renames_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three(tmp_path)
    pairs[2] = (pairs[2][0], tmp_path / "new" / "deep" / "x-3.xml")
    real = os.replace
    calls = {"n": 0}

    def replace(source: Any, destination: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _commit(pairs)
    monkeypatch.undo()
    assert _targets(tmp_path) == [b"OLD1", b"OLD2", b"OLD3"]
    assert not (tmp_path / "new").exists()  # the directories it made are gone again
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".cafx-")) == []


def test_a_copy_that_fails_part_way_leaves_no_hidden_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three(tmp_path)

    def no_link(*_: Any, **__: Any) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def half_copy(source: Any, destination: Any, **_: Any) -> None:
        Path(destination).write_bytes(Path(source).read_bytes()[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError):
        _commit(pairs)
    monkeypatch.undo()
    assert _targets(tmp_path) == [b"OLD1", b"OLD2", b"OLD3"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".cafx-")) == []


def test_directories_made_for_a_commit_that_fails_are_removed(tmp_path: Path) -> None:
    first, missing = tmp_path / ".t1", tmp_path / ".t2"
    first.write_bytes(b"NEW")
    with pytest.raises(FileNotFoundError):
        _commit([(first, tmp_path / "a" / "b" / "x.xml"), (missing, tmp_path / "y.xml")])
    assert not (tmp_path / "a").exists()


def test_a_commit_that_goes_through_leaves_no_backup(tmp_path: Path) -> None:
    pairs = _three(tmp_path)
    _commit(pairs)
    assert _targets(tmp_path) == [b"NEW1", b"NEW2", b"NEW3"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- finding 3: several named paths keep apart under --out ----------------------------------------


def test_several_dirs_named_keep_their_names_under_out(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    for borough in ("camden", "hackney"):
        (forms / borough).mkdir(parents=True)
        shutil.copyfile(ECAF, forms / borough / "case.xml")
    out = tmp_path / "o"
    code, _, err = _adapt_run("--out", str(out), str(forms / "camden"), str(forms / "hackney"))
    assert code == 0, err
    assert _files(out) == ["camden/case.json", "hackney/case.json"]
    # One DIR named alone: its files' paths below it, as before.
    code, _, err = _adapt_run("--out", str(tmp_path / "one"), str(forms / "camden"))
    assert code == 0, err
    assert _files(tmp_path / "one") == ["case.json"]


def test_files_named_from_different_folders_keep_apart(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copyfile(ECAF, tmp_path / folder / "x.xml")
    shutil.copyfile(ECAF, tmp_path / "a" / "y.xml")
    out = tmp_path / "o"
    code, _, err = _adapt_run(
        "--out", str(out), str(tmp_path / "a" / "x.xml"), str(tmp_path / "b" / "x.xml")
    )
    assert code == 0, err
    assert _files(out) == ["a/x.json", "b/x.json"]
    # Files of one folder: their names.
    code, _, err = _adapt_run(
        "--out", str(tmp_path / "p"), str(tmp_path / "a" / "x.xml"), str(tmp_path / "a" / "y.xml")
    )
    assert code == 0, err
    assert _files(tmp_path / "p") == ["x.json", "y.json"]


# -- finding 7: nothing on standard output when nothing was read ---------------------------------


def test_a_register_on_standard_output_is_not_written_when_nothing_was_read(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"not": "a form"')
    code, stdout, err = _adapt_run("--to", "caf-register-csv", str(bad))
    assert code == 2
    assert stdout == b""
    assert "unsupported_format" in err
    # Read, with no episodes: the header is written (an empty register says "read").
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"[]")
    code, stdout, err = _adapt_run(
        "--to", "caf-register-csv", "--from", "national-json", str(empty)
    )
    assert code == 0, err
    assert stdout.count(b"\n") == 1


# -- findings 4 and 5 through the CLI --------------------------------------------------------------


def test_national_json_without_schema_is_translated(tmp_path: Path) -> None:
    code, national, err = _adapt_run(str(ECAF))
    assert code == 0, err
    doc = json.loads(national)
    del doc["schema"]
    path = tmp_path / "n.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    code, again, err = _adapt_run(str(path))
    assert code == 0, err
    assert "national-json" in err
    assert json.loads(again)["episode_id"] == doc["episode_id"]


def test_national_json_too_large_is_said_to_be_too_large(tmp_path: Path) -> None:
    episode = get_adapter("ecaf-xml-v3").to_national(ECAF.read_bytes()).episodes[0]
    size = len(get_adapter("national-json").from_national([episode]))
    data = get_adapter("national-json").from_national([episode] * (MAX_DOCUMENT_BYTES // size + 2))
    path = tmp_path / "all.json"
    path.write_bytes(data)
    code, stdout, err = _adapt_run("--to", "ecaf-xml-v3", "--out", str(tmp_path / "o"), str(path))
    assert code == 2
    assert "payload_too_large" in err and "unsupported_format" not in err


def test_a_result_that_cannot_be_written_leaves_the_others_as_they_were(tmp_path: Path) -> None:
    """`test_cli_adapt_fixes_outputs`'s test of that name, with the files named from two
    folders (`eha-json/`, `ecaf-xml-v3/`) now kept apart under `--out`."""
    out = tmp_path / "po"
    (out / "eha-json").mkdir(parents=True)
    (out / "eha-json" / "eha-json-101-0-1.xml").write_bytes(b"old")
    (out / "eha-json" / "eha-json-101-0-2.xml").mkdir()  # in the way
    code, _, err = _adapt_run("--to", "ecaf-xml-v3", "--out", str(out), str(FAMILY), str(ECAF))
    assert code == 2
    assert "cannot write: Is a directory" in err
    assert (out / "eha-json" / "eha-json-101-0-1.xml").read_bytes() == b"old"
    assert not (out / "eha-json" / "eha-json-101-0-3.xml").exists()
    assert (out / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").is_file()  # the other input's
    assert [p.name for p in out.rglob(".*")] == []
