"""The token endpoint's OAuth2 logic (authlib): client credentials grant (RFC 6749 4.4), client
authentication by private_key_jwt (RFC 7523 2.2, 3) or, for development, client_secret_basic.

authlib's server is synchronous, so the handler fetches what it needs first (the client, whether the
assertion's jti was seen) and hands it in; `TokenServer` then does only CPU work (signatures, scrypt),
which the handler runs off the event loop.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from ._clients import (
    ASSERTION_ALGORITHMS,
    CLIENT_SECRET_BASIC,
    PRIVATE_KEY_JWT,
    Client,
    no_such_client,
)

__all__ = ["CLIENT_REFUSED", "Assertion", "TokenServer", "issue_access_token"]

# Longest a client assertion may live (exp - now): bounds how long its jti must be remembered.
ASSERTION_MAX_LIFETIME = 3600 + 60
# The one answer to an assertion refused for any reason (unknown client, bad signature, wrong
# audience, replay, ...): which one it was would tell a caller which client ids exist.
CLIENT_REFUSED = "client authentication failed"


class _EdDSA(EdDSAAlgorithm):
    """`EdDSA`, the name RFC 9864 deprecates for `Ed25519`, which many client libraries still write.
    Registration admits Ed25519 OKP keys only, so it verifies nothing else; joserfc's deprecation
    warning is for code that signs, not for a server that accepts both names."""

    security_warning = ""  # joserfc warns when this is set


class _AssertionRegistry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EdDSA()}


# An explicit allow-list: without one joserfc takes its "recommended" set (HS256 among them, no
# Ed25519). Never `none`, never HMAC: only a client's public key verifies its assertion.
_ASSERTIONS = _AssertionRegistry(algorithms=ASSERTION_ALGORITHMS)


@dataclass
class Assertion:
    """What the handler learnt about a client assertion before authlib checks it."""

    seen_before: bool = False
    accepted: tuple[str, int] | None = None  # (jti, exp) once verified, to be recorded


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, form: Mapping[str, str], headers: Mapping[str, str]) -> None:
        super().__init__("POST", uri, headers=dict(headers))
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)

    @cached_property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class _PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, audiences: list[str], assertion: Assertion) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = audiences
        self._assertion = assertion

    def __call__(self, query_client: Any, request: OAuth2Request) -> Client | None:
        try:
            return super().__call__(query_client, request)  # type: ignore[no-any-return]
        except InvalidClientError:
            raise InvalidClientError(description=CLIENT_REFUSED) from None

    def get_audiences(self) -> list[str]:
        return self._audiences

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        """authlib's, with the algorithms pinned (it passes none to `jwt.decode`)."""
        try:
            token = jwt.decode(assertion, resolve_key, registry=_ASSERTIONS)
        except (JoseError, ValueError):
            raise InvalidClientError(description=CLIENT_REFUSED) from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: jwt.Claims) -> None:
        # One audience, the token endpoint or the issuer: not a list that names others too.
        audience = claims.get("aud")
        if not isinstance(audience, str) or audience not in self._audiences:
            raise InvalidClientError(description=CLIENT_REFUSED)
        super().verify_claims(claims)

    def resolve_client_public_key(self, client: Client) -> Any:
        return client.public_keys()

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        exp = int(claims["exp"])
        if self._assertion.seen_before or exp - time.time() > ASSERTION_MAX_LIFETIME:
            return False
        self._assertion.accepted = (str(jti), exp)
        return True


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC]

    def validate_requested_scope(self) -> None:
        """A scope asked for of which the client holds none is refused (RFC 6749 5.2), not answered
        with a token for nothing; one it holds some of gets those."""
        requested = self.request.payload.scope
        if requested and not self.request.client.get_allowed_scope(requested):
            raise InvalidScopeError(description="the client holds none of the scopes asked for")


def issue_access_token(
    key: OKPKey, *, issuer: str, audience: str, client_id: str, scope: str, ttl: int
) -> str:
    """An RFC 9068 JWT access token, signed by the node (EdDSA)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16),
    }
    header = {"alg": "Ed25519", "typ": "at+jwt"}
    if key.kid:
        header["kid"] = key.kid
    return jwt.encode(header, claims, key, algorithms=["Ed25519"])


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    """One request's worth of authorization server, with the client already looked up."""

    def __init__(
        self,
        client: Client | None,
        key: OKPKey,
        *,
        issuer: str,
        audience: str,
        token_endpoint: str,
        ttl: int,
        assertion: Assertion,
        allow_secret: bool = False,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.client, self.key, self.ttl = client, key, ttl
        self.allow_secret = allow_secret
        self.issuer, self.audience, self.token_endpoint = issuer, audience, token_endpoint
        self.assertion = assertion
        self.register_grant(_ClientCredentials)
        self.register_client_auth_method(
            PRIVATE_KEY_JWT, _PrivateKeyJwt([self.token_endpoint, self.issuer], self.assertion)
        )
        self.register_client_auth_method(CLIENT_SECRET_BASIC, self._client_secret_basic)
        self.register_token_generator("client_credentials", self._generate)

    def _client_secret_basic(self, query_client: Any, request: OAuth2Request) -> Client | None:
        """client_secret_basic in place of authlib's: nothing is checked unless the node allows
        secrets, and then exactly one secret check per attempt, whether the id names a client with
        a secret or not, so that neither the answer nor its time says which client ids exist."""
        if not self.allow_secret:
            return None
        try:
            client_id, secret = extract_basic_authorization(request.headers)
        except UnicodeDecodeError:  # credentials that are not UTF-8 name nobody
            return None
        if not client_id or not secret:
            return None
        client = query_client(client_id)
        if client is None or CLIENT_SECRET_BASIC not in client.auth_methods:
            no_such_client(secret)
            return None
        return client if client.check_client_secret(secret) else None

    def query_client(self, client_id: str) -> Client | None:
        return self.client if self.client and self.client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """JWT access tokens are self-contained: nothing to store."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal handlers."""

    def _generate(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        granted = client.get_allowed_scope(scope)
        token = issue_access_token(
            self.key,
            issuer=self.issuer,
            audience=self.audience,
            client_id=client.client_id,
            scope=granted,
            ttl=self.ttl,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.ttl,
            "scope": granted,
        }

    def respond(
        self, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return self.create_token_response(_Request(self.token_endpoint, form, headers))  # type: ignore[no-any-return]
