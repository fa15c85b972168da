"""The federation operator (DESIGN 3.1), driven through `cafx federation` as an operator would: the
metadata it signs verifies with the pinned public key only, versions grow, suspension and key rotation
reach the metadata; the certificates it issues chain to its CA, name the member, and carry a real
TLS 1.3 mutual handshake on 127.0.0.1, while a certificate from another CA is refused."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID
from joserfc import jws
from joserfc.jwk import OKPKey

from directory.members import (
    KeyNotValid,
    MemberDirectory,
    MemberSuspended,
    MetadataError,
    load_public_key,
    verify_metadata,
)
from gateway.audit_log import remember_signing_key
from gateway.cli._federation import federation
from gateway.federation import operator
from gateway.signing import load_signing_key

CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def cafx(directory: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(federation, [args[0], "--dir", str(directory), *args[1:]])
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    else:
        assert result.exit_code == 1, result.output
    return result.output


def verified(directory: Path, last_version: int | None = None) -> MemberDirectory:
    token = (directory / "metadata.jws").read_text(encoding="utf-8")
    pinned = load_public_key(directory / "operator-public.json")
    now = datetime.now(UTC)
    return MemberDirectory(verify_metadata(token, pinned, now=now, last_version=last_version))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def federation_dir(tmp_path: Path) -> Path:
    """A federation of three members, the way the README has an operator make one."""
    directory = tmp_path / "federation"
    cafx(directory, "init", "--name", "London CAF")
    cafx(directory, "add-member", CAMDEN, "--endpoint", "https://localhost:8441")
    cafx(directory, "add-member", HACKNEY, "--endpoint", "https://127.0.0.1:8442")
    cafx(
        directory,
        "add-member",
        ISLINGTON,
        "--endpoint",
        "https://islington.caf.example",
        "--name",
        "London Borough of Islington",
    )
    cafx(
        directory,
        *("add-lead-contact", CAMDEN, "--id", "camden-lc-1", "--name", "Lead One"),
        *("--role", "Early help lead", "--email", "lead.one@camden.example"),
        *("--phone", "020 7974 0000"),
    )
    return directory


def test_the_cli_builds_a_federation_whose_metadata_nodes_can_verify(federation_dir: Path) -> None:
    out = cafx(federation_dir, "sign", "--validity-days", "3")
    assert "metadata version 1 for 3 member(s)" in out
    directory = verified(federation_dir)
    assert directory.metadata.federation == "London CAF"
    assert directory.expires_at - directory.metadata.issued_at == timedelta(days=3)
    assert [m.name for m in directory.active_members()] == [
        "Camden",
        "Hackney",
        "London Borough of Islington",
    ]
    assert directory.is_lead_contact(CAMDEN, "camden-lc-1")
    assert not directory.is_lead_contact(HACKNEY, "camden-lc-1")
    # A metadata file signed by any other operator is refused by the pinned key.
    other = federation_dir.parent / "other"
    cafx(other, "init", "--name", "Elsewhere", "--algorithm", "ES256")
    cafx(other, "sign")
    with pytest.raises(MetadataError, match="signature_invalid"):
        verify_metadata(
            (other / "metadata.jws").read_text(encoding="utf-8"),
            load_public_key(federation_dir / "operator-public.json"),
            now=datetime.now(UTC),
            last_version=None,
        )

    # Secrets are the owner's only; what nodes pin or fetch is readable.
    for secret in ("operator-key.json", "ca.key"):
        assert mode(federation_dir / secret) == 0o600
    for secret in ("tls.key", "signing-key.json"):
        assert mode(federation_dir / "members" / CAMDEN / secret) == 0o600
    assert mode(federation_dir / "operator-public.json") == 0o644
    assert "d" not in json.loads((federation_dir / "operator-public.json").read_text())


def test_the_node_signs_with_the_key_the_metadata_publishes(federation_dir: Path) -> None:
    cafx(federation_dir, "sign")
    node_key = load_signing_key(federation_dir / "members" / HACKNEY / "signing-key.json")
    signed = jws.serialize_compact({"alg": "Ed25519"}, b"request", node_key, algorithms=["Ed25519"])
    assert node_key.kid is not None
    published = verified(federation_dir).key_for(HACKNEY, node_key.kid, datetime.now(UTC))
    assert jws.deserialize_compact(signed, published, algorithms=["Ed25519"]).payload == b"request"


def test_suspension_is_published_as_the_next_version(federation_dir: Path) -> None:
    cafx(federation_dir, "sign")
    first = (federation_dir / "metadata.jws").read_text(encoding="utf-8")
    assert "is suspended" in cafx(federation_dir, "suspend", HACKNEY)
    out = federation_dir / "published" / "metadata.jws"
    assert "metadata version 2" in cafx(federation_dir, "sign", "--out", str(out))
    (federation_dir / "metadata.jws").write_text(out.read_text(encoding="utf-8"))
    directory = verified(federation_dir, last_version=1)
    assert directory.version == 2
    member = directory.member(HACKNEY)
    assert member is not None and member.status == "suspended"
    with pytest.raises(MemberSuspended):
        directory.active(HACKNEY)
    # Replaying version 1 (where Hackney was active) to a node that has version 2 is refused.
    with pytest.raises(MetadataError, match="rollback"):
        verify_metadata(
            first,
            load_public_key(federation_dir / "operator-public.json"),
            now=datetime.now(UTC),
            last_version=2,
        )
    cafx(federation_dir, "reinstate", HACKNEY)
    cafx(federation_dir, "sign")
    assert verified(federation_dir, last_version=2).active(HACKNEY).id == HACKNEY


def test_rotation_keeps_the_old_key_for_the_grace_period_only(federation_dir: Path) -> None:
    folder = federation_dir / "members" / CAMDEN
    old_kid = load_signing_key(folder / "signing-key.json").kid
    out = cafx(federation_dir, "rotate-key", CAMDEN, "--grace-days", "3")
    new_kid = load_signing_key(folder / "signing-key.json").kid
    assert new_kid is not None and old_kid is not None and new_kid != old_kid
    assert new_kid in out
    cafx(federation_dir, "sign")
    directory, now = verified(federation_dir), datetime.now(UTC)
    directory.key_for(CAMDEN, old_kid, now + timedelta(days=2, hours=23))
    directory.key_for(CAMDEN, new_kid, now + timedelta(days=300))
    with pytest.raises(KeyNotValid):
        directory.key_for(CAMDEN, old_kid, now + timedelta(days=3, minutes=1))

    # A compromised key is dropped at once; the two-day-old grace of the first key shrinks too.
    third = operator.rotate_key(federation_dir, CAMDEN, grace=timedelta(0))
    operator.sign(federation_dir)
    directory = verified(federation_dir)
    keys = directory.active(CAMDEN).signing_keys
    assert [key.kid for key in keys] == [third.kid]
    with pytest.raises(KeyNotValid):
        directory.key_for(CAMDEN, new_kid, datetime.now(UTC))


def test_a_key_that_ended_on_its_own_stays_for_what_it_signed_until_revoked(
    federation_dir: Path,
) -> None:
    """A custody step or a receipt is checked with the key valid when it was signed: a key past its
    window is kept by later rotations, a compromised one's too (it verifies nothing dated later),
    and dropped only when revoked by its id."""
    first = load_signing_key(federation_dir / "members" / CAMDEN / "signing-key.json").kid
    assert first is not None
    signed_then = datetime.now(UTC)
    later = signed_then + timedelta(days=400)  # the first key's 365 days are over
    second = operator.rotate_key(federation_dir, CAMDEN, grace=timedelta(days=3), now=later)
    operator.sign(federation_dir)
    directory = verified(federation_dir)
    assert [key.kid for key in directory.active(CAMDEN).signing_keys] == [first, second.kid]
    directory.key_for(CAMDEN, first, signed_then)
    with pytest.raises(KeyNotValid):
        directory.key_for(CAMDEN, first, later)

    third = operator.rotate_key(federation_dir, CAMDEN, grace=timedelta(0), now=later)
    operator.sign(federation_dir)
    directory = verified(federation_dir)
    assert [key.kid for key in directory.active(CAMDEN).signing_keys] == [first, third.kid]
    directory.key_for(CAMDEN, first, signed_then)

    with pytest.raises(operator.OperatorError):
        operator.rotate_key(federation_dir, CAMDEN, revoke=["no-such-key"], now=later)
    out = cafx(federation_dir, "rotate-key", CAMDEN, "--revoke", first)
    assert "new signing key id" in out
    cafx(federation_dir, "sign")
    with pytest.raises(KeyNotValid):
        verified(federation_dir).key_for(CAMDEN, first, signed_then)


def test_the_member_folder_carries_the_history_of_its_signing_keys(federation_dir: Path) -> None:
    """A node keeps the public keys it signed audit checkpoints with beside its key; from a
    read-only mount (a container's secret) it cannot add a rotated key itself, so the operator
    writes them there, and a key once in stays in, unless revoked."""
    folder = federation_dir / "members" / CAMDEN
    key_file, history = folder / "signing-key.json", folder / "signing-key.history.json"

    def kids() -> list[str]:
        keys = json.loads(history.read_text(encoding="utf-8"))["keys"]
        assert all("d" not in key for key in keys)  # public keys only
        return [key["kid"] for key in keys]

    first = load_signing_key(key_file).kid
    assert kids() == [first]
    cafx(federation_dir, "rotate-key", CAMDEN, "--grace-days", "3")  # a routine rotation
    second = load_signing_key(key_file)
    assert kids() == [first, second.kid]
    written = history.read_bytes()
    remembered = remember_signing_key(key_file, second)  # as the node does at start
    assert [key.kid for key in remembered] == [first, second.kid]
    assert history.read_bytes() == written  # nothing to add: a read-only mount is enough
    # Keys compromised: every key still in use dropped (grace 0), or one named (revoked), is out
    # of the history too, so it verifies no checkpoint any more.
    cafx(federation_dir, "rotate-key", CAMDEN, "--grace-days", "0")
    third = load_signing_key(key_file).kid
    assert kids() == [third]
    cafx(federation_dir, "rotate-key", CAMDEN, "--grace-days", "3")
    fourth = load_signing_key(key_file).kid
    cafx(federation_dir, "rotate-key", CAMDEN, "--revoke", str(third))
    fifth = load_signing_key(key_file).kid
    assert kids() == [fourth, fifth]
    # A private key planted in the history stops the operator rather than being carried on.
    planted = json.loads(history.read_text(encoding="utf-8"))
    planted["keys"].append(json.loads(key_file.read_text(encoding="utf-8")))
    history.write_text(json.dumps(planted), encoding="utf-8")
    refused = cafx(federation_dir, "rotate-key", CAMDEN, ok=False)
    assert "not a readable key history" in refused


def test_a_member_may_bring_its_own_public_key(tmp_path: Path) -> None:
    directory = tmp_path / "federation"
    cafx(directory, "init", "--name", "London CAF")
    own = OKPKey.generate_key("Ed25519", private=True)
    public_file, private_file = tmp_path / "public.json", tmp_path / "private.json"
    public_file.write_text(json.dumps(own.as_dict(private=False)), encoding="utf-8")
    private_file.write_text(json.dumps(own.as_dict(private=True)), encoding="utf-8")
    refused = cafx(
        directory,
        *("add-member", CAMDEN, "--endpoint", "https://localhost:8441"),
        *("--signing-jwk", str(private_file)),
        ok=False,
    )
    assert "private key" in refused
    cafx(
        directory,
        *("add-member", CAMDEN, "--endpoint", "https://localhost:8441"),
        *("--signing-jwk", str(public_file)),
    )
    assert not (directory / "members" / CAMDEN / "signing-key.json").exists()
    signed = operator.sign(directory)
    assert any(CAMDEN in warning and "lead contact" in warning for warning in signed.warnings)
    (key,) = verified(directory).active(CAMDEN).signing_keys
    assert (key.kty, key.alg, key.kid) == ("OKP", "Ed25519", f"{CAMDEN}-{own.thumbprint()[:16]}")
    message = jws.serialize_compact({"alg": "Ed25519"}, b"hello", own, algorithms=["Ed25519"])
    published = verified(directory).key_for(CAMDEN, key.kid, datetime.now(UTC))
    assert jws.deserialize_compact(message, published, algorithms=["Ed25519"]).payload == b"hello"


def test_operator_mistakes_are_refused_without_a_traceback(federation_dir: Path) -> None:
    assert "already holds a federation" in cafx(federation_dir, "init", "--name", "X", ok=False)
    assert "already a member" in cafx(
        federation_dir, "add-member", CAMDEN, "--endpoint", "https://x.example", ok=False
    )
    assert "not a GSS code" in cafx(
        federation_dir, "add-member", "camden", "--endpoint", "https://x.example", ok=False
    )
    assert "endpoint" in cafx(
        federation_dir, "add-member", "E09000001", "--endpoint", "http://x.example", ok=False
    )
    assert not (federation_dir / "members" / "E09000001").exists()
    assert "not a member" in cafx(federation_dir, "suspend", "E09000001", ok=False)
    duplicate = cafx(
        federation_dir,
        *("add-lead-contact", CAMDEN, "--id", "camden-lc-1", "--name", "Someone Else"),
        *("--role", "Lead", "--email", "else@camden.example", "--phone", "020 7974 0001"),
        ok=False,
    )
    assert "already lists" in duplicate
    bad_email = cafx(
        federation_dir,
        *("add-lead-contact", CAMDEN, "--id", "camden-lc-2", "--name", "Someone Else"),
        *("--role", "Lead", "--email", "someone-at-camden", "--phone", "020 7974 0001"),
        ok=False,
    )
    assert "email" in bad_email and "someone-at-camden" not in bad_email  # no personal data
    # Nodes write a lead contact's id into their audit log (where "@", an e-mail address, is
    # refused) and into 64-character columns: such an id could never decide anything.
    for unusable in ("someone@camden.example", "x" * 65):
        refused = cafx(
            federation_dir,
            *("add-lead-contact", CAMDEN, "--id", unusable, "--name", "Someone Else"),
            *("--role", "Lead", "--email", "else@camden.example", "--phone", "020 7974 0001"),
            ok=False,
        )
        assert "at most 64 characters, without '@'" in refused
    assert "not a federation directory" in cafx(federation_dir.parent / "nowhere", "sign", ok=False)
    cafx(federation_dir, "remove-lead-contact", CAMDEN, "--id", "camden-lc-1")
    cafx(federation_dir, "sign")
    assert verified(federation_dir).lead_contacts(CAMDEN) == []


# --- the PKI -----------------------------------------------------------------------------------


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def policy(ca: Path) -> verification.PolicyBuilder:
    store = verification.Store([certificate(ca)])
    return verification.PolicyBuilder().store(store).time(datetime.now(UTC))


def test_member_certificates_chain_to_the_federation_ca_and_name_the_member(
    federation_dir: Path,
) -> None:
    ca = federation_dir / "ca.crt"
    root = certificate(ca)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.not_valid_after_utc - root.not_valid_before_utc > timedelta(days=4 * 365)
    for gss in (CAMDEN, HACKNEY, ISLINGTON):
        folder = federation_dir / "members" / gss
        assert (folder / "ca.crt").read_bytes() == ca.read_bytes()
        leaf = certificate(folder / "tls.crt")
        client = policy(ca).build_client_verifier().verify(leaf, [])
        assert x509.UniformResourceIdentifier(f"urn:caf:member:{gss}") in (client.subjects or [])
        if gss != ISLINGTON:  # loopback names only for a member on loopback
            for name in (x509.DNSName("localhost"), x509.IPAddress(LOOPBACK)):
                policy(ca).build_server_verifier(name).verify(leaf, [])
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert timedelta(days=360) < leaf.not_valid_after_utc - leaf.not_valid_before_utc
    islington = certificate(federation_dir / "members" / ISLINGTON / "tls.crt")
    assert islington.subject.rfc4514_string() == "CN=London Borough of Islington"
    policy(ca).build_server_verifier(x509.DNSName("islington.caf.example")).verify(islington, [])
    with pytest.raises(verification.VerificationError):
        policy(ca).build_server_verifier(x509.DNSName("camden.caf.example")).verify(islington, [])
    with pytest.raises(verification.VerificationError):
        policy(ca).build_server_verifier(x509.DNSName("localhost")).verify(islington, [])
    other = federation_dir.parent / "other"
    cafx(other, "init", "--name", "Elsewhere")
    cafx(other, "add-member", CAMDEN, "--endpoint", "https://localhost:8441")
    with pytest.raises(verification.VerificationError):
        policy(ca).build_client_verifier().verify(
            certificate(other / "members" / CAMDEN / "tls.crt"), []
        )


def server_context(folder: Path, trust: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    context.load_verify_locations(trust)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(folder: Path, trust: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    context.load_verify_locations(trust)
    return context


@dataclass
class Handshake:
    server_saw: dict[str, Any] | BaseException | None = None
    client_saw: tuple[str | None, dict[str, Any] | None, bytes] | BaseException | None = None


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> Handshake:
    """One connection over 127.0.0.1: what each side learnt of the other, or why it failed."""
    outcome = Handshake()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(10)
            with server.wrap_socket(connection, server_side=True) as tls:
                outcome.server_saw = tls.getpeercert()
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as exc:
            outcome.server_saw = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname=hostname) as tls:
                outcome.client_saw = (tls.version(), tls.getpeercert(), tls.recv(2))
    except (OSError, ssl.SSLError) as exc:
        outcome.client_saw = exc
    finally:
        thread.join(timeout=15)
        listener.close()
    return outcome


def uris(peer: dict[str, Any]) -> list[str]:
    return [value for kind, value in peer["subjectAltName"] if kind == "URI"]


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_two_members_complete_a_mutual_tls13_handshake(federation_dir: Path, hostname: str) -> None:
    camden, hackney = federation_dir / "members" / CAMDEN, federation_dir / "members" / HACKNEY
    result = handshake(
        server_context(camden, camden / "ca.crt"),
        client_context(hackney, hackney / "ca.crt"),
        hostname,
    )
    assert isinstance(result.server_saw, dict), result.server_saw
    assert uris(result.server_saw) == [f"urn:caf:member:{HACKNEY}"]
    assert isinstance(result.client_saw, tuple), result.client_saw
    version, server_cert, data = result.client_saw
    assert version == "TLSv1.3" and data == b"ok"
    assert server_cert is not None and uris(server_cert) == [f"urn:caf:member:{CAMDEN}"]


def test_a_certificate_from_another_ca_is_refused_both_ways(federation_dir: Path) -> None:
    other = federation_dir.parent / "other"
    cafx(other, "init", "--name", "Elsewhere")
    cafx(other, "add-member", ISLINGTON, "--endpoint", "https://localhost:8443")
    camden, intruder = federation_dir / "members" / CAMDEN, other / "members" / ISLINGTON

    # An outsider's client certificate: the server refuses the handshake, no data flows.
    result = handshake(
        server_context(camden, camden / "ca.crt"),
        client_context(intruder, camden / "ca.crt"),  # it even trusts our CA
        "localhost",
    )
    assert isinstance(result.server_saw, ssl.SSLError), result.server_saw
    assert not (isinstance(result.client_saw, tuple) and result.client_saw[2] == b"ok")

    # An outsider's server: the member's client refuses it.
    result = handshake(
        server_context(intruder, camden / "ca.crt"),
        client_context(camden, camden / "ca.crt"),
        "localhost",
    )
    assert isinstance(result.client_saw, ssl.SSLCertVerificationError), result.client_saw
