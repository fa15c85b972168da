"""/oauth/token: client credentials with private_key_jwt (RFC 7523), replay refused, JWT access
tokens (RFC 9068) whose every claim is checked."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update

from gateway.app import create_app
from gateway.errors import Forbidden, Unauthorised
from gateway.keys import ENGINE, SIGNING_KEY
from gateway.oauth import disable_client, register_client, validate_access_token
from gateway.oauth._clients import load_client
from gateway.oauth._server import issue_access_token
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import clients

from ..conftest import Database
from .node import node_settings, register_system

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_private_key_jwt_gets_a_token_and_replay_is_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read", "episodes:write"])
    assertion = system.assertion()
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "episodes:read audit:read",
    }
    first = await http.post("/oauth/token", data=form)
    body = await first.json()
    assert first.status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "episodes:read"  # audit:read was not granted to this client
    caller = validate_access_token(
        body["access_token"],
        http.app[SIGNING_KEY],
        issuer=settings.issuer,
        audience=settings.api_audience,
    )
    assert caller.client_id == system.client.client_id
    assert caller.scopes == {"episodes:read"}

    replay = await http.post("/oauth/token", data=form)
    # RFC 6749 5.2: invalid_client is a 400 unless the client authenticated with a header.
    assert replay.status == 400
    assert (await replay.json())["error"] == "invalid_client"


async def test_assertion_for_another_audience_or_signed_by_another_key_is_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    impostor = await register_system(http, settings, ["episodes:read"], name="other")
    wrong_audience = system.assertion(aud="https://elsewhere.example/oauth/token")
    # A valid assertion made with another client's key, naming this client.
    impostor.client = system.client
    wrong_key = impostor.assertion()
    for assertion in (wrong_audience, wrong_key):
        response = await http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_client"


async def test_client_secret_basic_only_when_allowed(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    for allowed, expected in ((False, 401), (True, 200)):
        settings = node_settings(
            database,
            tmp_path,
            allow_client_secret_basic=allowed,  # one key ring: one database
        )
        http = await aiohttp_client(create_app(settings))
        secret = "s3cret-for-development-0123456789"  # noqa: S105 - a test's
        client = await register_client(
            http.app[ENGINE], f"dev-{allowed}", ["episodes:read"], secret=secret
        )
        credentials = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {credentials}"},
        )
        assert response.status == expected, await response.text()
        await http.close()


class _FromNow(int):
    """A claim's time as seconds from when the token is made (not from when the tests were
    collected, which may be minutes before this test runs in a long suite)."""


def _token(key: OKPKey, **changes: object) -> str:
    now = int(time.time())
    changes = {k: now + v if isinstance(v, _FromNow) else v for k, v in changes.items()}
    claims: dict[str, object] = {
        "iss": "http://node",
        "aud": "http://node/api/v1",
        "sub": "c1",
        "scope": "episodes:read",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "Ed25519", "typ": "at+jwt"}, claims, key, algorithms=["Ed25519"])


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "http://other"},
        {"aud": "http://node/federation/v1"},
        {"exp": _FromNow(-120)},
        {"nbf": _FromNow(600)},
        {"iat": None},
        {"scope": None},
    ],
    ids=["issuer", "audience", "expired", "not-yet-valid", "no-iat", "no-scope"],
)
def test_access_token_claims_are_all_checked(changes: dict[str, object]) -> None:
    key = OKPKey.generate_key("Ed25519", private=True)
    assert validate_access_token(
        _token(key), key, issuer="http://node", audience="http://node/api/v1"
    )
    with pytest.raises(Unauthorised):
        validate_access_token(
            _token(key, **changes), key, issuer="http://node", audience="http://node/api/v1"
        )


def test_access_token_signed_by_another_key_or_of_another_type_is_refused() -> None:
    key, other = (OKPKey.generate_key("Ed25519", private=True) for _ in range(2))
    with pytest.raises(Unauthorised):
        validate_access_token(
            _token(other), key, issuer="http://node", audience="http://node/api/v1"
        )
    id_token = jwt.encode({"alg": "Ed25519"}, {"iss": "http://node"}, key, algorithms=["Ed25519"])
    with pytest.raises(Unauthorised):
        validate_access_token(id_token, key, issuer="http://node", audience="http://node/api/v1")


def test_scopes_are_enforced() -> None:
    key = OKPKey.generate_key("Ed25519", private=True)
    token = issue_access_token(
        key,
        issuer="http://node",
        audience="http://node/api/v1",
        client_id="c",
        scope="episodes:read",
        ttl=60,
    )
    caller = validate_access_token(token, key, issuer="http://node", audience="http://node/api/v1")
    caller.require("episodes:read")
    with pytest.raises(Forbidden):
        caller.require("episodes:write")


@pytest.mark.parametrize(
    "key",
    [
        {"kty": "oct", "k": base64.urlsafe_b64encode(b"s" * 32).decode().rstrip("=")},
        OKPKey.generate_key("Ed25519", private=True).as_dict(private=True),
    ],
    ids=["a shared secret", "a private key"],
)
async def test_a_client_is_registered_with_public_keys_of_key_pairs_only(
    database: Database, tmp_path: Path, key: dict[str, object]
) -> None:
    """A shared secret in the JWKS made client_secret_jwt of it, its secret stored in clear."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        with pytest.raises(ValueError, match="key"):
            await register_client(engine, "supplier", ["episodes:read"], jwks={"keys": [key]})
        # One stored before this check is not used to verify an assertion.
        public = OKPKey.generate_key("Ed25519", private=True).as_dict(private=False)
        client = await register_client(
            engine, "supplier", ["episodes:read"], jwks={"keys": [public]}
        )
        async with engine.begin() as connection:
            await connection.execute(
                update(clients)
                .where(clients.c.id == client.client_id)
                .values(jwks={"keys": [key, public]})
            )
        loaded = await load_client(engine, client.client_id, allow_secret=False)
        assert loaded is not None
        assert [k.as_dict(private=False)["x"] for k in loaded.public_keys().keys] == [public["x"]]
    finally:
        await engine.dispose()


async def test_a_disabled_client_gets_no_token_and_its_tokens_are_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    token = await system.token(http)
    auth = {"Authorization": f"Bearer {token}"}
    assert (
        await http.get("/api/v1/episodes", params={"nhs_number": "9434765919"}, headers=auth)
    ).status == 200
    await disable_client(http.app[ENGINE], system.client.client_id)
    refused = await http.get("/api/v1/episodes", params={"nhs_number": "9434765919"}, headers=auth)
    assert refused.status == 401 and (await refused.json())["error"] == "invalid_token"
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": system.assertion(),
    }
    assert (await http.post("/oauth/token", data=form)).status in (400, 401)
