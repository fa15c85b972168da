"""A real node for tests: settings on a real database, a real signing key, real clients."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey

from gateway.keys import ENGINE
from gateway.oauth import Client, register_client
from gateway.protection import KeyRing, write_keyfile
from gateway.settings import Settings
from gateway.signing import generate_signing_key, write_signing_key

from ..conftest import Database

MEMBER = "E09000007"  # Camden


def node_settings(database: Database, tmp_path: Path, **overrides: Any) -> Settings:
    key_file, ring_file = tmp_path / "signing-key.json", tmp_path / "keys.json"
    if not key_file.exists():
        write_signing_key(generate_signing_key(MEMBER), key_file)
        write_keyfile(ring_file, KeyRing.generate())
    values: dict[str, Any] = {
        "member_id": MEMBER,
        "database_url": database.url,
        "database_schema": database.schema,
        "signing_key_file": key_file,
        "keyfile": ring_file,
        "public_url": "http://127.0.0.1:8080",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class BoroughSystem:
    """A borough case system registered as a client, holding its own private key."""

    client: Client
    key: ECKey
    token_endpoint: str

    def assertion(self, **claims: Any) -> str:
        return str(
            private_key_jwt_sign(
                self.key.as_dict(private=True),
                self.client.client_id,
                self.token_endpoint,
                alg="ES256",
                claims=claims or None,
            )
        )

    async def token(self, http: TestClient[Any, Any], scope: str | None = None) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(),
        }
        if scope:
            form["scope"] = scope
        response = await http.post("/oauth/token", data=form)
        body = await response.json()
        assert response.status == 200, body
        return str(body["access_token"])


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `cafx` command the node's configuration."""
    env = {
        "CAFX_MEMBER_ID": settings.member_id,
        "CAFX_DATABASE_URL": settings.database_url,
        "CAFX_KEYFILE": str(settings.keyfile),
        "CAFX_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "CAFX_PUBLIC_URL": settings.public_url,
    }
    if settings.database_schema is not None:
        env["CAFX_DATABASE_SCHEMA"] = settings.database_schema
    return env


async def register_system(
    http: TestClient[Any, Any], settings: Settings, scopes: list[str], name: str = "eCAF"
) -> BoroughSystem:
    key = ECKey.generate_key("P-256", parameters={"kid": f"k{time.time_ns()}"}, private=True)
    jwks = {"keys": [key.as_dict(private=False)]}
    client = await register_client(http.app[ENGINE], name, scopes, jwks=jwks)
    return BoroughSystem(client, key, settings.token_endpoint)
