"""Mutual TLS between nodes (DESIGN 3.1): TLS 1.3 only, the federation CA as the only trust anchor,
and the member named by the certificate's URI SAN `urn:caf:member:<GSS>`.

Both contexts require the peer's certificate (`CERT_REQUIRED`), so a node never talks to a party the
federation operator has not certified. The certificate names a member; the signed request names a
sender; `verify_request` refuses the request when the two differ (DESIGN 3.2), which is why the
member is read here and not trusted from a header.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import weakref
from typing import Any

from aiohttp import web

from schemas import GSS_PATTERN

__all__ = ["MEMBER_URN_PREFIX", "client_context", "member_urn", "peer_member", "server_context"]

MEMBER_URN_PREFIX = "urn:caf:member:"
_MEMBER_URN = re.compile(re.escape(MEMBER_URN_PREFIX) + f"({GSS_PATTERN})")

PathLike = str | os.PathLike[str]

# The member each live TLS connection's peer certificate names, read once per connection: TLS 1.3
# has no renegotiation, so a connection's peer certificate cannot change after the handshake.
_peers: weakref.WeakKeyDictionary[ssl.SSLObject | ssl.SSLSocket, str | None] = (
    weakref.WeakKeyDictionary()
)


def member_urn(member: str) -> str:
    """The URI SAN that names `member` in its federation certificate."""
    return MEMBER_URN_PREFIX + member


def _tls13_only(
    context: ssl.SSLContext, cert_file: PathLike, key_file: PathLike, ca_file: PathLike
) -> None:
    # Pinning both ends to 1.3 leaves no older protocol, cipher suite or renegotiation to negotiate.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    # Only the federation CA: never the system store, which would admit any public certificate.
    context.load_verify_locations(cafile=os.fspath(ca_file))
    context.load_cert_chain(certfile=os.fspath(cert_file), keyfile=os.fspath(key_file))


def server_context(cert_file: PathLike, key_file: PathLike, ca_file: PathLike) -> ssl.SSLContext:
    """The listening side of `/federation/v1`: presents this node's certificate and requires one
    issued by the federation CA from every client."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _tls13_only(context, cert_file, key_file, ca_file)
    return context


def client_context(cert_file: PathLike, key_file: PathLike, ca_file: PathLike) -> ssl.SSLContext:
    """The calling side: presents this node's certificate and checks the server's chain against the
    federation CA and its name against the URL (`check_hostname`); `FederationClient` then checks
    that the certificate names the member it meant to call."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = True
    _tls13_only(context, cert_file, key_file, ca_file)
    return context


def _member_from_certificate(certificate: dict[str, Any] | None) -> str | None:
    if not certificate:
        return None
    members = {
        match.group(1)
        for kind, value in certificate.get("subjectAltName", ())
        if kind == "URI" and (match := _MEMBER_URN.fullmatch(value)) is not None
    }
    # A certificate naming two members names none: refuse rather than pick one.
    return members.pop() if len(members) == 1 else None


def peer_member(
    source: web.BaseRequest | asyncio.BaseTransport | ssl.SSLObject | ssl.SSLSocket | None,
) -> str | None:
    """The GSS code in the verified peer certificate's URI SAN `urn:caf:member:<GSS>`, or None when
    there is no TLS, no certificate, or not exactly one member URI.

    Accepts a server request, a transport (a client connection's: see `FederationConnector`; a
    client response is no use, aiohttp may have released its connection already), or an SSL object.
    """
    if isinstance(source, web.BaseRequest):
        source = source.transport
    if isinstance(source, asyncio.BaseTransport):
        source = source.get_extra_info("ssl_object")
    if not isinstance(source, ssl.SSLObject | ssl.SSLSocket):
        return None
    try:
        return _peers[source]
    except KeyError:
        certificate = source.getpeercert()
    member = _member_from_certificate(certificate)
    if certificate:  # before the handshake there is none yet: nothing to remember
        _peers[source] = member
    return member
