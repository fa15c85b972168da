"""Review findings 1, 2, 3, 5, 6 and 7 and the loopback-SAN note, through `cafx federation` as an
operator runs it: certificates are reissued (and a node's real TLS contexts accept the new one), `sign`
warns before a certificate ends and never signs below a published version, `init` never overwrites,
bad input is refused before any file is written, member keys a node cannot load are refused, and an
origin is canonicalised the same way by the operator and by a node's settings."""

from __future__ import annotations

import ipaddress
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, OKPKey
from pydantic import ValidationError
from yarl import URL

from gateway.cli._federation import federation
from gateway.federation import operator
from gateway.federation.operator._pki import create_ca, key_pem
from gateway.federation.transport import client_context, server_context
from gateway.settings import Settings
from gateway.signing import load_signing_key

from .test_federation_operator import certificate, handshake, policy, uris, verified

CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"
LOOPBACK_NAMES = {x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))}


def run(directory: Path, *args: str) -> Result:
    return CliRunner().invoke(federation, [args[0], "--dir", str(directory), *args[1:]])


def ok(directory: Path, *args: str) -> str:
    result = run(directory, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def refused(directory: Path, *args: str, code: int = 1) -> str:
    result = run(directory, *args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def sans(path: Path) -> list[x509.GeneralName]:
    leaf = certificate(path)
    return list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


@pytest.fixture
def fed(tmp_path: Path) -> Path:
    directory = tmp_path / "federation"
    ok(directory, "init", "--name", "London CAF")
    ok(directory, "add-member", CAMDEN, "--endpoint", "https://127.0.0.1:8441")
    ok(directory, "add-member", HACKNEY, "--endpoint", "https://localhost:8442")
    ok(directory, "add-member", ISLINGTON, "--endpoint", "https://islington.caf.example")
    return directory


# --- finding 1: reissue-cert, and sign warns before a certificate ends ---------------------------


def node_handshake(server: Path, client: Path, hostname: str) -> tuple[list[str], list[str]]:
    """A TLS 1.3 handshake between two members' folders with the contexts a node builds."""
    result = handshake(
        server_context(server / "tls.crt", server / "tls.key", server / "ca.crt"),
        client_context(client / "tls.crt", client / "tls.key", client / "ca.crt"),
        hostname,
    )
    assert isinstance(result.server_saw, dict), result.server_saw
    assert isinstance(result.client_saw, tuple), result.client_saw
    version, server_cert, data = result.client_saw
    assert version == "TLSv1.3" and data == b"ok" and server_cert is not None
    return uris(result.server_saw), uris(server_cert)


def test_reissue_cert_gives_a_new_key_and_certificate_nodes_accept(fed: Path) -> None:
    camden, hackney = fed / "members" / CAMDEN, fed / "members" / HACKNEY
    old_cert, old_key = (camden / "tls.crt").read_bytes(), (camden / "tls.key").read_bytes()
    state_before = (fed / "federation.json").read_bytes()
    out = ok(fed, "reissue-cert", CAMDEN)
    assert "fresh signed metadata" in out and "cafx federation sign" in out
    assert (camden / "tls.crt").read_bytes() != old_cert
    assert (camden / "tls.key").read_bytes() != old_key
    assert (fed / "federation.json").read_bytes() == state_before  # same endpoint: no change
    assert (camden / "tls.key").stat().st_mode & 0o777 == 0o600
    # Both ways: Camden (new certificate) serving Hackney, and calling it.
    assert node_handshake(camden, hackney, "127.0.0.1") == (
        [f"urn:caf:member:{HACKNEY}"],
        [f"urn:caf:member:{CAMDEN}"],
    )
    assert node_handshake(hackney, camden, "localhost") == (
        [f"urn:caf:member:{CAMDEN}"],
        [f"urn:caf:member:{HACKNEY}"],
    )


def test_reissue_cert_moves_a_member_to_a_new_endpoint(fed: Path) -> None:
    camden, hackney = fed / "members" / CAMDEN, fed / "members" / HACKNEY
    out = ok(fed, "reissue-cert", CAMDEN, "--endpoint", "https://Camden.CAF.example:443/")
    assert "endpoint is now https://camden.caf.example" in out and "fresh signed metadata" in out
    names = sans(camden / "tls.crt")
    assert x509.DNSName("camden.caf.example") in names
    assert not LOOPBACK_NAMES & set(names)  # no longer on loopback: no localhost names
    ok(fed, "sign")
    assert verified(fed).active(CAMDEN).endpoint == "https://camden.caf.example"
    # A node's client context checks the new host name (the socket itself is on 127.0.0.1).
    assert node_handshake(camden, hackney, "camden.caf.example")[1] == [f"urn:caf:member:{CAMDEN}"]
    result = handshake(
        server_context(camden / "tls.crt", camden / "tls.key", camden / "ca.crt"),
        client_context(hackney / "tls.crt", hackney / "tls.key", hackney / "ca.crt"),
        "127.0.0.1",
    )
    assert not isinstance(result.client_saw, tuple)  # the old loopback name is gone

    before = files(fed)
    assert "endpoint" in refused(fed, "reissue-cert", CAMDEN, "--endpoint", "https://x.example/p")
    assert "not a member" in refused(fed, "reissue-cert", "E09000001")
    assert files(fed) == before


def test_sign_warns_when_a_certificate_or_the_ca_ends_within_30_days(fed: Path) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=340)  # a 365-day certificate with 25 days left
    operator.add_member(fed, "E09000001", "https://city.caf.example", "City", now=long_ago)
    result = run(fed, "sign")
    assert result.exit_code == 0
    assert "E09000001: TLS certificate expires" in result.stderr
    assert "reissue-cert E09000001" in result.stderr
    assert f"{CAMDEN}: TLS" not in result.stderr and "federation CA" not in result.stderr
    ok(fed, "reissue-cert", "E09000001")
    assert "TLS certificate" not in run(fed, "sign").stderr

    # A CA in its last days: the warning names it (member certificates end with it).
    ca_cert, ca_key = create_ca("London CAF", datetime.now(UTC) - timedelta(days=5 * 365 - 10))
    (fed / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (fed / "ca.key").write_bytes(key_pem(ca_key))
    assert "the federation CA certificate expires" in run(fed, "sign").stderr


# --- finding 2: a member key a node cannot load is refused -----------------------------------------


def test_a_p256_member_key_is_refused_by_add_member_and_rotate_key(tmp_path: Path) -> None:
    directory = tmp_path / "federation"
    ok(directory, "init", "--name", "London CAF")
    ec_public = tmp_path / "ec.json"
    ec_public.write_text(
        json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=False))
    )
    before = files(directory)
    out = refused(
        directory,
        *("add-member", CAMDEN, "--endpoint", "https://localhost:8441"),
        *("--signing-jwk", str(ec_public)),
    )
    assert "Ed25519" in out
    assert files(directory) == before  # nothing written for a refused member

    ed_public = tmp_path / "ed.json"
    own = OKPKey.generate_key("Ed25519", private=True)
    ed_public.write_text(json.dumps(own.as_dict(private=False)))
    ok(
        directory,
        *("add-member", CAMDEN, "--endpoint", "https://localhost:8441"),
        *("--signing-jwk", str(ed_public)),
    )
    before = files(directory)
    assert "Ed25519" in refused(directory, "rotate-key", CAMDEN, "--signing-jwk", str(ec_public))
    assert files(directory) == before
    operator.sign(directory)
    (key,) = verified(directory).active(CAMDEN).signing_keys
    assert (key.kty, key.alg, key.kid) == ("OKP", "Ed25519", f"{CAMDEN}-{own.thumbprint()[:16]}")


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=True)),
        json.dumps(OKPKey.generate_key("X25519", private=True).as_dict(private=True)),
        json.dumps({"kty": "OKP", "crv": "Ed25519", "x": 1, "d": 2}),
        json.dumps({"kty": "OKP"}),
        json.dumps(["not", "a", "jwk"]),
        "not json",
    ],
    ids=["p-256", "x25519", "bad-parameters", "no-curve", "a-list", "not-json"],
)
def test_load_signing_key_raises_its_value_error_for_any_key_it_cannot_load(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "signing-key.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="cannot load the signing key"):
        load_signing_key(path)


# --- finding 3: init never overwrites -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ca.key",
        "ca.crt",
        "operator-public.json",
        "operator-key.json",
        "federation.json",
        "metadata.jws",
    ],
)
def test_init_refuses_when_any_file_of_the_layout_exists(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "federation"
    directory.mkdir()
    (directory / name).write_bytes(b"kept")
    out = refused(directory, "init", "--name", "Y")
    assert "already holds a federation" in out and name in out
    assert files(directory) == {name: b"kept"}


def test_init_refuses_a_directory_holding_member_folders(fed: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(fed / "members", other / "members")
    assert "members/" in refused(other, "init", "--name", "Y")


# --- finding 6: bad input refused before any file is written ---------------------------------------


def test_bad_operator_input_is_refused_and_writes_nothing(fed: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert "at most 50 characters" in refused(fresh, "init", "--name", "N" * 51)
    assert not fresh.exists() or files(fresh) == {}
    ok(fresh, "init", "--name", "N" * 50)  # the CA's name is then exactly 64 characters

    before = files(fed)
    assert "at most 64 characters" in refused(
        fed, "add-member", "E09000001", "--endpoint", "https://city.example", "--name", "C" * 100
    )
    assert "endpoint" in refused(
        fed, "add-member", "E09000001", "--endpoint", "https://exa mple.example"
    )
    for endpoint in ("https://city.example/caf", "https://city.example?x=1", "https://a_b.example"):
        assert "endpoint" in refused(fed, "add-member", "E09000001", "--endpoint", endpoint)
    assert "range" in refused(fed, "sign", "--validity-days", "99999999", code=2)
    assert "range" in refused(fed, "rotate-key", CAMDEN, "--grace-days", "99999999", code=2)
    assert files(fed) == before
    with pytest.raises(operator.OperatorError, match="validity"):
        operator.sign(fed, validity=timedelta(days=99_999_999))
    with pytest.raises(operator.OperatorError, match="grace"):
        operator.rotate_key(fed, CAMDEN, grace=timedelta(days=99_999_999))
    assert files(fed) == before

    (fed / "ca.key").unlink()
    before = files(fed)
    assert "cannot load the federation CA" in refused(
        fed, "add-member", "E09000001", "--endpoint", "https://city.example"
    )
    assert "cannot load the federation CA" in refused(fed, "reissue-cert", CAMDEN)
    assert files(fed) == before


def test_an_idn_endpoint_is_kept_and_certified_as_its_a_labels(fed: Path) -> None:
    ok(fed, "add-member", "E09000001", "--endpoint", "https://bücher.example")
    ok(fed, "sign")
    assert verified(fed).active("E09000001").endpoint == "https://xn--bcher-kva.example"
    leaf = fed / "members" / "E09000001" / "tls.crt"
    assert x509.DNSName("xn--bcher-kva.example") in sans(leaf)
    policy(fed / "ca.crt").build_server_verifier(x509.DNSName("xn--bcher-kva.example")).verify(
        certificate(leaf), []
    )


# --- finding 5: one canonical origin, for the operator and the node --------------------------------


def test_an_origin_is_canonical_in_the_metadata_and_in_settings(fed: Path) -> None:
    typed = "https://Hackney.Example:443"
    ok(fed, "reissue-cert", HACKNEY, "--endpoint", typed)
    ok(fed, "sign")
    endpoint = verified(fed).active(HACKNEY).endpoint
    settings = Settings(member_id=HACKNEY, federation_public_url=typed)
    assert endpoint == settings.federation_public_url == "https://hackney.example"
    # What a client signs (`str(URL(endpoint + path))`) is what the server rebuilds (origin + path).
    path = "/federation/v1/existence-checks"
    assert (
        str(URL(typed + path)) == str(URL(endpoint + path)) == settings.federation_public_url + path
    )
    assert (
        Settings(
            member_id=HACKNEY, federation_public_url="https://h.example:8443/"
        ).federation_public_url
        == "https://h.example:8443"
    )
    for bad in (
        "https://h.example/caf",
        "http://h.example",
        "https://h.example#x",
        "https://u@h.example",
    ):
        with pytest.raises(ValidationError, match="federation_public_url"):
            Settings(member_id=HACKNEY, federation_public_url=bad)


# --- finding 7: sign carries on above a published version ------------------------------------------


def test_sign_never_signs_below_the_published_metadata(fed: Path, tmp_path: Path) -> None:
    ok(fed, "sign")
    backup = (fed / "federation.json").read_bytes()  # at version 1
    ok(fed, "sign")
    ok(fed, "sign")
    (fed / "federation.json").write_bytes(backup)  # restored from the backup
    result = run(fed, "sign")
    assert "metadata version 4" in result.output, result.output
    assert "holds version 3" in result.stderr
    assert verified(fed, last_version=3).version == 4
    assert json.loads((fed / "federation.json").read_text())["version"] == 4

    # A copy signed by another operator key is no reason to skip versions.
    other = tmp_path / "other"
    ok(other, "init", "--name", "Elsewhere")
    shutil.copy(fed / "metadata.jws", other / "metadata.jws")
    assert "metadata version 1" in ok(other, "sign")

    again = tmp_path / "again"
    ok(again, "init", "--name", "London CAF", "--first-version", "8")
    assert "metadata version 8" in ok(again, "sign")


# --- the note: loopback names only for loopback endpoints ------------------------------------------


def test_loopback_names_only_in_a_loopback_members_certificate(fed: Path) -> None:
    for gss in (CAMDEN, HACKNEY):
        assert LOOPBACK_NAMES <= set(sans(fed / "members" / gss / "tls.crt"))
    islington = sans(fed / "members" / ISLINGTON / "tls.crt")
    assert not LOOPBACK_NAMES & set(islington)
    assert x509.DNSName("islington.caf.example") in islington
    leaf = certificate(fed / "members" / ISLINGTON / "tls.crt")
    with pytest.raises(x509.verification.VerificationError):
        policy(fed / "ca.crt").build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])
