"""CAF-Attestation (DESIGN 3.3): issued by the home node, every claim checked by the holder."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from gateway.errors import FederationRefused
from gateway.federation.attestation import (
    OverrideGrant,
    issue_attestation,
    subject_for_episode,
    subject_for_match_keys,
    verify_attestation,
)

HOME, TARGET = "E09000007", "E09000012"
KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "camden-1"}, private=True)
OTHER = OKPKey.generate_key("Ed25519", parameters={"kid": "camden-1"}, private=True)
LEADS = {(HOME, "lc-1"), (HOME, "lc-2"), (HOME, "p-77")}  # p-77 asks, and is a lead contact too
PRACTITIONER = {
    "id": "p-77",
    "name": "A Practitioner",
    "role": "School nurse",
    "agency": "Camden school nursing",
    "agency_type": "health",
}
CHILD = {"given_names": "Zoë-Mae", "family_name": "Ó Briain", "date_of_birth": "2017-02-22"}


def key_for(member: str, kid: str, at: dt.datetime) -> OKPKey:
    if member != HOME or kid != "camden-1":
        raise FederationRefused("unknown key", code="unknown_member")
    return KEY


def _issue(**changes: Any) -> str:
    values: dict[str, Any] = {
        "issuer": HOME,
        "audience": TARGET,
        "practitioner": PRACTITIONER,
        "purpose": "early_help",
        "reason": "new school place",
        "subject": subject_for_match_keys(CHILD),
        "approved_by": "lc-1",
    }
    values.update(changes)
    key = values.pop("key", KEY)
    return issue_attestation(key, **values)


def _verify(token: str, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "sender": HOME,
        "me": TARGET,
        "key_for": key_for,
        "is_lead_contact": lambda member, contact: (member, contact) in LEADS,
        "subject": subject_for_match_keys(CHILD),
    }
    values.update(changes)
    return verify_attestation(token, **values)


def test_a_good_attestation_verifies() -> None:
    attestation = _verify(_issue())
    assert attestation.issuer == HOME and attestation.approved_by == "lc-1"
    assert attestation.agency_type.value == "health"
    # Match keys hash the same however the names are typed.
    assert subject_for_match_keys({**CHILD, "family_name": "ó  briain"}) == attestation.subject


@pytest.mark.parametrize(
    ("token_changes", "verify_changes", "code"),
    [
        ({"key": OTHER}, {}, "attestation_invalid"),  # forged: another key with the same kid
        ({"approved_by": "someone"}, {}, "not_lead_contact"),
        ({"audience": "E09000019"}, {}, "attestation_invalid"),
        ({}, {"sender": "E09000019"}, "attestation_invalid"),  # issued by another than the sender
        ({}, {"subject": subject_for_episode("x")}, "attestation_invalid"),  # about another child
        ({"now": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)}, {}, "attestation_invalid"),
        (
            {
                "override": OverrideGrant(
                    "ov-1", "lc-1", dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "0" * 64
                )
            },
            {},
            "self_approval",  # the second approver must be another person
        ),
        (
            {
                "override": OverrideGrant(
                    "ov-1", "p-77", dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "0" * 64
                )
            },
            {},
            "self_approval",  # nor the requester, even a requester who is a lead contact
        ),
        ({"approved_by": "p-77"}, {}, "self_approval"),
        ({"practitioner": {**PRACTITIONER, "id": "LC-1"}}, {}, "self_approval"),  # lc-1 approved
        (
            {
                "override": OverrideGrant(
                    "ov-1", "lc-2", dt.datetime.now(dt.UTC) + dt.timedelta(days=31), "0" * 64
                )
            },
            {},
            "attestation_invalid",  # an override lasts at most 30 days
        ),
    ],
    ids=[
        "forged",
        "not-lead-contact",
        "wrong-audience",
        "wrong-sender",
        "other-child",
        "expired",
        "self-override",
        "requester-overrides",
        "requester-approves",
        "requester-approves-in-capitals",
        "override-too-long",
    ],
)
def test_refusals(token_changes: dict[str, Any], verify_changes: dict[str, Any], code: str) -> None:
    with pytest.raises(FederationRefused) as caught:
        _verify(_issue(**token_changes), **verify_changes)
    assert caught.value.wire_code == code


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000 + b"]" * 100_000, b'["a list"]', b"not json"],
    ids=["nested-past-the-parser", "not-an-object", "not-json"],
)
def test_a_token_whose_payload_is_no_claims_is_not_a_jwt(payload: bytes) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"Ed25519","kid":"camden-1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(payload).rstrip(b"=")
    with pytest.raises(FederationRefused, match="not a JWT"):
        _verify(f"{header.decode()}.{body.decode()}.c2ln")


def test_longer_than_24_hours_is_refused_even_when_signed() -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = jwt.decode(_issue(), KEY, algorithms=["Ed25519"]).claims
    claims.update(iat=now, exp=now + 25 * 3600)
    token = jwt.encode(
        {"alg": "Ed25519", "typ": "caf-attestation+jwt", "kid": "camden-1"},
        claims,
        KEY,
        algorithms=["Ed25519"],
    )
    with pytest.raises(FederationRefused):
        _verify(token)
    with pytest.raises(ValueError):
        _issue(lifetime=dt.timedelta(hours=25))


def test_override_with_a_second_lead_contact() -> None:
    grant = OverrideGrant("ov-1", "lc-2", dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "a" * 64)
    attestation = _verify(_issue(override=grant))
    assert attestation.override is not None and attestation.override.approved_by == "lc-2"
    assert attestation.key_id == "camden-1"  # kept, so a held approval can check it again


@pytest.mark.parametrize(
    ("practitioner_id", "override_id", "digest"),
    [
        ("p" * 101, "ov-1", "a" * 64),  # longer than the register keeps
        ("p 77", "ov-1", "a" * 64),  # not an id
        ("p-77", "override, with a comma", "a" * 64),  # the basis of a disclosure
        ("p-77", "o" * 101, "a" * 64),
        ("p-77", "ov-1", "not a digest"),
    ],
)
def test_ids_kept_in_the_register_must_be_ids(
    practitioner_id: str, override_id: str, digest: str
) -> None:
    """Another release's overlong or free-text ids would fail the register's insert on PostgreSQL
    after consent permitted (an unaudited 500), or be taken into a disclosure's basis."""
    grant = OverrideGrant(
        override_id, "lc-2", dt.datetime.now(dt.UTC) + dt.timedelta(days=1), digest
    )
    token = _issue(practitioner={**PRACTITIONER, "id": practitioner_id}, override=grant)
    with pytest.raises(FederationRefused) as refused:
        _verify(token)
    assert refused.value.wire_code == "attestation_invalid"
