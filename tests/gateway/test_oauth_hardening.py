"""/oauth/token after its security review: no token or secret hash in DEBUG logs, the assertion
algorithms pinned (and the keys a client may register with), client_secret_basic on loopback only
with long secrets, a small body limit, `invalid_scope`, one `invalid_client` answer, one `aud`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from pytest_aiohttp import AiohttpClient

from gateway.app import create_app
from gateway.cli import cli
from gateway.keys import ENGINE
from gateway.oauth import Client, register_client
from gateway.oauth._clients import load_client
from gateway.oauth._server import Assertion, _PrivateKeyJwt
from gateway.observability import QUIET_LOGGERS, configure_logging
from gateway.settings import Settings
from gateway.storage import create_engine, upgrade

from ..conftest import Database
from .node import node_settings, register_system

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECRET = "s3cret-for-development-0123456789"  # noqa: S105 - a test's


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(client_id: str, aud: object, **more: object) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60}
    return {**claims, "jti": f"j{time.time_ns()}", **more}


def _form(assertion: str, **more: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **more,
    }


async def _keyed_client(http: TestClient[Any, Any], key: Key) -> Client:
    public = {**key.as_dict(private=False), "kid": "k1"}
    return await register_client(
        http.app[ENGINE], "eCAF", ["episodes:read"], jwks={"keys": [public]}
    )


# --- 1. nothing secret in the logs, whatever the level ---------------------------------------------


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The node's logging configured at DEBUG, its one handler writing here; put back after."""
    root = logging.getLogger()
    names = (*QUIET_LOGGERS, "aiohttp.access")
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names}
    converter = logging.Formatter.converter
    configure_logging("DEBUG")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
        logging.Formatter.converter = converter


async def test_debug_logs_hold_no_access_token_and_no_secret_hash(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, debug_log: io.StringIO
) -> None:
    """authlib logs "Issue token %r to %r" (the token, the client with its secret hash), and the
    database drivers the parameters of every statement, at DEBUG."""
    settings = node_settings(database, tmp_path, allow_client_secret_basic=True)
    http = await aiohttp_client(create_app(settings))
    client = await register_client(http.app[ENGINE], "dev", ["episodes:read"], secret=SECRET)
    credentials = base64.b64encode(f"{client.client_id}:{SECRET}".encode()).decode()
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    body = await response.json()
    assert response.status == 200, body
    logged = debug_log.getvalue()
    assert '"logger": "cafx.http"' in logged  # the handler did capture the node's lines
    assert client.secret_hash is not None
    for secret in (body["access_token"], client.secret_hash, SECRET):
        assert secret not in logged


def test_a_client_repr_holds_neither_its_secret_hash_nor_its_keys() -> None:
    key = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    client = Client("c1", "eCAF", frozenset(), jwks={"keys": [key]}, secret_hash="scrypt$salt$hash")
    assert "scrypt$" not in repr(client) and str(key["x"]) not in repr(client)


# --- 2. the assertion algorithms, and the keys that can sign with them -----------------------------


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        (lambda: OKPKey.generate_key("Ed25519", private=True), "Ed25519"),
        (lambda: OKPKey.generate_key("Ed25519", private=True), "EdDSA"),  # RFC 9864's old name
        (lambda: RSAKey.generate_key(2048, private=True), "RS256"),
        (lambda: RSAKey.generate_key(2048, private=True), "PS256"),
        (lambda: ECKey.generate_key("P-256", private=True), "ES256"),
    ],
    ids=["Ed25519", "EdDSA", "RS256", "PS256", "ES256"],
)
async def test_each_allowed_key_type_gets_a_token(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, make_key: Any, alg: str
) -> None:
    """An Ed25519 client registered, then never got a token: joserfc's default list lacks it."""
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    key = make_key()
    client = await _keyed_client(http, key)
    # joserfc warns a signer who writes the deprecated name; the node accepts it without a word.
    with pytest.warns(SecurityWarning) if alg == "EdDSA" else contextlib.nullcontext():
        assertion = private_key_jwt_sign(
            key, client.client_id, settings.token_endpoint, alg=alg, header={"kid": "k1"}
        )
    response = await http.post("/oauth/token", data=_form(str(assertion)))
    assert response.status == 200, await response.text()


def _rsa_1024() -> dict[str, str]:
    """A 1024-bit RSA public JWK, made without joserfc (which warns about its size)."""
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505 - the key refused
    return {
        "kty": "RSA",
        "n": _b64(numbers.n.to_bytes(128, "big")),
        "e": _b64(numbers.e.to_bytes(3, "big")),
    }


@pytest.mark.parametrize(
    ("key", "refusal"),
    [
        (_rsa_1024(), "at least 2048 bits"),
        (ECKey.generate_key("P-384", private=True).as_dict(private=False), "P-256"),
        (OKPKey.generate_key("Ed448", private=True).as_dict(private=False), "Ed25519"),
        (OKPKey.generate_key("X25519", private=True).as_dict(private=False), "Ed25519"),
        ({**ECKey.generate_key("P-256").as_dict(private=False), "alg": "ES384"}, "alg"),
    ],
    ids=["rsa-1024", "ec-p384", "ed448", "x25519", "ec-with-another-alg"],
)
async def test_a_key_no_allowed_algorithm_verifies_is_refused_at_registration(
    database: Database, key: dict[str, object], refusal: str
) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        with pytest.raises(ValueError, match=refusal):
            await register_client(engine, "eCAF", ["episodes:read"], jwks={"keys": [key]})
    finally:
        await engine.dispose()


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(claims: dict[str, Any]) -> str:
    return _b64(b'{"alg":"none"}') + "." + _b64(json.dumps(claims).encode()) + "."


async def test_hmac_and_unsigned_assertions_are_refused(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """HS256 keyed with the client's public key (anyone has it), and `alg: none`."""
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    public = json.dumps(system.key.as_dict(private=False)).encode()
    client_id = system.client.client_id
    for assertion in (
        _hs256(_claims(client_id, settings.token_endpoint), public),
        _hs256(_claims(client_id, settings.token_endpoint), system.key.as_pem(private=False)),
        _unsigned(_claims(client_id, settings.token_endpoint)),
    ):
        response = await http.post("/oauth/token", data=_form(assertion))
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_client"


def test_an_hmac_assertion_is_refused_even_with_a_shared_key_at_hand() -> None:
    """The pin itself: joserfc's default list has HS256, so a shared key (say, an `oct` JWK that
    found its way into a client's key set) would verify an assertion anyone could forge."""
    key = OctKey.import_key(b"k" * 32)
    endpoint = "http://127.0.0.1:8080/oauth/token"
    assertion = jwt.encode({"alg": "HS256"}, _claims("c1", endpoint), key, algorithms=["HS256"])
    method = _PrivateKeyJwt([endpoint], Assertion())
    with pytest.raises(InvalidClientError):
        method.process_assertion_claims(assertion, key)


# --- 3. client_secret_basic: loopback only, long secrets -------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "host"),
    [("https://camden.example", "127.0.0.1"), ("http://127.0.0.1:8080", "0.0.0.0")],  # noqa: S104
    ids=["public-url", "host"],
)
def test_client_secret_basic_refuses_to_start_off_loopback(
    tmp_path: Path, public_url: str, host: str
) -> None:
    settings = Settings(
        member_id="E09000007",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'n.sqlite3'}",
        public_url=public_url,
        host=host,
        allow_client_secret_basic=True,
    )
    with pytest.raises(RuntimeError, match="loopback"):
        create_app(settings)
    create_app(settings.model_copy(update={"allow_client_secret_basic": False}))
    create_app(settings.model_copy(update={"public_url": "http://localhost:8080", "host": "::1"}))


async def test_a_short_client_secret_is_refused_at_registration(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await aiohttp_client(create_app(node_settings(database, tmp_path)))
    for short in ("x", SECRET[:31]):
        with pytest.raises(ValueError, match="at least 32 characters") as refused:
            await register_client(http.app[ENGINE], "dev", ["episodes:read"], secret=short)
        assert short not in str(refused.value)
    await register_client(http.app[ENGINE], "dev", ["episodes:read"], secret=SECRET[:32])


def test_clients_add_reads_the_secret_from_stdin(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}"
    config = tmp_path / "node.toml"
    config.write_text(f'member_id = "E09000012"\ndatabase_url = "{database_url}"\n')
    add = ["clients", "add", "dev", "--config", str(config), "--scopes", "episodes:read"]
    short = CliRunner().invoke(cli, [*add, "--secret", "-"], input="short\n")
    assert short.exit_code != 0 and "at least 32 characters" in short.output
    assert "short" not in short.output.replace("shorter", "")
    result = CliRunner().invoke(cli, [*add, "--secret", "-"], input=f"{SECRET}\n")
    assert result.exit_code == 0, result.output
    client_id = result.stdout.strip()
    assert SECRET not in result.output

    async def stored() -> Client | None:
        engine = create_engine(database_url)
        try:
            return await load_client(engine, client_id, allow_secret=True)
        finally:
            await engine.dispose()

    client = asyncio.run(stored())
    assert client is not None and client.check_client_secret(SECRET)


# --- 4. a small body --------------------------------------------------------------------------------


async def test_a_large_token_request_is_refused_413(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    padded = _form(system.assertion(), padding="x" * 17 * 1024)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit only
        for _ in range(20):
            yield b"padding=" + b"x" * 1024 + b"&"

    for data in (padded, chunked()):
        response = await http.post(
            "/oauth/token",
            data=data,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        body = await response.json()
        assert response.status == 413, body
        assert body["error"] == "payload_too_large" and set(body) == {
            "error",
            "message",
            "request_id",
        }
    small = await http.post("/oauth/token", data=_form(system.assertion(), padding="x" * 1024))
    assert small.status == 200, await small.text()


# --- 5. invalid_scope, one invalid_client answer, one audience -------------------------------------


async def test_asking_only_for_scopes_the_client_lacks_is_invalid_scope(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    response = await http.post(
        "/oauth/token", data=_form(system.assertion(), scope="audit:read episodes:write")
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_scope"
    some = await http.post(
        "/oauth/token", data=_form(system.assertion(), scope="audit:read episodes:read")
    )
    assert (await some.json())["scope"] == "episodes:read"


async def test_every_refused_assertion_gets_the_same_answer(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """An unknown client id was answered "The client does not exist on this server.", a bad
    signature otherwise: the difference told a caller which client ids exist."""
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    other = await register_system(http, settings, ["episodes:read"], name="other")
    endpoint, key = settings.token_endpoint, system.key.as_dict(private=True)
    unknown = private_key_jwt_sign(key, "cafx-0000000000000000", endpoint, alg="ES256")
    wrong_key = private_key_jwt_sign(
        other.key.as_dict(private=True), system.client.client_id, endpoint, alg="ES256"
    )
    wrong_audience = system.assertion(aud="https://elsewhere.example/oauth/token")
    answers = []
    for assertion in (unknown, wrong_key, wrong_audience):
        response = await http.post("/oauth/token", data=_form(str(assertion)))
        answers.append((response.status, await response.json()))
    assert answers[0][0] == 400 and answers[0][1]["error"] == "invalid_client"
    assert answers[1] == answers[0] and answers[2] == answers[0]


async def test_the_audience_is_one_string_naming_this_server(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read"])
    endpoint = settings.token_endpoint
    for audience, expected in (
        ([endpoint, "https://elsewhere.example"], 400),
        ([endpoint], 400),
        (endpoint, 200),
        (settings.issuer, 200),
    ):
        response = await http.post("/oauth/token", data=_form(system.assertion(aud=audience)))
        assert response.status == expected, (audience, await response.text())
