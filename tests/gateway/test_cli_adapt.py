"""`cafx adapt`: every example to national JSON and XML and back to its own format, exit codes, and a
large register read row by row."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import get_adapter
from adapters.national import check_national
from gateway.cli import cli

from ..adapters.facts import EXAMPLES


def _adapt(*args: str) -> tuple[int, str, str]:
    # A wide console: a long temporary path is not folded across lines of the summary.
    result = CliRunner().invoke(cli, ["adapt", *args], env={"COLUMNS": "400"})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("target", ["national-json", "national-xml"])
def test_every_example_becomes_valid_national_documents(tmp_path: Path, target: str) -> None:
    forms = tmp_path / "forms"
    for example in EXAMPLES.rglob("*"):
        if example.is_file() and not example.name.endswith(".facts.json"):
            (forms / example.parent.name).mkdir(parents=True, exist_ok=True)
            (forms / example.parent.name / example.name).write_bytes(example.read_bytes())
    out = tmp_path / "out"
    code, _, err = _adapt("--to", target, "--out", str(out), str(forms))
    assert code == 0, err
    written = sorted(p for p in out.rglob("*") if p.is_file())  # the inputs' folders kept
    # 4 eCAF + 3 step-down + 9 EHA children + 3 register rows
    episodes = 0
    for path in written:
        check = check_national(path.read_bytes())
        assert check.valid, [str(p) for p in check.problems]
        episodes += len(check.episodes)
    assert episodes == 19
    assert "fidelity" in err


def test_local_to_national_to_local(tmp_path: Path) -> None:
    source = EXAMPLES / "eha-json" / "eha-json-101-0.json"
    code, _, err = _adapt("--to", "national-json", "--out", str(tmp_path / "n"), str(source))
    assert code == 0, err
    national = tmp_path / "n" / "eha-json-101-0.json"
    code, out, err = _adapt("--from", "national-json", "--to", "eha-json", str(national))
    assert code == 0, err
    assert json.loads(out) == json.loads(source.read_bytes())


def test_rejected_rows_exit_1_and_unusable_input_exit_2(tmp_path: Path) -> None:
    register = (EXAMPLES / "caf-register-csv" / "register-101.csv").read_text(encoding="utf-8")
    lines = register.splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "\r\n".join([*lines, lines[1].replace("4309086624", "4309086625")]) + "\r\n",
        encoding="utf-8",
    )
    code, _, err = _adapt(str(bad))
    assert code == 1
    assert "row 5" in err and "nhs_number" in err and "4309086625" not in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"%PDF-1.7")
    assert _adapt(str(junk))[0] == 2


@pytest.mark.parametrize("args", [(), ("--from", "ecaf-xml-v3")], ids=["detected", "--from"])
def test_an_external_entity_is_refused_by_the_parse_and_no_file_read(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """An eCAF export (so the adapter parses it, found by its root or named by `--from`) whose
    EpisodeRef is an external entity naming a local file: were it resolved, the file's content
    would be the episode's local_ref, in the output."""
    secret = tmp_path / "secret.txt"
    secret.write_text("cafx-secret-7f3a9c", encoding="utf-8")
    example = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_text(encoding="utf-8")
    declaration, rest = example.split("\n", 1)
    doctype = f'<!DOCTYPE ecaf:CAFEpisode [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(
        f"{declaration}\n{doctype}\n"
        + re.sub(r"<ecaf:EpisodeRef>[^<]*<", "<ecaf:EpisodeRef>&x;<", rest, count=1),
        encoding="utf-8",
    )
    assert "&x;" in xxe.read_text(encoding="utf-8")
    code, out, err = _adapt(*args, str(xxe))
    assert code == 2
    assert "unsupported_format" in err and "a DOCTYPE (DTD) is not allowed" in err  # parsed
    assert "cafx-secret-7f3a9c" not in out + err


def test_a_large_register_is_read_row_by_row(tmp_path: Path) -> None:
    csv = get_adapter("caf-register-csv")
    episodes = csv.to_national(
        (EXAMPLES / "caf-register-csv" / "register-101.csv").read_bytes()
    ).episodes
    many = [e.model_copy(update={"local_ref": f"CAF-{n}"}) for n in range(2200) for e in episodes]
    big = tmp_path / "big.csv"
    big.write_bytes(csv.from_national(many))
    assert big.stat().st_size > 1_000_000
    code, out, err = _adapt("--to", "national-json", str(big))
    assert code == 0, err
    assert len(json.loads(out)) == len(many)


def test_a_fifo_or_device_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    code, _, err = _adapt(str(fifo), "/dev/zero")  # would block, and never end
    assert code == 2
    assert err.count("not a regular file") == 2


def test_a_document_that_fails_leaves_no_output(tmp_path: Path) -> None:
    """Three episodes to eCAF, one per file: the third has no eCAF authority, so none is written."""
    source = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    episode = get_adapter("ecaf-xml-v3").to_national(source.read_bytes()).episodes[0]
    outside = episode.model_copy(update={"home_authority": "E08000025"})  # Birmingham
    national = tmp_path / "three.json"
    national.write_bytes(get_adapter("national-json").from_national([episode, episode, outside]))
    out = tmp_path / "out"
    code, _, err = _adapt(
        "--from", "national-json", "--to", "ecaf-xml-v3", "--out", str(out), str(national)
    )
    assert code == 2, err
    assert list(out.iterdir()) == []


def test_two_inputs_of_one_name_keep_their_folders(tmp_path: Path) -> None:
    source = (EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml").read_bytes()
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.xml").write_bytes(source)
    (tmp_path / "in" / "sub" / "a.xml").write_bytes(source)
    out = tmp_path / "out"
    code, _, err = _adapt("--out", str(out), str(tmp_path / "in"))
    assert code == 0, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "a.json",
        "sub/a.json",
    ]


def test_paths_are_shown_as_they_are_not_read_as_markup(tmp_path: Path) -> None:
    folder = tmp_path / "x["
    folder.mkdir()
    (folder / "]y [bold]z.xml").write_bytes(b"<not-caf/>")
    code, _, err = _adapt(str(folder))
    assert code == 2
    assert "]y [bold]z.xml" in err


def test_what_the_eha_writer_chose_is_printed(tmp_path: Path) -> None:
    """A family's children's episodes hold different copies of a family-level part."""
    source = EXAMPLES / "eha-json" / "eha-json-101-0.json"
    episodes = get_adapter("eha-json").to_national(source.read_bytes()).episodes
    second = episodes[1]
    [consent] = second.consents
    withdrawn = consent.model_copy(update={"withdrawn_on": consent.given_on})
    episodes[1] = second.model_copy(update={"consents": [withdrawn]})
    national = tmp_path / "family.json"
    national.write_bytes(get_adapter("national-json").from_national(episodes))
    code, out, err = _adapt("--from", "national-json", "--to", "eha-json", str(national))
    assert code == 0, err
    assert json.loads(out)["consent"]["withdrawnDate"]
    said = " ".join(err.split())
    assert "written: warning: /consent: family_part.withdrawal_wins" in said


def test_what_another_format_cannot_hold_is_said_by_place(tmp_path: Path) -> None:
    source = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    code, out, err = _adapt("--to", "caf-register-csv", str(source))
    assert code == 0, err  # said, and no failure: the register holds what it can
    assert out.startswith("caf_ref,la_code,")
    said = " ".join(err.split())
    assert re.search(r"written: write\.not_carried: \d+ values: ", said)
    assert "/parents_carers/*/name" in said and "/tac_members/*/name" in said
    same_format = _adapt("--to", "ecaf-xml-v3", str(source))
    national = _adapt("--to", "national-xml", str(source))
    for code, _, err in (same_format, national):
        assert code == 0 and "write." not in err


def test_the_losses_of_standard_outputs_one_document_are_said_of_it() -> None:
    ecaf = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    register = EXAMPLES / "caf-register-csv" / "register-101.csv"
    code, _, err = _adapt("--to", "caf-register-csv", str(ecaf), str(register))
    assert code == 0, err
    said = " ".join(err.split())
    assert "standard output: written: write.not_carried: " in said
    assert "register-101.csv: written" not in said  # it loses nothing of its own


def test_nothing_is_said_of_documents_standard_output_did_not_take() -> None:
    family = EXAMPLES / "eha-json" / "eha-json-101-0.json"  # three children: three documents
    code, out, err = _adapt("--to", "csc-closure-xml", str(family))
    assert code == 2 and out == ""
    said = " ".join(err.split())
    assert "too_many_documents" in said and "written:" not in said


def test_results_get_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    source = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    out = tmp_path / "out"
    code, _, err = _adapt("--out", str(out), str(source))
    assert code == 0, err
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    [written] = list(out.iterdir())
    assert written.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_a_register_is_written_one_file_per_row_with_its_warnings(tmp_path: Path) -> None:
    """A register is read and written row by row; what it warns of is printed, located."""
    register = (EXAMPLES / "caf-register-csv" / "register-101.csv").read_text(encoding="utf-8")
    source = tmp_path / "reg.csv"
    source.write_text(register.replace("Closed,13/08/2026,Resolved Other", "Closed,,"), "utf-8")
    out = tmp_path / "out"
    code, _, err = _adapt("--to", "national-xml", "--out", str(out), str(source))
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["reg-1.xml", "reg-2.xml", "reg-3.xml"]
    refs = [check_national((out / name).read_bytes()).episodes[0].local_ref for name in written]
    assert refs == ["CAF-211-2024-84536", "CAF-206-2026-51354", "CAF-206-2024-74090"]
    said = " ".join(err.split())
    assert "warning: row 4, column closure_outcome: closure.missing" in said
