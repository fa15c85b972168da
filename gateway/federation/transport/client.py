"""Calling another node: sign the request (RFC 9421), send it over mutual TLS, and accept the answer
only when it is signed by the member called, over this request's signature (DESIGN 3.2).

The client returns every signed answer, refusals included (a 403 `consent_missing` is a valid answer);
deciding what an answer means is the caller's business, not the transport's. It raises only when
there is no trustworthy answer: `PeerUnavailable` (`peer_unavailable`) when the peer cannot be
reached, the TLS handshake fails, the call times out or the signed answer is not JSON;
`FederationRefused` (`invalid_signature`) when an answer arrives that is not signed as it must be.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import FederationRefused, PeerUnavailable
from gateway.observability import traceparent

from .digest import as_sent
from .replay import MAX_SKEW
from .signatures import (
    Key,
    KeyLookup,
    RequestParts,
    VerifiedResponse,
    sign_request,
    verify_response,
)
from .tls import peer_member

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

__all__ = ["FederationClient", "FederationConnector", "FederationReply", "federation_session"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FederationReply(NamedTuple):
    """A verified answer: its status, its JSON body (None when empty), and what was verified."""

    status: int
    body: Any
    verified: VerifiedResponse


class FederationConnector(aiohttp.TCPConnector):
    """A TCP connector that, each time it hands out a connection (new or pooled) for a request
    carrying `CAF-Recipient`, checks that the TLS server certificate names that member
    (DESIGN 3.1). `check_hostname` has already tied the certificate to the URL's host; this ties it
    to the member the request is for. aiohttp may release a connection as soon as a short response
    is read, so the check cannot wait for the response: it is made here, before sending.
    """

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        expected = req.headers.get("CAF-Recipient")
        if expected is not None and peer_member(connection.transport) != expected:
            connection.close()
            raise FederationRefused(
                "the TLS server certificate does not name the member called",
                code="invalid_signature",
            )
        return connection


def federation_session(
    ssl_context: ssl.SSLContext, *, timeout: float = 30.0, limit_per_host: int = 8
) -> aiohttp.ClientSession:
    """A session for federation calls: the mutual-TLS client context and the member check of
    `FederationConnector` on every connection, no proxy from the environment."""
    connector = FederationConnector(ssl=ssl_context, limit_per_host=limit_per_host)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,
        auto_decompress=False,  # answers come as sent: a small gzip could unpack to gigabytes
    )


# What a node may send in one request (Settings.max_body_bytes' default) is what it reads back.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class FederationClient:
    """Signed calls from member `me` to other members.

    `session` comes from `federation_session` (the client SSL context of `tls.client_context` and
    the server-member check of `FederationConnector`).
    `endpoints(gss)` gives a member's federation base URL, e.g. `https://node.example/federation/v1`;
    calls append a path such as `/existence-checks`. `response_keys` looks up responders' keys, like
    the server's key lookup.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        me: str,
        signing_key: Key,
        keyid: str,
        endpoints: Callable[[str], str],
        response_keys: KeyLookup,
        clock: Callable[[], dt.datetime] = _utc_now,
        max_skew: dt.timedelta = MAX_SKEW,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if not isinstance(session.connector, FederationConnector):
            raise TypeError("FederationClient needs a session from federation_session()")
        self._session = session
        self._me = me
        self._key = signing_key
        self._keyid = keyid
        self._endpoints = endpoints
        self._response_keys = response_keys
        self._clock = clock
        self._max_skew = max_skew
        self._max_response_bytes = max_response_bytes

    def url(self, recipient: str, path: str, params: Mapping[str, str] | None = None) -> URL:
        base = self._endpoints(recipient).rstrip("/")
        url = URL(base + "/" + path.lstrip("/"))
        return url.update_query(params) if params else url

    async def post(
        self,
        recipient: str,
        path: str,
        json_body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> FederationReply:
        """POST `json_body` as compact JSON to `recipient`'s `path`; extra `headers` (such as
        `CAF-Attestation` or `traceparent`) are sent too, and `CAF-Attestation` is signed."""
        body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        extra = {"Content-Type": "application/json", **(headers or {})}
        return await self.request("POST", recipient, self.url(recipient, path), body, extra)

    async def get(
        self,
        recipient: str,
        path: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FederationReply:
        return await self.request("GET", recipient, self.url(recipient, path, params), b"", headers)

    async def request(
        self,
        method: str,
        recipient: str,
        url: URL,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> FederationReply:
        now = self._clock()
        signed = sign_request(
            method,
            str(url),
            body,
            sender=self._me,
            recipient=recipient,
            key=self._key,
            keyid=self._keyid,
            now=now,
            # No content coding: the digest covers the bytes as sent and as received. The trace
            # this call belongs to goes along (W3C Trace Context), for the logs on both sides.
            headers={
                "Accept-Encoding": "identity",
                "traceparent": traceparent(),
                **(headers or {}),
            },
        )
        try:
            async with self._session.request(
                signed.method,
                url,
                data=body if body else None,
                headers=signed.headers,
                allow_redirects=False,  # a redirect would point the signed request elsewhere
                compress=None,
            ) as response:
                raw = await _bounded_body(response, self._max_response_bytes)
                fields = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
                ]
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise PeerUnavailable(
                f"member {recipient} did not answer ({type(exc).__name__})"
            ) from exc
        verified = await verify_response(
            status=status,
            headers=CIMultiDict(fields),
            body=raw,
            request=RequestParts(signed.method, signed.url, signed.headers),
            peer=recipient,  # FederationConnector checked the server certificate names it
            me=self._me,
            responder=recipient,
            key_lookup=self._response_keys,
            now=self._clock(),
            max_skew=self._max_skew,
        )
        return FederationReply(status, _json(raw, recipient), verified)


def _json(raw: bytes, recipient: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    # Signed, but not the protocol: the peer is not working as it should. Nesting deeper than the
    # decoder goes (`[[[...]]]`, well within the size limit) is a RecursionError, not a ValueError.
    except (ValueError, RecursionError) as exc:
        raise PeerUnavailable(
            f"member {recipient} answered with something other than JSON"
        ) from exc


async def _bounded_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's bytes as sent, read only up to `limit`: nothing from a peer is unpacked or
    held in memory before its signature and digest are checked."""
    if not as_sent(response.headers):
        raise FederationRefused("the answer has a content coding", code="invalid_signature")
    if response.content_length is not None and response.content_length > limit:
        raise FederationRefused("the answer is too large", code="invalid_signature")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise FederationRefused("the answer is too large", code="invalid_signature")
    return bytes(body)
