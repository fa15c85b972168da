"""The node-to-node transport of the London protocol (DESIGN 3.1, 3.2): mutual TLS 1.3 with
federation certificates, RFC 9421 HTTP Message Signatures on every request and response, RFC 9530
`Content-Digest`, and the replay check.

This layer knows HTTP, TLS and signatures; it never knows consent, episodes or what a message means
(STYLE "transport apart from logic", after synapse's `federation/transport/`). Its only dependencies on
the rest of the node are the error tree (`gateway.errors`) and, for the SQL nonce store, the table
`federation_nonces` in `gateway.storage`.

- `tls`: `server_context`, `client_context`, `peer_member`
- `digest`: `content_digest`, `check_content_digest`
- `signatures`: `sign_request`, `verify_request`, `sign_response`, `verify_response`
- `replay`: `MemoryReplayStore`, `SqlReplayStore`
- `client`: `FederationClient`, `federation_session`
- `server`: `federation_middleware`, `VERIFIED_REQUEST`, `verified_json`
"""

from __future__ import annotations

from .client import MAX_RESPONSE_BYTES, FederationClient, FederationReply, federation_session
from .digest import check_content_digest, content_digest
from .replay import MAX_SKEW, RETENTION, MemoryReplayStore, ReplayStore, SqlReplayStore
from .server import (
    VERIFIED_REQUEST,
    ServerTransport,
    federation_middleware,
    target_uri,
    verified_json,
    verified_request,
)
from .signatures import (
    REQUEST_COMPONENTS,
    RESPONSE_COMPONENTS,
    Key,
    KeyLookup,
    RequestParts,
    VerifiedRequest,
    VerifiedResponse,
    new_nonce,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)
from .tls import client_context, member_urn, peer_member, server_context

__all__ = [
    "MAX_RESPONSE_BYTES",
    "MAX_SKEW",
    "REQUEST_COMPONENTS",
    "RESPONSE_COMPONENTS",
    "RETENTION",
    "VERIFIED_REQUEST",
    "FederationClient",
    "FederationReply",
    "Key",
    "KeyLookup",
    "MemoryReplayStore",
    "ReplayStore",
    "RequestParts",
    "ServerTransport",
    "SqlReplayStore",
    "VerifiedRequest",
    "VerifiedResponse",
    "check_content_digest",
    "client_context",
    "content_digest",
    "federation_middleware",
    "federation_session",
    "member_urn",
    "new_nonce",
    "peer_member",
    "server_context",
    "sign_request",
    "sign_response",
    "target_uri",
    "verified_json",
    "verified_request",
    "verify_request",
    "verify_response",
]
