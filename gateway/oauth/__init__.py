"""OAuth2 for borough systems: `/oauth/token` (client credentials, RFC 6749 4.4) with client
authentication by `private_key_jwt` (RFC 7523) and JWT access tokens (RFC 9068) for `/api/v1`."""

from ._bearer import Caller, validate_access_token
from ._clients import (
    SCOPES,
    Client,
    client_enabled,
    disable_client,
    load_client,
    register_client,
)
from ._routes import oauth_app

__all__ = [
    "SCOPES",
    "Caller",
    "Client",
    "client_enabled",
    "disable_client",
    "load_client",
    "oauth_app",
    "register_client",
    "validate_access_token",
]
