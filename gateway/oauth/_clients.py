"""Registered borough systems (OAuth2 clients) and their storage."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..storage._tables import clients

__all__ = [
    "ASSERTION_ALGORITHMS",
    "SCOPES",
    "Client",
    "client_enabled",
    "disable_client",
    "hash_secret",
    "load_client",
    "no_such_client",
    "register_client",
]

# What a borough system may be allowed to do on /api/v1.
SCOPES = frozenset(
    {
        "episodes:read",
        "episodes:write",
        "consents:write",
        "audit:read",
        "register:read",
        "requests:write",  # raise cross-borough requests for practitioners (issue 6)
        "requests:decide",  # a lead CAF contact's decisions, through the borough's system
        "directory:read",  # the service directory and the member directory (issue 7)
    }
)
PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _secret_matches(secret: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


# Matches no secret (no scrypt output is all zeros in practice): checked for a client id that names
# no client, so that a wrong id takes as long to refuse as a wrong secret.
_NO_CLIENT = (
    "scrypt$" + base64.b64encode(bytes(16)).decode() + "$" + base64.b64encode(bytes(64)).decode()
)


def no_such_client(secret: str) -> None:
    """A secret presented with a client id that has none: checked like any other, and refused."""
    _secret_matches(secret, _NO_CLIENT)


@dataclass(frozen=True)
class Client:
    """An OAuth2 client as authlib's `ClientMixin` expects it."""

    client_id: str
    name: str
    scopes: frozenset[str]
    # Never in a repr: authlib logs the client (`%r`) when it issues a token.
    jwks: dict[str, Any] | None = field(default=None, repr=False)
    secret_hash: str | None = field(default=None, repr=False)
    auth_methods: frozenset[str] = field(default_factory=frozenset)

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(sorted(self.scopes))
        return " ".join(s for s in scope.split() if s in self.scopes)

    def check_client_secret(self, client_secret: str) -> bool:
        # Only where the node allows secrets for this client: never scrypt work for nothing.
        if CLIENT_SECRET_BASIC not in self.auth_methods or self.secret_hash is None:
            return False
        return _secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in self.auth_methods

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def public_keys(self) -> KeySet:
        # Only public keys of key pairs verify an assertion (private_key_jwt): a shared secret
        # stored here would be a client secret kept in clear, however it got in.
        keys = [k for k in (self.jwks or {}).get("keys", []) if _key_problem(k) is None]
        return KeySet.import_key_set({"keys": keys})


# What verifies a client assertion (`ASSERTION_ALGORITHMS`): the algorithms each key may sign with,
# by key type and curve. Anything else could register and then never get a token.
_ALGORITHMS_FOR: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "PS256"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("OKP", "Ed25519"): frozenset({"Ed25519", "EdDSA"}),
}
ASSERTION_ALGORITHMS = tuple(sorted(set().union(*_ALGORITHMS_FOR.values())))
SMALLEST_RSA_BITS = 2048
SHORTEST_SECRET = 32
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _rsa_bits(key: dict[str, Any]) -> int:
    """The modulus length of an RSA JWK, read from `n` itself (importing a short key would warn)."""
    n = key.get("n")
    if not isinstance(n, str):
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))).bit_length()
    except ValueError:
        return 0


def _key_problem(key: object) -> str | None:
    """Why a JWK cannot be a client's public key, or None."""
    if not isinstance(key, dict):
        return "a key must be a JWK (a JSON object)"
    kty, crv = key.get("kty"), None if key.get("kty") == "RSA" else key.get("crv")
    shape = (kty, crv) if isinstance(kty, str) and isinstance(crv, str | None) else None
    algorithms = _ALGORITHMS_FOR.get(shape) if shape else None
    if algorithms is None:
        return (
            "a key must be the public key of an RSA (2048 bits or more), EC P-256 or OKP Ed25519"
            f" key pair (assertions are verified with {', '.join(ASSERTION_ALGORITHMS)} only)"
        )
    if _PRIVATE_MEMBERS & key.keys():
        return "a key holds private members: send the public key only"
    if kty == "RSA" and _rsa_bits(key) < SMALLEST_RSA_BITS:
        return f"an RSA key must have at least {SMALLEST_RSA_BITS} bits"
    if "alg" in key and not (isinstance(key["alg"], str) and key["alg"] in algorithms):
        return f"a key's alg must be one of {', '.join(sorted(algorithms))} for its key type"
    if key.get("use", "sig") != "sig":
        return "a key's use must be sig"
    return None


async def register_client(
    engine: AsyncEngine,
    name: str,
    scopes: Collection[str],
    *,
    jwks: dict[str, Any] | None = None,
    secret: str | None = None,
) -> Client:
    unknown = set(scopes) - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    if jwks is None and secret is None:
        raise ValueError("a client needs public keys (private_key_jwt) or a secret")
    if secret is not None and len(secret) < SHORTEST_SECRET:
        # The length only, never the secret: `secrets.token_urlsafe(32)` makes a good one.
        raise ValueError(f"a client secret must be at least {SHORTEST_SECRET} characters long")
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ValueError("a JWKS needs at least one key")
        for key in keys:
            problem = _key_problem(key)
            if problem is not None:
                raise ValueError(problem)
        try:  # refuse malformed keys now
            KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise ValueError(f"a key is malformed ({type(exc).__name__})") from None
    client_id = "cafx-" + secrets.token_hex(8)
    async with engine.begin() as connection:
        await connection.execute(
            insert(clients).values(
                id=client_id,
                name=name,
                scopes=sorted(scopes),
                jwks=jwks,
                secret_hash=hash_secret(secret) if secret else None,
                disabled=False,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    loaded = await load_client(engine, client_id, allow_secret=True)
    assert loaded is not None  # noqa: S101 - we have just written it
    return loaded


async def disable_client(engine: AsyncEngine, client_id: str) -> bool:
    """Take a borough system's access away: no new token, and its tokens refused at once."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(clients).where(clients.c.id == client_id).values(disabled=True)
        )
    return bool(result.rowcount == 1)


async def client_enabled(engine: AsyncEngine, client_id: str) -> bool:
    async with engine.connect() as connection:
        disabled = await connection.scalar(
            select(clients.c.disabled).where(clients.c.id == client_id)
        )
    return disabled is False


async def load_client(engine: AsyncEngine, client_id: str, *, allow_secret: bool) -> Client | None:
    """The enabled client `client_id`; secret authentication only where the node allows it."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(clients).where(clients.c.id == client_id))
        ).one_or_none()
    if row is None or row.disabled:
        return None
    methods = set()
    if row.jwks:
        methods.add(PRIVATE_KEY_JWT)
    if row.secret_hash and allow_secret:
        methods.add(CLIENT_SECRET_BASIC)
    return Client(
        client_id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        jwks=row.jwks,
        secret_hash=row.secret_hash,
        auth_methods=frozenset(methods),
    )
