"""A small built-in OpenID provider for the demo and the tests, mounted at `/dev-idp` only when
`console_dev_provider` is on (it is off by default; a real borough points `console_issuer` at its own
identity provider).

    GET  /.well-known/openid-configuration   discovery (OIDC Discovery 1.0)
    GET  /jwks                                its public key (Ed25519)
    GET  /authorize                           a sign-in form: the demo users and one password
    POST /authorize                           checks them, redirects back with a one-time code
    POST /token                               code + PKCE verifier + client secret -> signed ID token

The demo users are every lead CAF contact in the federation metadata (any borough: signing in to the
wrong borough's console is refused there) and one person who is nobody's lead contact.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OKPKey

from ..keys import MEMBERS
from ._sessions import same_secret

__all__ = ["DEV_PROVIDER", "DEV_PROVIDER_PATH", "NOT_A_LEAD", "DevProvider", "dev_provider_app"]

DEV_PROVIDER_PATH = "/dev-idp"
NOT_A_LEAD = "visitor-1"  # a demo user who is nobody's lead CAF contact
_CODE_TTL = 120.0
_TOKEN_TTL = 300


@dataclass(frozen=True, slots=True)
class _User:
    id: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class _Grant:
    user: _User
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    expires: float


class DevProvider:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        password: str,
    ) -> None:
        self.issuer, self.client_id, self.client_secret = issuer, client_id, client_secret
        self.redirect_uri, self.password = redirect_uri, password
        self.key = OKPKey.generate_key(
            "Ed25519",
            # No "alg" on the key: like many providers' Ed25519 keys, it verifies tokens labelled
            # "Ed25519" (RFC 9864) or "EdDSA" (RFC 8037); this provider signs with "Ed25519".
            parameters={"kid": f"dev-{secrets.token_hex(4)}", "use": "sig"},
            private=True,
        )
        self._codes: dict[str, _Grant] = {}

    def users(self, request: web.Request) -> list[_User]:
        directory = request.config_dict[MEMBERS]()
        found = [
            _User(contact.id, contact.name, contact.email)
            for member in directory.metadata.members
            for contact in member.lead_contacts
        ]
        return [
            *found,
            _User(NOT_A_LEAD, "A visitor (not a lead CAF contact)", "visitor@example.org"),
        ]

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant.user.id,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + _TOKEN_TTL,
            "nonce": grant.nonce,
            "email": grant.user.email,
            "email_verified": True,
            "name": grant.user.name,
        }
        header = {"alg": "Ed25519", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["Ed25519"])


DEV_PROVIDER: web.AppKey[DevProvider] = web.AppKey("dev_provider")


def _headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


async def discovery(request: web.Request) -> web.Response:
    provider = request.config_dict[DEV_PROVIDER]
    return web.json_response(
        {
            "issuer": provider.issuer,
            "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token",
            "jwks_uri": f"{provider.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["Ed25519"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
        }
    )


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(
        {"keys": [request.config_dict[DEV_PROVIDER].key.as_dict(private=False)]}
    )


_AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "state", "nonce", "code_challenge")


def _authorize_params(source: Any, provider: DevProvider) -> dict[str, str]:
    params = {name: str(source.get(name, "")) for name in _AUTHORIZE_PARAMS}
    problems = []
    if params["client_id"] != provider.client_id or params["redirect_uri"] != provider.redirect_uri:
        problems.append("unknown client or redirect address")
    if (
        source.get("response_type", "code") != "code"
        or source.get("code_challenge_method", "S256") != "S256"
    ):
        problems.append("only the code flow with PKCE S256")
    if not params["nonce"] or not params["code_challenge"] or not params["state"]:
        problems.append("state, nonce and code_challenge are required")
    if problems:
        raise web.HTTPBadRequest(text="; ".join(problems))
    return params


async def authorize_form(request: web.Request) -> web.Response:
    provider = request.config_dict[DEV_PROVIDER]
    params = _authorize_params(request.query, provider)
    return _form(request, params, error=None)


def _form(request: web.Request, params: dict[str, str], error: str | None) -> web.Response:
    provider = request.config_dict[DEV_PROVIDER]
    response = aiohttp_jinja2.render_template(
        "dev_sign_in.html",
        request,
        {"params": params, "users": provider.users(request), "error": error},
        status=401 if error else 200,
    )
    response.headers.update(_headers())
    return response


async def authorize(request: web.Request) -> web.Response:
    provider = request.config_dict[DEV_PROVIDER]
    form = await request.post()
    params = _authorize_params(form, provider)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    users = {user.id: user for user in provider.users(request)}
    if username not in users or not same_secret(provider.password, password):
        return _form(request, params, error="That username and password do not match.")
    code = secrets.token_urlsafe(32)
    provider._codes = {c: g for c, g in provider._codes.items() if g.expires > time.monotonic()}
    provider._codes[code] = _Grant(
        users[username],
        params["client_id"],
        params["redirect_uri"],
        params["nonce"],
        params["code_challenge"],
        time.monotonic() + _CODE_TTL,
    )
    query = urlencode({"code": code, "state": params["state"]})
    raise web.HTTPSeeOther(f"{params['redirect_uri']}?{query}")


def _token_error(code: str) -> web.Response:
    return web.json_response({"error": code}, status=400, headers={"Cache-Control": "no-store"})


async def token(request: web.Request) -> web.Response:
    provider = request.config_dict[DEV_PROVIDER]
    form = await request.post()
    if form.get("grant_type") != "authorization_code":
        return _token_error("unsupported_grant_type")
    secret = str(form.get("client_secret", ""))
    if form.get("client_id") != provider.client_id or (
        provider.client_secret is not None and not same_secret(provider.client_secret, secret)
    ):
        return _token_error("invalid_client")
    grant = provider._codes.pop(str(form.get("code", "")), None)  # one use only
    if grant is None or grant.expires < time.monotonic():
        return _token_error("invalid_grant")
    verifier = str(form.get("code_verifier", ""))
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    if not same_secret(digest.decode(), grant.challenge) or (
        form.get("redirect_uri") != grant.redirect_uri
    ):
        return _token_error("invalid_grant")
    return web.json_response(
        {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": _TOKEN_TTL,
            "id_token": provider.id_token(grant),
        },
        headers={"Cache-Control": "no-store"},
    )


def dev_provider_app(provider: DevProvider) -> web.Application:
    app = web.Application()
    app[DEV_PROVIDER] = provider
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
    )
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize_form)
    app.router.add_post("/authorize", authorize)
    app.router.add_post("/token", token)
    return app
