"""The federation PKI (DESIGN 3.1): one CA, and for each member a TLS certificate for mutual TLS.

The member certificate names the member by a URI SAN `urn:caf:member:<GSS>` (what a receiving node
compares with `caf-sender`), and is good for both ends of a connection (EKU serverAuth + clientAuth,
RFC 5280 4.2.1.12). Its DNS/IP SAN is the endpoint's host; only a member whose endpoint is on
loopback (`localhost`, 127.0.0.0/8, ::1) also gets `localhost` and 127.0.0.1, so loopback demos and
tests verify host names like production does, while a production certificate is never a valid server
certificate for localhost. The profile is the RFC 5280 one that
strict verifiers (cryptography's, rustls, WebPKI) require: critical BasicConstraints and KeyUsage,
SubjectKeyIdentifier everywhere, AuthorityKeyIdentifier on the leaf. All keys are ECDSA P-256 with
SHA-256 signatures, as every TLS 1.3 stack accepts them.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from directory.members import is_loopback

__all__ = [
    "CA_VALIDITY",
    "MEMBER_CERT_VALIDITY",
    "create_ca",
    "is_loopback",
    "issue_member_certificate",
    "key_pem",
    "load_ca",
    "member_uri",
]

CA_VALIDITY = timedelta(days=5 * 365)
MEMBER_CERT_VALIDITY = timedelta(days=365)
BACKDATE = timedelta(minutes=5)  # tolerate a verifier whose clock is a little behind ours


def member_uri(gss: str) -> str:
    return f"urn:caf:member:{gss}"


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(name: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA for federation `name`, allowed to sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} federation CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def load_ca(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    certificate = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the federation CA key must be an EC key")
    return certificate, key


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_member_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    gss: str,
    name: str,
    host: str | None,
    now: datetime,
    validity: timedelta = MEMBER_CERT_VALIDITY,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The member's mTLS certificate and its new P-256 key (see the module doc for the profile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(member_uri(gss))]
    if host is not None and is_loopback(host):
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if host is not None and (extra := _host_name(host)) not in names:
        names.append(extra)
    not_after = min(now + validity, ca_cert.not_valid_after_utc)  # never outlive the CA
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key
