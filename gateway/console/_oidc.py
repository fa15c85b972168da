"""The console's OpenID Connect client: authorization code flow with PKCE (RFC 7636, S256).

authlib builds the authorization request and the token request (its framework-neutral rfc6749 and
rfc7636 helpers); aiohttp does the HTTP; joserfc validates the ID token: signature against the
provider's JWKS, then iss, aud (and azp when there are several audiences), exp, iat and the nonce
this sign-in sent (OIDC Core 3.1.3.7). Every address in the provider's discovery document must be
https, except for the built-in development provider, which lives on the node itself.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from ..errors import PeerUnavailable, Unauthorised

__all__ = ["ID_TOKEN_ALGORITHMS", "Identity", "OidcClient", "SignInStart"]

# What providers sign ID tokens with; "none" and HMAC (a key the client holds) are never accepted.
# "EdDSA" is what most providers still call Ed25519 (RFC 8037); RFC 9864 prefers "Ed25519".
ID_TOKEN_ALGORITHMS = ["RS256", "PS256", "ES256", "Ed25519", "EdDSA"]
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
_LEEWAY = 60  # seconds of clock difference tolerated
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True, slots=True)
class SignInStart:
    url: str  # where to send the browser
    state: dict[str, str]  # kept server-side until the callback


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    claims: Mapping[str, Any]  # the validated ID token's claims: the console matches one of them


class OidcClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_url: str,
        allow_http: bool = False,
    ) -> None:
        # As configured: some providers' issuers end in "/" (Auth0's do), and ID tokens name the
        # issuer exactly as the provider's discovery document spells it.
        self.session, self.issuer = session, issuer
        self.allow_http = allow_http  # the built-in development provider only
        self.client_id, self.client_secret, self.redirect_url = (
            client_id,
            client_secret,
            redirect_url,
        )
        self._discovery: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self.session.get(url, timeout=_TIMEOUT) as reply:
                if reply.status != 200:
                    raise PeerUnavailable(f"the identity provider answered {reply.status}")
                body = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PeerUnavailable(
                f"the identity provider is unreachable ({type(exc).__name__})"
            ) from None
        if not isinstance(body, dict):
            raise PeerUnavailable("the identity provider answered something other than JSON")
        return body

    def _trusted_url(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        parts = urlsplit(url)
        schemes = ("https", "http") if self.allow_http else ("https",)
        return parts.scheme in schemes and bool(parts.hostname)

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            if not self._trusted_url(self.issuer):
                raise PeerUnavailable("the identity provider's issuer is not an https address")
            document = await self._get_json(
                f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            issuer = document.get("issuer")
            if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
                raise PeerUnavailable("the provider's discovery document names another issuer")
            if not all(self._trusted_url(document.get(name)) for name in _ENDPOINTS):
                raise PeerUnavailable(
                    "the provider's discovery document lacks an https authorization, token or "
                    "JWKS address"
                )
            self._discovery = document
        return self._discovery

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            jwks = await self._get_json((await self.discovery())["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise PeerUnavailable(
                    f"the provider's JWKS is unusable ({type(exc).__name__})"
                ) from None
        return self._keys

    async def start(self) -> SignInStart:
        """The authorization request, with a fresh state, nonce and PKCE verifier."""
        document = await self.discovery()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = prepare_grant_uri(
            document["authorization_endpoint"],
            self.client_id,
            "code",
            redirect_uri=self.redirect_url,
            scope="openid email profile",
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return SignInStart(url, {"state": state, "nonce": nonce, "verifier": verifier})

    async def finish(self, code: str, pending: dict[str, str]) -> Identity:
        """Exchange the code (with the PKCE verifier) and validate the ID token."""
        document = await self.discovery()
        extra = {"client_id": self.client_id, "code_verifier": pending["verifier"]}
        if self.client_secret is not None:
            extra["client_secret"] = self.client_secret  # client_secret_post
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self.redirect_url, **extra
        )
        try:
            async with self.session.post(
                document["token_endpoint"],
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=_TIMEOUT,
            ) as reply:
                answer = await reply.json(content_type=None)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PeerUnavailable(
                f"the identity provider is unreachable ({type(exc).__name__})"
            ) from None
        if status != 200 or not isinstance(answer, dict) or "id_token" not in answer:
            raise Unauthorised("the identity provider refused the sign-in", code="invalid_grant")
        return await self.validate(str(answer["id_token"]), pending["nonce"])

    async def validate(self, id_token: str, nonce: str) -> Identity:
        keys = await self._key_set()
        issuer = (await self.discovery())["issuer"]  # exactly as the provider spells it
        try:
            try:
                token = _decode(id_token, keys)
            except JoseError:  # perhaps a key rotated since we fetched the set: fetch it once more
                token = _decode(id_token, await self._key_set(refresh=True))
            registry = jwt.JWTClaimsRegistry(
                now=int(time.time()),
                leeway=_LEEWAY,
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise Unauthorised(
                f"the ID token is not valid ({type(exc).__name__})", code="invalid_token"
            ) from None
        # OIDC Core 3.1.3.7 (4, 5): a token for several audiences must say it was issued to us.
        audiences, azp = token.claims["aud"], token.claims.get("azp")
        several = isinstance(audiences, list) and len(audiences) > 1
        if (several and azp is None) or (azp is not None and azp != self.client_id):
            raise Unauthorised(
                "the ID token was not issued to this console (azp)", code="invalid_token"
            )
        subject = token.claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthorised("the ID token names no subject", code="invalid_token")
        return Identity(subject, dict(token.claims))


def _decode(id_token: str, keys: KeySet) -> jwt.Token:
    with warnings.catch_warnings():
        # joserfc warns on "EdDSA" (deprecated by RFC 9864); we accept it on purpose, see above.
        warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
        return jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
