"""Review finding 4: a member's hostile input (attestation times out of datetime's range, a body nested
past the JSON decoder) is refused with its code and audited like any other refusal, never a 500. The
holder is a real node on loopback, called over mutual TLS with a request signed by a real member."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from sqlalchemy import select
from yarl import URL

from gateway.demo import plan_federation
from gateway.errors import FederationRefused
from gateway.federation.attestation import subject_for_match_keys, verify_attestation
from gateway.federation.transport import client_context, sign_request
from gateway.signing import load_signing_key
from gateway.storage._tables import audit_entries

from ..e2e.nodes import CAMDEN, HACKNEY, Node, running

CHILD = {"given_names": "Ada", "family_name": "Example", "date_of_birth": "2015-01-01"}
NOW = int(dt.datetime.now(dt.UTC).timestamp())


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path)) as nodes:
        yield nodes


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CAMDEN,
        "aud": HACKNEY,
        "sub": "camden-hv-17",
        "name": "A Health Visitor",
        "role": "Health visitor",
        "agency": "Camden health visiting",
        "agency_type": "health",
        "purpose": "early_help",
        "reason": "family moved",
        "subject": subject_for_match_keys(CHILD),
        "approved_by": "lead-1",
        "approved_at": NOW,
        "iat": NOW,
        "exp": NOW + 600,
        "jti": "j-1",
    }
    claims.update(changes)
    return claims


def _attestation(node: Node, claims: dict[str, Any]) -> str:
    assert node.plan.settings.signing_key_file is not None
    key = load_signing_key(node.plan.settings.signing_key_file)
    header = {"alg": "Ed25519", "typ": "caf-attestation+jwt", "kid": str(key.kid)}
    return jwt.encode(header, claims, key, algorithms=["Ed25519"])


async def _send(
    home: Node, holder: Node, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A request signed by `home`'s node key, over its mutual-TLS certificate, to the holder."""
    mine, theirs = home.plan.settings, holder.plan.settings
    assert mine.signing_key_file and mine.tls_cert_file and mine.tls_key_file and mine.ca_file
    key = load_signing_key(mine.signing_key_file)
    parts = sign_request(
        "POST",
        f"{theirs.federation_public_url}/federation/v1/existence-checks",
        body,
        sender=home.plan.borough.gss,
        recipient=holder.plan.borough.gss,
        key=key,
        keyid=str(key.kid),
        now=dt.datetime.now(dt.UTC),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    context = client_context(mine.tls_cert_file, mine.tls_key_file, mine.ca_file)
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(URL(parts.url, encoded=True), data=body, headers=parts.headers) as reply,
    ):
        return reply.status, await reply.json()


async def _refusals(holder: Node) -> list[tuple[str, str, str]]:
    rows = await holder.engine_rows(
        select(audit_entries).where(audit_entries.c.action == "federation.existence_check")
    )
    return [(r.actor, r.outcome, r.reason) for r in rows]


async def test_a_body_nested_past_the_decoder_is_a_bad_request_and_audited(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    nested = b"[" * 100_000 + b"]" * 100_000  # 200 kB, well under the body limit
    status, answer = await _send(camden, hackney, nested)
    assert (status, answer["error"]) == (400, "bad_request"), answer
    assert await _refusals(hackney) == [(f"member:{CAMDEN}", "refused", "bad_request")]
    status, log = await hackney.call("GET", "/audit/verify")
    assert log["ok"] is True


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": 10**12},
        {"exp": 10**12},
        {"approved_at": 10**12},
        {"exp": 10**20},  # OverflowError rather than ValueError
        {"iat": -(10**20)},
        {"override": {"id": "o", "expires_at": 10**13, "justification_sha256": "0" * 64}},
    ],
    ids=["iat", "exp", "approved_at", "exp-overflow", "iat-negative", "override-expires"],
)
async def test_attestation_times_out_of_range_are_refused_and_audited(
    federation: dict[str, Node], changes: dict[str, Any]
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    if "override" in changes:  # a second listed lead contact, so the time is what is judged
        second = camden.plan.borough.lead_contacts()[1]
        changes = {"override": {**changes["override"], "approved_by": second}}
    token = _attestation(camden, _claims(approved_by=camden.lead, **changes))
    body = json.dumps({"match": CHILD}).encode()
    status, answer = await _send(camden, hackney, body, {"CAF-Attestation": token})
    assert (status, answer["error"]) == (403, "attestation_invalid"), answer
    assert await _refusals(hackney) == [(f"member:{CAMDEN}", "refused", "attestation_invalid")]


def test_verify_attestation_refuses_every_out_of_range_time() -> None:
    """The same, at the function the holder calls: each time claim, both exception kinds."""
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k"}, private=True)
    header = {"alg": "Ed25519", "typ": "caf-attestation+jwt", "kid": "k"}
    override = {"id": "o", "approved_by": "lead-2", "justification_sha256": "0" * 64}
    for changes in (
        {"iat": 10**12},
        {"exp": 10**20},
        {"approved_at": -(10**20)},
        {"override": {**override, "expires_at": 10**13}},
        {"override": {**override, "expires_at": 10**20}},
    ):
        token = jwt.encode(header, _claims(**changes), key, algorithms=["Ed25519"])
        with pytest.raises(FederationRefused) as caught:
            verify_attestation(
                token,
                sender=CAMDEN,
                me=HACKNEY,
                key_for=lambda member, kid, at: key,
                is_lead_contact=lambda member, contact: True,
                subject=subject_for_match_keys(CHILD),
                now=dt.datetime.now(dt.UTC),
            )
        assert caught.value.wire_code == "attestation_invalid", changes
