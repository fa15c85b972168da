"""The federation operator's commands (DESIGN 3.1), each one a function over the operator directory.

The operator holds the only secrets that make the federation: its metadata signing key and the CA key.
It issues each member a TLS certificate and (unless the member brings its own public key) the member's
signing key, records members, keys and lead contacts, and signs metadata whose version always grows.

Key rotation keeps the old key valid for a grace period (default 7 days): nodes pick up new metadata
on their next poll, and requests signed just before the member switched keys still verify. A grace of
zero drops the old key at once (for a compromised key).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, OKPKey
from pydantic import ValidationError

from directory.members import (
    FederationMetadata,
    LeadContact,
    Member,
    MemberStatus,
    PublicKey,
    SigningKey,
    import_public_jwk,
    sign_metadata,
)
from schemas import authority_by_gss, is_gss_code

from ._files import Layout, write_file
from ._pki import create_ca, issue_member_certificate, key_pem, load_ca
from ._state import FederationState, OperatorError, describe_errors, load_state, save_state

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_KEY_VALIDITY",
    "DEFAULT_METADATA_VALIDITY",
    "MemberFiles",
    "Signed",
    "add_lead_contact",
    "add_member",
    "init",
    "load_operator_key",
    "reinstate",
    "remove_lead_contact",
    "rotate_key",
    "sign",
    "suspend",
]

DEFAULT_GRACE = timedelta(days=7)
DEFAULT_KEY_VALIDITY = timedelta(days=365)
DEFAULT_METADATA_VALIDITY = timedelta(days=7)


@dataclass(frozen=True)
class MemberFiles:
    """What `add_member` / `rotate_key` produced: the member's folder and its current key id."""

    folder: Path
    kid: str
    signing_key: Path | None  # None when the member brought its own public key


@dataclass(frozen=True)
class Signed:
    path: Path
    metadata: FederationMetadata
    warnings: list[str]


def _now(now: datetime | None) -> datetime:
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _check_gss(gss: str) -> str:
    if not is_gss_code(gss):
        raise OperatorError(f"{gss!r} is not a GSS code (a country letter and 8 digits)")
    return gss


def init(
    directory: Path, name: str, *, algorithm: Literal["Ed25519", "ES256"] = "Ed25519"
) -> Layout:
    """Create the operator signing key, its public half for nodes to pin, the CA and the state."""
    layout = Layout(directory)
    if layout.operator_key.exists() or layout.state.exists():
        raise OperatorError(f"{directory} already holds a federation")
    name = name.strip()
    if not name:
        raise OperatorError("the federation needs a name")
    now = _now(None)
    kid = f"operator-{now:%Y%m%d%H%M%S}"
    key: PublicKey = (
        OKPKey.generate_key(
            "Ed25519", parameters={"kid": kid, "use": "sig", "alg": algorithm}, private=True
        )
        if algorithm == "Ed25519"
        else ECKey.generate_key(
            "P-256", parameters={"kid": kid, "use": "sig", "alg": algorithm}, private=True
        )
    )
    ca_cert, ca_key = create_ca(name, now)
    write_file(layout.operator_key, _json(key.as_dict(private=True)), secret=True)
    write_file(layout.operator_public, _json(key.as_dict(private=False)))
    write_file(layout.ca_key, key_pem(ca_key), secret=True)
    write_file(layout.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    save_state(layout, FederationState(federation=name))
    return layout


def load_operator_key(directory: Path) -> PublicKey:
    """The operator's private signing key."""
    path = Layout(directory).operator_key
    try:
        jwk = json.loads(path.read_text(encoding="utf-8"))
        key: PublicKey = (OKPKey if jwk.get("kty") == "OKP" else ECKey).import_key(jwk)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise OperatorError(f"cannot load the operator key ({type(exc).__name__})") from None
    if not key.is_private:
        raise OperatorError("the operator key file holds no private key")
    return key


def _new_signing_key(gss: str, now: datetime) -> OKPKey:
    # The random suffix keeps kids unique when keys are rotated twice in one second.
    kid = f"{gss}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    return OKPKey.generate_key(
        "Ed25519", parameters={"kid": kid, "use": "sig", "alg": "Ed25519"}, private=True
    )


def _signing_key(
    folder: Path, gss: str, public_jwk: Mapping[str, Any] | None, now: datetime, validity: timedelta
) -> tuple[SigningKey, Path | None]:
    """The member's new key as published; a generated private key is written to its folder."""
    window = {"not_before": now, "not_after": now + validity}
    if public_jwk is None:
        key = _new_signing_key(gss, now)
        path = folder / "signing-key.json"
        write_file(path, _json(key.as_dict(private=True)), secret=True)
        return SigningKey.from_jwk(key.as_dict(private=False), **window), path
    jwk = dict(public_jwk)
    try:
        if "kid" not in jwk:
            jwk["kid"] = f"{gss}-{import_public_jwk(jwk).thumbprint()[:16]}"
        jwk.setdefault("alg", "Ed25519" if jwk.get("kty") == "OKP" else "ES256")
        return SigningKey.from_jwk(jwk, **window), None
    except ValidationError as exc:
        raise OperatorError(f"the member's public key is refused: {describe_errors(exc)}") from None
    except ValueError as exc:
        raise OperatorError(f"the member's public key is refused: {exc}") from None


def add_member(
    directory: Path,
    gss: str,
    endpoint: str,
    name: str | None = None,
    *,
    signing_jwk: Mapping[str, Any] | None = None,
    services_endpoint: str | None = None,
    key_validity: timedelta = DEFAULT_KEY_VALIDITY,
    now: datetime | None = None,
) -> MemberFiles:
    """Record a member and issue its files: TLS certificate and key, signing key, the CA certificate.

    `name` defaults to the authority's name for a London GSS code. `signing_jwk` is the member's
    PUBLIC key when it keeps its private key itself (then no signing-key.json is written)."""
    layout = Layout(directory)
    state = load_state(layout)
    gss = _check_gss(gss.strip().upper())
    if any(member.id == gss for member in state.members):
        raise OperatorError(f"{gss} is already a member")
    authority = authority_by_gss(gss)
    name = name or (authority.name if authority is not None else gss)
    moment = _now(now)
    try:
        draft = Member(id=gss, name=name, endpoint=endpoint, status="active")
        if services_endpoint is not None:
            draft = Member.model_validate(
                {**draft.model_dump(), "services_endpoint": services_endpoint}
            )
    except ValidationError as exc:
        raise OperatorError(f"the member is refused: {describe_errors(exc)}") from None
    folder = layout.member(gss)
    key, key_path = _signing_key(folder, gss, signing_jwk, moment, key_validity)
    ca_cert, ca_key = load_ca(layout.ca_cert.read_bytes(), layout.ca_key.read_bytes())
    certificate, tls_key = issue_member_certificate(
        ca_cert, ca_key, gss=gss, name=draft.name, host=urlsplit(endpoint).hostname, now=moment
    )
    write_file(folder / "tls.key", key_pem(tls_key), secret=True)
    write_file(folder / "tls.crt", certificate.public_bytes(serialization.Encoding.PEM))
    write_file(folder / "ca.crt", layout.ca_cert.read_bytes())
    member = Member.model_validate({**draft.model_dump(), "signing_keys": [key.model_dump()]})
    save_state(layout, state.with_member(member))
    return MemberFiles(folder, key.kid, key_path)


def _update(directory: Path, gss: str, **changes: Any) -> Member:
    layout = Layout(directory)
    state = load_state(layout)
    member = state.member(_check_gss(gss.strip().upper()))
    try:
        updated = Member.model_validate({**member.model_dump(), **changes})
    except ValidationError as exc:
        raise OperatorError(f"the change is refused: {describe_errors(exc)}") from None
    save_state(layout, state.with_member(updated))
    return updated


def add_lead_contact(
    directory: Path, gss: str, id: str, name: str, role: str, email: str, phone: str
) -> LeadContact:
    """List a lead CAF contact for `gss` (protocol 003 §2: WORK contact details only)."""
    member = load_state(Layout(directory)).member(_check_gss(gss.strip().upper()))
    if any(contact.id == id for contact in member.lead_contacts):
        raise OperatorError(f"{member.id} already lists a lead contact with that id")
    try:
        contact = LeadContact(id=id, name=name, role=role, email=email, phone=phone)
    except ValidationError as exc:
        raise OperatorError(f"the lead contact is refused: {describe_errors(exc)}") from None
    _update(directory, member.id, lead_contacts=[*member.lead_contacts, contact])
    return contact


def remove_lead_contact(directory: Path, gss: str, id: str) -> None:
    member = load_state(Layout(directory)).member(_check_gss(gss.strip().upper()))
    remaining = [contact for contact in member.lead_contacts if contact.id != id]
    if len(remaining) == len(member.lead_contacts):
        raise OperatorError(f"{member.id} lists no lead contact with that id")
    _update(directory, member.id, lead_contacts=remaining)


def _set_status(directory: Path, gss: str, status: MemberStatus) -> Member:
    return _update(directory, gss, status=status)


def suspend(directory: Path, gss: str) -> Member:
    """Suspend a member (idempotent): once nodes have the next metadata, they refuse its traffic."""
    return _set_status(directory, gss, "suspended")


def reinstate(directory: Path, gss: str) -> Member:
    return _set_status(directory, gss, "active")


def rotate_key(
    directory: Path,
    gss: str,
    *,
    grace: timedelta = DEFAULT_GRACE,
    signing_jwk: Mapping[str, Any] | None = None,
    key_validity: timedelta = DEFAULT_KEY_VALIDITY,
    revoke: Collection[str] = (),
    now: datetime | None = None,
) -> MemberFiles:
    """A new signing key for `gss`. Keys still in use stay valid until now + `grace` (never longer
    than they already were); one whose window would thereby be empty (grace 0: the current key is
    compromised) is dropped. A key whose window ended on its own stays listed, for what it signed
    while valid (custody steps, receipts: checked at the moment they were signed), until it is
    named in `revoke`, which drops those keys whatever their window."""
    if grace < timedelta(0):
        raise OperatorError("the grace period cannot be negative")
    layout = Layout(directory)
    member = load_state(layout).member(_check_gss(gss.strip().upper()))
    unknown = set(revoke) - {key.kid for key in member.signing_keys}
    if unknown:
        raise OperatorError(f"{member.id} has no key {', '.join(sorted(unknown))}")
    moment = _now(now)
    kept: list[dict[str, Any]] = []
    for key in member.signing_keys:
        if key.kid in revoke:
            continue
        if key.not_after <= moment:
            kept.append(key.model_dump())
            continue
        not_after = min(key.not_after, moment + grace)
        if not_after > max(key.not_before, moment):
            kept.append({**key.model_dump(), "not_after": not_after})
    new, path = _signing_key(layout.member(member.id), member.id, signing_jwk, moment, key_validity)
    _update(directory, member.id, signing_keys=[*kept, new.model_dump()])
    return MemberFiles(layout.member(member.id), new.kid, path)


def _warnings(metadata: FederationMetadata) -> list[str]:
    """What will stop working before this metadata expires (member ids and key ids only)."""
    found = []
    for member in metadata.members:
        if member.status != "active":
            continue
        if not any(key.not_after >= metadata.expires_at for key in member.signing_keys):
            found.append(f"{member.id}: no signing key stays valid until the metadata expires")
        if not member.lead_contacts:
            found.append(f"{member.id}: no lead contact, so nobody can approve its attestations")
    return found


def sign(
    directory: Path,
    out: Path | None = None,
    *,
    validity: timedelta = DEFAULT_METADATA_VALIDITY,
    now: datetime | None = None,
) -> Signed:
    """Sign the members as metadata version = last + 1, valid from now for `validity`.

    The new version is saved before the file is written: a failure in between wastes a number but
    never signs two different documents with the same one."""
    if validity <= timedelta(0):
        raise OperatorError("the metadata validity must be positive")
    layout = Layout(directory)
    state = load_state(layout)
    key = load_operator_key(directory)
    moment = _now(now)
    metadata = FederationMetadata(
        federation=state.federation,
        version=state.version + 1,
        issued_at=moment,
        expires_at=moment + validity,
        members=state.members,
    )
    token = sign_metadata(metadata, key)
    save_state(layout, state.model_copy(update={"version": metadata.version}))
    target = out if out is not None else layout.metadata
    write_file(target, token + "\n")
    return Signed(target, metadata, _warnings(metadata))
