"""Review 2 of the operator tooling, findings 1, 2, 4, 5 and 8: `reissue-cert` never leaves a key
beside another key's certificate (a failure injected at each step leaves the old pair, which a
node's real TLS context still loads), tells the operator to restart the node and to move its
`federation_public_url`, records the endpoint in canonical form, can move `services_endpoint`;
and all-numeric host names that are no IPv4 address are refused as origins."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.federation import operator
from gateway.federation.transport import server_context
from gateway.settings import Settings, canonical_origin

from .test_federation_operator import verified
from .test_operator_fixes_cli import CAMDEN, HACKNEY, ok, refused

TLS = ("tls.key", "tls.crt", "ca.crt")


@pytest.fixture
def fed(tmp_path: Path) -> Path:
    directory = tmp_path / "federation"
    ok(directory, "init", "--name", "London CAF")
    ok(directory, "add-member", CAMDEN, "--endpoint", "https://camden.caf.example:8443")
    ok(directory, "add-member", HACKNEY, "--endpoint", "https://hackney.caf.example")
    return directory


def folder_of(fed: Path, gss: str = CAMDEN) -> Path:
    return fed / "members" / gss


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def loads(folder: Path) -> None:
    """The pair loads as a node loads it at start (no KEY_VALUES_MISMATCH)."""
    server_context(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")


def failing_replace(
    monkeypatch: pytest.MonkeyPatch, fails: Callable[[Path], bool], error: BaseException
) -> None:
    """os.replace raises `error` for the destinations `fails` picks (a full disk, a Ctrl-C)."""
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if fails(Path(dst)):
            raise error
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- finding 1: the old pair or the new one, never half ------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        "tls.crt",  # the certificate's rename, after the new key is in place: the old key goes back
        "tls.key",  # the key's rename
        ".tls.crt.new.",  # writing the new certificate beside the old one (write_file's temp name)
        ".tls.key.previous.",  # keeping the old key
    ],
)
def test_a_failure_at_any_step_leaves_the_old_pair(
    fed: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    folder = folder_of(fed)
    before, state = snapshot(folder), (fed / "federation.json").read_bytes()
    failing_replace(monkeypatch, lambda dst: dst.name == step.strip("."), full_disk())
    with pytest.raises(operator.OperatorError, match="nothing was replaced; run the command again"):
        operator.reissue_cert(fed, CAMDEN)
    monkeypatch.undo()
    assert snapshot(folder) == before  # no leftovers either: no .new, no .previous
    assert (fed / "federation.json").read_bytes() == state
    loads(folder)
    ok(fed, "reissue-cert", CAMDEN)  # run again: a new pair, and nothing else left beside it
    assert snapshot(folder).keys() == before.keys()
    assert snapshot(folder)["tls.key"] != before["tls.key"]
    loads(folder)


def test_the_cli_says_so_without_a_traceback(fed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(folder_of(fed))
    failing_replace(monkeypatch, lambda dst: dst.name == "tls.crt", full_disk())
    out = refused(fed, "reissue-cert", CAMDEN)
    assert "cannot write the TLS files" in out and "OSError" in out
    assert snapshot(folder_of(fed)) == before


def test_a_ctrl_c_between_the_renames_puts_the_old_key_back(
    fed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = folder_of(fed)
    before = snapshot(folder)
    failing_replace(monkeypatch, lambda dst: dst.name == "tls.crt", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        operator.reissue_cert(fed, CAMDEN)
    monkeypatch.undo()
    assert snapshot(folder) == before
    loads(folder)


def test_when_even_the_old_key_cannot_go_back_it_is_kept_and_named(
    fed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = folder_of(fed)
    old_key = (folder / "tls.key").read_bytes()
    # The certificate's rename fails, and so does the restore (tls.key.previous onto tls.key).
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "tls.crt" or Path(src).name == "tls.key.previous":
            raise full_disk()
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(operator.OperatorError, match=r"may not match .*tls\.key\.previous"):
        operator.reissue_cert(fed, CAMDEN)
    monkeypatch.undo()
    assert (folder / "tls.key.previous").read_bytes() == old_key
    assert (folder / "tls.key.previous").stat().st_mode & 0o777 == 0o600
    assert not (folder / "tls.crt.new").exists() and not (folder / "tls.key.new").exists()
    ok(fed, "reissue-cert", CAMDEN)  # running it again repairs the folder
    loads(folder)
    assert not (folder / "tls.key.previous").exists()


def test_a_second_failing_run_keeps_the_old_key_it_was_left(
    fed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run that could not put the old key back, `tls.key` is the failed run's new key and
    `tls.key.previous` the key of the certificate in place. A second run that fails too must put
    that key back, not overwrite it with the mismatched one and then delete it."""
    folder = folder_of(fed)
    old_key, old_crt = (folder / "tls.key").read_bytes(), (folder / "tls.crt").read_bytes()
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "tls.crt" or Path(src).name == "tls.key.previous":
            raise full_disk()
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(operator.OperatorError, match="may not match"):
        operator.reissue_cert(fed, CAMDEN)  # left: a new tls.key, the old crt, the old key kept
    monkeypatch.undo()
    failing_replace(monkeypatch, lambda dst: dst.name == "tls.crt", full_disk())
    with pytest.raises(operator.OperatorError, match="nothing was replaced"):
        operator.reissue_cert(fed, CAMDEN)  # fails again: the old key goes back this time
    monkeypatch.undo()
    assert (folder / "tls.key").read_bytes() == old_key
    assert (folder / "tls.crt").read_bytes() == old_crt
    assert not (folder / "tls.key.previous").exists()
    loads(folder)


def test_a_new_member_whose_certificate_cannot_be_written_keeps_no_key(
    fed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_replace(monkeypatch, lambda dst: dst.name == "tls.crt", full_disk())
    with pytest.raises(operator.OperatorError, match="nothing was replaced"):
        operator.add_member(fed, "E09000019", "https://islington.caf.example")
    monkeypatch.undo()
    folder = folder_of(fed, "E09000019")
    assert not any((folder / name).exists() for name in ("tls.key", "tls.crt"))
    ok(fed, "add-member", "E09000019", "--endpoint", "https://islington.caf.example")
    loads(folder)


# --- finding 2: restart, and the node's own origin -------------------------------------------------


def test_the_output_says_to_restart_the_node_and_to_move_its_public_url(fed: Path) -> None:
    renewed = ok(fed, "reissue-cert", CAMDEN)
    assert "restart" in renewed and "federation_public_url" not in renewed
    moved = ok(fed, "reissue-cert", CAMDEN, "--endpoint", "https://camden.new.example:9443")
    assert "restart" in moved
    assert "set federation_public_url (CAFX_FEDERATION_PUBLIC_URL) to" in moved
    assert "https://camden.new.example:9443" in moved
    assert "once the nodes hold the new metadata" in moved


# --- finding 5: the recorded endpoint becomes canonical --------------------------------------------


def test_reissue_cert_records_an_old_endpoint_in_canonical_form(fed: Path) -> None:
    state_path = fed / "federation.json"
    state = json.loads(state_path.read_text())
    (member,) = (m for m in state["members"] if m["id"] == CAMDEN)
    member["endpoint"] = "https://Camden.CAF.Example:8443/"  # as recorded before this release
    state_path.write_text(json.dumps(state))
    out = ok(fed, "reissue-cert", CAMDEN)
    assert "endpoint is now https://camden.caf.example:8443" in out
    ok(fed, "sign")
    assert verified(fed).active(CAMDEN).endpoint == "https://camden.caf.example:8443"
    before = state_path.read_bytes()
    out = ok(fed, "reissue-cert", CAMDEN)  # canonical already: nothing to record
    assert "endpoint is now" not in out and state_path.read_bytes() == before


# --- finding 8: a move takes the services endpoint along -------------------------------------------


def test_reissue_cert_moves_the_services_endpoint_too(fed: Path) -> None:
    out = ok(
        fed,
        "reissue-cert",
        CAMDEN,
        "--endpoint",
        "https://camden.new.example",
        "--services-endpoint",
        "https://services.camden.new.example/api",
    )
    assert "services endpoint changed" in out
    ok(fed, "sign")
    member = verified(fed).active(CAMDEN)
    assert member.endpoint == "https://camden.new.example"
    assert str(member.services_endpoint).startswith("https://services.camden.new.example/api")
    before = snapshot(folder_of(fed)), (fed / "federation.json").read_bytes()
    assert "refused" in refused(fed, "reissue-cert", CAMDEN, "--services-endpoint", "http://x.ex")
    assert (snapshot(folder_of(fed)), (fed / "federation.json").read_bytes()) == before


# --- finding 4: all-numeric host names that are no IPv4 address ------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://2130706433",
        "https://999.1.1.1",
        "https://127.000.000.001",
        "https://node.8443",
        "https://[v1.x]",
    ],
)
def test_a_numeric_host_that_is_no_ip_address_is_refused(fed: Path, origin: str) -> None:
    with pytest.raises(ValueError, match="not a DNS name or an IP address"):
        canonical_origin(origin)
    with pytest.raises(ValidationError, match="federation_public_url"):
        Settings(member_id=CAMDEN, federation_public_url=origin)
    assert "endpoint is refused" in refused(fed, "reissue-cert", CAMDEN, "--endpoint", origin)


@pytest.mark.parametrize(
    ("origin", "canonical"),
    [
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("https://[::1]", "https://[::1]"),
        ("https://node1.example", "https://node1.example"),
        ("https://1.example:443", "https://1.example"),
        ("https://camden", "https://camden"),
    ],
)
def test_ip_addresses_and_names_with_digits_still_pass(origin: str, canonical: str) -> None:
    assert canonical_origin(origin) == canonical
