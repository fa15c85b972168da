"""Federation metadata (DESIGN 3.1): only the pinned operator key's signature, never an expired or
older copy; lookups that fail closed; a source that keeps the last good copy until it expires and
then refuses to serve, fed from a file or from a real HTTP server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer

from directory.members import (
    METADATA_TYPE,
    FederationMetadata,
    FileKeeper,
    KeyNotValid,
    LeadContact,
    Member,
    MemberDirectory,
    MemberSuspended,
    MemberUnknown,
    MetadataError,
    MetadataExpired,
    MetadataSource,
    MetadataUnavailable,
    PublicKey,
    SigningKey,
    load_public_key,
    sign_metadata,
    verify_metadata,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"


def ed25519(kid: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid, "alg": "Ed25519"}, private=True)


def p256(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256"}, private=True)


def public(key: PublicKey) -> PublicKey:
    return type(key).import_key(key.as_dict(private=False))


def published(key: PublicKey, not_before: datetime, not_after: datetime) -> SigningKey:
    return SigningKey.from_jwk(
        key.as_dict(private=False), not_before=not_before, not_after=not_after
    )


CONTACT = LeadContact(
    id="camden-lc-1",
    name="Lead Contact One",
    role="Early help lead CAF contact",
    email="lead.one@camden.example",
    phone="020 7974 0000",
)
MEMBER_KEYS: dict[str, PublicKey] = {"camden": ed25519("camden-1"), "islington-old": p256("isl-1")}
MEMBER_KEYS["islington-new"] = ed25519("isl-2")
MEMBER_KEYS["hackney"] = ed25519("hackney-1")


def members() -> list[Member]:
    keys = MEMBER_KEYS
    return [
        Member(
            id=CAMDEN,
            name="Camden",
            endpoint="https://camden.caf.example",
            status="active",
            signing_keys=[
                published(keys["camden"], T0 - timedelta(days=30), T0 + timedelta(days=300))
            ],
            lead_contacts=[CONTACT],
            services_endpoint="https://camden.caf.example/federation/v1/directory/services",
        ),
        Member(
            id=HACKNEY,
            name="Hackney",
            endpoint="https://127.0.0.1:8443",
            status="suspended",
            signing_keys=[
                published(keys["hackney"], T0 - timedelta(days=1), T0 + timedelta(days=9))
            ],
            lead_contacts=[CONTACT.model_copy(update={"id": "hackney-lc-1"})],
        ),
        Member(
            id=ISLINGTON,
            name="Islington",
            endpoint="https://islington.caf.example:8443",
            status="active",
            signing_keys=[
                published(keys["islington-old"], T0 - timedelta(days=300), T0 + timedelta(days=2)),
                published(keys["islington-new"], T0, T0 + timedelta(days=365)),
            ],
        ),
    ]


def metadata(
    version: int = 1, issued_at: datetime = T0, validity: timedelta = timedelta(days=7)
) -> FederationMetadata:
    return FederationMetadata(
        federation="London CAF",
        version=version,
        issued_at=issued_at,
        expires_at=issued_at + validity,
        members=members(),
    )


OPERATOR = ed25519("operator-1")
PINNED = public(OPERATOR)


def refused(token: str, code: str, key: PublicKey = PINNED, **options: Any) -> MetadataError:
    options = {"now": T0, "last_version": None, **options}
    with pytest.raises(MetadataError) as caught:
        verify_metadata(token, key, **options)
    assert caught.value.code == code, caught.value
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- signing and verifying ---------------------------------------------------------------------


@pytest.mark.parametrize("operator", [ed25519("op-ed"), p256("op-ec")], ids=["Ed25519", "ES256"])
def test_metadata_round_trips_under_the_operator_signature(operator: PublicKey) -> None:
    document = metadata()
    token = sign_metadata(document, operator)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {
        "alg": "Ed25519" if operator.key_type == "OKP" else "ES256",
        "typ": METADATA_TYPE,
        "kid": operator.kid,
    }
    assert verify_metadata(token, public(operator), now=T0, last_version=None) == document
    with pytest.raises(ValueError, match="private"):
        sign_metadata(document, public(operator))


def test_a_tampered_payload_or_signature_is_refused() -> None:
    token = sign_metadata(metadata(), OPERATOR)
    header, payload, signature = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=="))
    document["members"][1]["status"] = "active"  # revive the suspended member
    forged = f"{header}.{b64(json.dumps(document).encode())}.{signature}"
    refused(forged, "signature_invalid")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    refused(f"{header}.{payload}.{flipped}", "signature_invalid")


def test_metadata_signed_by_another_key_or_algorithm_is_refused() -> None:
    refused(sign_metadata(metadata(), ed25519("operator-1")), "signature_invalid")
    # A P-256 signature where an Ed25519 key is pinned: the pinned key fixes the algorithm.
    refused(sign_metadata(metadata(), p256("operator-1")), "signature_invalid")


def test_what_is_not_our_metadata_is_malformed() -> None:
    refused("not a token", "malformed")
    refused("e30.e30.e30", "malformed")
    other_type = jws.serialize_compact(
        {"alg": "Ed25519", "typ": "caf-audit-checkpoint"},
        metadata().model_dump_json().encode(),
        OPERATOR,
        algorithms=["Ed25519"],
    )
    refused(other_type, "malformed")
    document = metadata().model_dump(mode="json")
    document["members"][0]["signing_keys"][0]["d"] = (
        "c2VjcmV0"  # a private key published by mistake
    )
    wrong_shape = jws.serialize_compact(
        {"alg": "Ed25519", "typ": METADATA_TYPE},
        json.dumps(document).encode(),
        OPERATOR,
        algorithms=["Ed25519"],
    )
    error = refused(wrong_shape, "malformed")
    assert "members.0.signing_keys.0.d" in error.message


def test_expired_and_not_yet_valid_metadata_is_refused() -> None:
    token = sign_metadata(metadata(issued_at=T0, validity=timedelta(days=7)), OPERATOR)
    verify_metadata(token, PINNED, now=T0 + timedelta(days=7, seconds=-1), last_version=None)
    refused(token, "expired", now=T0 + timedelta(days=7))
    verify_metadata(token, PINNED, now=T0 - timedelta(seconds=30), last_version=None)  # skew
    refused(token, "not_yet_valid", now=T0 - timedelta(minutes=5))
    with pytest.raises(ValueError, match="timezone"):
        verify_metadata(token, PINNED, now=datetime(2026, 3, 2, 9, 0), last_version=None)  # noqa: DTZ001


def test_an_older_version_is_a_rollback_but_the_same_version_is_fine() -> None:
    token = sign_metadata(metadata(version=4), OPERATOR)
    refused(token, "rollback", last_version=5)
    assert verify_metadata(token, PINNED, now=T0, last_version=4).version == 4
    assert verify_metadata(token, PINNED, now=T0, last_version=3).version == 4


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.sampled_from("AQgw_-.x9"))
def test_no_single_character_change_yields_different_metadata(
    position: int, replacement: str
) -> None:
    original, token = ONCE, SIGNED_ONCE
    index = position % len(token)
    changed = token[:index] + replacement + token[index + 1 :]
    try:
        accepted = verify_metadata(changed, PINNED, now=T0, last_version=None)
    except MetadataError:
        return
    assert accepted == original  # base64 padding bits aside, nothing else may verify


ONCE = metadata()
SIGNED_ONCE = sign_metadata(ONCE, OPERATOR)


# --- the models --------------------------------------------------------------------------------


def test_models_refuse_what_lookups_could_be_fooled_by() -> None:
    good = members()[0].model_dump()
    jwk = MEMBER_KEYS["camden"].as_dict(private=False)
    window = {"not_before": T0, "not_after": T0 + timedelta(days=1)}
    with pytest.raises(ValueError, match="private"):
        SigningKey.from_jwk(MEMBER_KEYS["camden"].as_dict(private=True), **window)
    with pytest.raises(ValidationError, match="do not match"):
        SigningKey.from_jwk({**jwk, "alg": "ES256"}, **window)
    with pytest.raises(ValidationError, match="later than"):
        SigningKey.from_jwk(jwk, not_before=T0, not_after=T0)
    with pytest.raises(ValueError, match="not a valid JWK"):
        SigningKey.from_jwk({**jwk, "x": "AAAA"}, **window)
    with pytest.raises(ValidationError, match="not a valid JWK"):  # checked on parsing too
        SigningKey.model_validate({**jwk, "x": "AAAA", **window})
    bad_members: list[dict[str, Any]] = [
        {**good, "id": "camden"},
        {**good, "endpoint": "http://camden.caf.example"},
        {**good, "endpoint": "https://user:pw@camden.caf.example"},
        {**good, "status": "expelled"},
        {**good, "signing_keys": good["signing_keys"] * 2},
        {**good, "lead_contacts": good["lead_contacts"] * 2},
        {**good, "lead_contacts": [{**CONTACT.model_dump(), "email": "not-an-email"}]},
        {**good, "colour": "blue"},
    ]
    for bad in bad_members:
        with pytest.raises(ValidationError):
            Member.model_validate(bad)
    document = metadata().model_dump()
    for change in (
        {"version": 0},
        {"version": "2"},
        {"issued_at": datetime(2026, 3, 2, 9, 0)},  # noqa: DTZ001 - naive on purpose
        {"expires_at": T0},
        {"members": [good, good]},
    ):
        with pytest.raises(ValidationError):
            FederationMetadata.model_validate({**document, **change})


def test_the_pinned_key_file_must_hold_a_public_key(tmp_path: Path) -> None:
    path = tmp_path / "operator-public.json"
    path.write_text(json.dumps(OPERATOR.as_dict(private=False)), encoding="utf-8")
    assert load_public_key(path).as_dict() == PINNED.as_dict()
    path.write_text(json.dumps(OPERATOR.as_dict(private=True)), encoding="utf-8")
    with pytest.raises(ValueError, match="private"):
        load_public_key(path)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="one JWK"):
        load_public_key(path)


# --- the directory -----------------------------------------------------------------------------


def test_directory_answers_who_is_a_member_and_fails_closed() -> None:
    directory = MemberDirectory(metadata())
    assert directory.version == 1
    assert directory.member(HACKNEY) is not None
    assert directory.member("E09000001") is None
    assert directory.active(CAMDEN).name == "Camden"
    assert [m.id for m in directory.active_members()] == [CAMDEN, ISLINGTON]
    with pytest.raises(MemberUnknown) as unknown:
        directory.active("E09000001")
    assert unknown.value.code == "unknown_member"
    with pytest.raises(MemberSuspended) as suspended:
        directory.active(HACKNEY)
    assert suspended.value.code == "member_suspended"


def test_a_key_is_usable_only_inside_its_window_and_for_an_active_member() -> None:
    directory = MemberDirectory(metadata())
    # The key handed out verifies what the member signed with its private key.
    signed = jws.serialize_compact({"alg": "ES256"}, b"hello", MEMBER_KEYS["islington-old"])
    key = directory.key_for(ISLINGTON, "isl-1", T0)
    assert jws.deserialize_compact(signed, key, algorithms=["ES256"]).payload == b"hello"
    assert not key.is_private
    assert (
        directory.key_for(ISLINGTON, "isl-2", T0).as_dict()
        == public(MEMBER_KEYS["islington-new"]).as_dict()
    )
    for kid, at in (
        ("isl-1", T0 + timedelta(days=2)),  # not_after is exclusive
        ("isl-2", T0 - timedelta(seconds=1)),  # before not_before
        ("isl-9", T0),  # no such key
    ):
        with pytest.raises(KeyNotValid) as caught:
            directory.key_for(ISLINGTON, kid, at)
        assert caught.value.code == "invalid_signature"
    with pytest.raises(MemberSuspended):
        directory.key_for(HACKNEY, "hackney-1", T0)
    with pytest.raises(MemberUnknown):
        directory.key_for("E09000001", "camden-1", T0)


def test_lead_contacts_are_listed_per_member_and_count_only_for_active_members() -> None:
    directory = MemberDirectory(metadata())
    assert directory.lead_contacts(CAMDEN) == [CONTACT]
    assert directory.lead_contacts(ISLINGTON) == []
    assert directory.is_lead_contact(CAMDEN, "camden-lc-1")
    assert not directory.is_lead_contact(ISLINGTON, "camden-lc-1")  # another borough's contact
    assert not directory.is_lead_contact(CAMDEN, "nobody")
    assert [c.id for c in directory.lead_contacts(HACKNEY)] == ["hackney-lc-1"]
    assert not directory.is_lead_contact(HACKNEY, "hackney-lc-1")  # suspended
    assert not directory.is_lead_contact("E09000001", "camden-lc-1")
    with pytest.raises(MemberUnknown):
        directory.lead_contacts("E09000001")


# --- the source --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write(path: Path, token: str) -> None:
    path.write_text(token + "\n", encoding="utf-8")


async def test_file_source_serves_the_last_good_copy_until_it_expires(tmp_path: Path) -> None:
    path, clock = tmp_path / "metadata.jws", Clock(T0)
    source = MetadataSource(path, PINNED, clock=clock)
    with pytest.raises(MetadataUnavailable):
        source.current()
    with pytest.raises(MetadataError) as missing:
        await source.refresh()
    assert missing.value.code == "unavailable"

    write(path, sign_metadata(metadata(version=2, validity=timedelta(days=7)), OPERATOR))
    assert (await source.refresh()).version == 2
    # Bad news on the wire never replaces the good copy.
    write(path, sign_metadata(metadata(version=3), ed25519("intruder")))
    with pytest.raises(MetadataError, match="signature_invalid"):
        await source.refresh()
    write(path, sign_metadata(metadata(version=1), OPERATOR))
    with pytest.raises(MetadataError, match="rollback"):
        await source.refresh()
    write(path, "x" * (2 * 1024 * 1024))
    with pytest.raises(MetadataError, match="larger than allowed"):
        await source.refresh()
    clock.now = T0 + timedelta(days=7, seconds=-1)
    assert source.current().version == 2
    assert source.current().active(CAMDEN).name == "Camden"

    clock.now = T0 + timedelta(days=7)
    with pytest.raises(MetadataExpired) as expired:
        source.current()
    assert expired.value.code == "expired"
    assert isinstance(expired.value, MetadataUnavailable)

    write(path, sign_metadata(metadata(version=3, issued_at=clock.now), OPERATOR))
    assert (await source.refresh()).version == 3
    assert source.current().version == 3
    assert source.last_version == 3


async def test_cached_copy_survives_a_restart_and_keeps_the_rollback_floor(tmp_path: Path) -> None:
    path, cache, clock = tmp_path / "metadata.jws", tmp_path / "cache" / "last.jws", Clock(T0)
    write(path, sign_metadata(metadata(version=5), OPERATOR))
    await MetadataSource(path, PINNED, clock=clock, keeper=FileKeeper(cache)).refresh()
    assert cache.is_file()

    path.unlink()  # the operator is unreachable when the node restarts
    restarted = MetadataSource(path, PINNED, clock=clock, keeper=FileKeeper(cache))
    with pytest.raises(MetadataError, match="unavailable"):
        await restarted.refresh()
    assert restarted.current().version == 5

    clock.now = T0 + timedelta(days=30)  # the cached copy has expired, but its version still counts
    later = MetadataSource(path, PINNED, clock=clock, keeper=FileKeeper(cache))
    write(path, sign_metadata(metadata(version=4, issued_at=clock.now), OPERATOR))
    with pytest.raises(MetadataError, match="rollback"):
        await later.refresh()
    with pytest.raises(MetadataExpired):
        later.current()


def metadata_app(state: dict[str, Any]) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(state.get("delay", 0))
        if state.get("status", 200) != 200:
            raise web.HTTPNotFound()
        return web.Response(text=state["token"], content_type="application/jwt")

    app = web.Application()
    app.router.add_get("/metadata.jws", serve)
    return app


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def test_url_source_polls_a_real_server_within_bounds(aiohttp_server: AiohttpServer) -> None:
    clock = Clock(T0)
    state: dict[str, Any] = {"token": sign_metadata(metadata(version=1), OPERATOR)}
    server = await aiohttp_server(metadata_app(state))
    url = str(server.make_url("/metadata.jws"))
    source = MetadataSource(url, PINNED, clock=clock, timeout=0.5, max_bytes=64 * 1024)

    poller = asyncio.create_task(source.poll_forever(0.05))
    try:
        await wait_for(lambda: source.last_version == 1)
        state["token"] = sign_metadata(metadata(version=2), OPERATOR)
        await wait_for(lambda: source.last_version == 2)
        state["token"] = sign_metadata(metadata(version=1), OPERATOR)  # replayed old copy
        await asyncio.sleep(0.2)
        assert source.current().version == 2
    finally:
        poller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poller

    for change, reason in (
        ({"status": 404}, "answered 404"),
        ({"token": "A" * (65 * 1024)}, "larger than allowed"),
        ({"delay": 2.0}, "TimeoutError"),
    ):
        state.update(change)
        with pytest.raises(MetadataError, match=reason) as caught:
            await source.refresh()
        assert caught.value.code == "unavailable"
        state.pop("status", None)
        state.pop("delay", None)
        state["token"] = sign_metadata(metadata(version=2), OPERATOR)
    assert source.current().version == 2  # every failure left the good copy in place
