"""The federation operator's commands (DESIGN 3.1), each one a function over the operator directory.

The operator holds the only secrets that make the federation: its metadata signing key and the CA key.
It issues each member a TLS certificate and (unless the member brings its own public key) the member's
signing key, records members, keys and lead contacts, and signs metadata whose version always grows.

Key rotation keeps the old key valid for a grace period (default 7 days): nodes pick up new metadata
on their next poll, and requests signed just before the member switched keys still verify. A grace of
zero drops the old key at once (for a compromised key). Nodes sign with Ed25519 only for now, so a
member that brings its own key must bring an Ed25519 one.

A member's TLS certificate lasts a year (never beyond the CA); `reissue_cert` gives it a new key and
certificate, for renewal, a leaked `tls.key` or a new endpoint; the two files are swapped in as a
pair (`_write_certificate`), and a node loads them only when it restarts. There is no revocation list: a
replaced certificate stays valid for TLS until it expires, but without the member's signing key it
can neither sign a request nor a response. `sign` warns 30 days ahead of a certificate's end.

Every input is checked before the first file is written, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, OKPKey
from pydantic import ValidationError
from yarl import URL

from directory.members import (
    FederationMetadata,
    LeadContact,
    Member,
    MemberStatus,
    MetadataError,
    PublicKey,
    SigningKey,
    import_public_jwk,
    read_metadata,
    sign_metadata,
)
from schemas import authority_by_gss, is_gss_code

from ...audit_log import signing_key_history
from ...settings import canonical_origin
from ._files import Layout, write_file
from ._pki import create_ca, issue_member_certificate, key_pem, load_ca
from ._state import FederationState, OperatorError, describe_errors, load_state, save_state

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_KEY_VALIDITY",
    "DEFAULT_METADATA_VALIDITY",
    "EXPIRY_WARNING",
    "MAX_GRACE",
    "MAX_METADATA_VALIDITY",
    "Certificate",
    "MemberFiles",
    "Signed",
    "add_lead_contact",
    "add_member",
    "init",
    "load_operator_key",
    "reinstate",
    "reissue_cert",
    "remove_lead_contact",
    "rotate_key",
    "sign",
    "suspend",
]

DEFAULT_GRACE = timedelta(days=7)
DEFAULT_KEY_VALIDITY = timedelta(days=365)
DEFAULT_METADATA_VALIDITY = timedelta(days=7)
MAX_METADATA_VALIDITY = timedelta(days=366)  # nodes fail closed when it ends: a year at the most
MAX_GRACE = timedelta(days=366)  # longer than any key lives: "keep the old key's own end"
EXPIRY_WARNING = timedelta(days=30)  # `sign` warns when a certificate ends within this
_CN_MAX = 64  # RFC 5280 ub-common-name
_CA_SUFFIX = " federation CA"


@dataclass(frozen=True)
class MemberFiles:
    """What `add_member` / `rotate_key` produced: the member's folder and its current key id."""

    folder: Path
    kid: str
    signing_key: Path | None  # None when the member brought its own public key


@dataclass(frozen=True)
class Certificate:
    """What `reissue_cert` produced: the member's folder, its endpoint, when the certificate ends."""

    folder: Path
    endpoint: str
    endpoint_changed: bool  # moved, or only put in canonical form: either way, sign to publish it
    services_endpoint_changed: bool
    not_after: datetime


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


def _endpoint(endpoint: str) -> tuple[str, str]:
    """The endpoint as nodes will call and sign it (`canonical_origin`), and its host."""
    try:
        canonical = canonical_origin(endpoint)
    except ValueError as exc:
        raise OperatorError(f"the endpoint is refused: {exc}") from None
    return canonical, URL(canonical).raw_host or ""  # canonical_origin refuses a URL without one


def _check_common_name(name: str, what: str, limit: int = _CN_MAX) -> None:
    if len(name) > limit:
        raise OperatorError(
            f"{what} is at most {limit} characters: it is the name in a TLS certificate"
        )


def _load_ca(layout: Layout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        return load_ca(layout.ca_cert.read_bytes(), layout.ca_key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise OperatorError(
            f"cannot load the federation CA (ca.crt, ca.key in {layout.root}: {type(exc).__name__})"
        ) from None


def init(
    directory: Path,
    name: str,
    *,
    algorithm: Literal["Ed25519", "ES256"] = "Ed25519",
    first_version: int = 1,
) -> Layout:
    """Create the operator signing key, its public half for nodes to pin, the CA and the state.

    Refuses when any file of the layout exists. `first_version` is the version the first `sign`
    gives: a federation set up again carries on above the last version its nodes hold."""
    layout = Layout(directory)
    existing = [
        path.name
        for path in (
            layout.operator_key,
            layout.operator_public,
            layout.ca_key,
            layout.ca_cert,
            layout.state,
            layout.metadata,
        )
        if path.exists()
    ]
    members = layout.root / "members"
    if members.is_dir() and any(members.iterdir()):
        existing.append("members/")
    if existing:  # never overwrite a CA or an operator key: they may be the only copies
        raise OperatorError(
            f"{directory} already holds a federation ({', '.join(existing)}): refusing to overwrite"
        )
    name = name.strip()
    if not name:
        raise OperatorError("the federation needs a name")
    _check_common_name(name, "the federation's name", _CN_MAX - len(_CA_SUFFIX))
    if first_version < 1:
        raise OperatorError("the first metadata version is at least 1")
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
    save_state(layout, FederationState(federation=name, version=first_version - 1))
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
    gss: str, public_jwk: Mapping[str, Any] | None, now: datetime, validity: timedelta
) -> tuple[SigningKey, OKPKey | None]:
    """The member's new key as published, and the private key generated for it (None when the
    member brought its own public key): the caller writes it once every check has passed."""
    window = {"not_before": now, "not_after": now + validity}
    if public_jwk is None:
        key = _new_signing_key(gss, now)
        return SigningKey.from_jwk(key.as_dict(private=False), **window), key
    jwk = dict(public_jwk)
    try:
        imported = import_public_jwk(jwk)  # refuses a private key first: it must not travel
        if (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
            # A node loads and signs with an Ed25519 key only (gateway.signing): a P-256 member
            # would be published, then could not start.
            raise ValueError("nodes sign with Ed25519 only for now: bring an Ed25519 (OKP) key")
        if "kid" not in jwk:
            jwk["kid"] = f"{gss}-{imported.thumbprint()[:16]}"
        jwk.setdefault("alg", "Ed25519")
        return SigningKey.from_jwk(jwk, **window), None
    except ValidationError as exc:
        raise OperatorError(f"the member's public key is refused: {describe_errors(exc)}") from None
    except ValueError as exc:
        raise OperatorError(f"the member's public key is refused: {exc}") from None


def _key_history(folder: Path) -> list[dict[str, Any]]:
    """The history of signing keys beside the member's key (`gateway.audit_log`): the node's record
    of keys it signed audit checkpoints with. Read before anything changes: one that is not
    readable stops the command."""
    path = signing_key_history(folder / "signing-key.json")
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))["keys"] if path.exists() else []
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise TypeError("not a JWK Set")
        for key in keys:
            import_public_jwk(key)  # refuses a private key: it must not be carried on
    except (OSError, ValueError, TypeError, KeyError):
        raise OperatorError(f"{path} is not a readable key history; fix or remove it") from None
    return keys


def _write_key_history(
    folder: Path, earlier: list[dict[str, Any]], member: Member, revoked: Collection[str] = ()
) -> None:
    """Add the member's published signing keys (public) to its history. A node keeps the history
    itself where its key directory is writable; one mounted read-only (a container's secret) gets
    its new key from here, or every checkpoint signed before a rotation would stop verifying. A
    key stays in it once there, as the node keeps it, unless `revoked` (named in `--revoke`, or
    dropped at `--grace-days 0`): found compromised, it must verify nothing any more."""
    kept = [k for k in earlier if k.get("kid") not in revoked]
    known = {k.get("kid") for k in kept}
    added = [key.jwk() for key in member.signing_keys if key.kid not in known]
    path = signing_key_history(folder / "signing-key.json")
    write_file(path, _json({"keys": [*kept, *added]}))


def _write_signing_key(folder: Path, key: OKPKey | None) -> Path | None:
    if key is None:
        return None
    path = folder / "signing-key.json"
    write_file(path, _json(key.as_dict(private=True)), secret=True)
    return path


def _write_certificate(
    layout: Layout, folder: Path, certificate: x509.Certificate, tls_key: ec.EllipticCurvePrivateKey
) -> None:
    """Put a new `tls.key` and `tls.crt` in place so that the folder holds the old pair or the new
    one, never a key beside another key's certificate (no node could load that, and the old key
    would be lost). Both new files are written beside the old ones first and the old key is kept
    as `tls.key.previous`; then the two are renamed in back to back, and when the certificate
    cannot be, the old key is put back. A failure is an OperatorError: run the command again."""
    key, crt = folder / "tls.key", folder / "tls.crt"
    new_key, new_crt = folder / "tls.key.new", folder / "tls.crt.new"
    previous = folder / "tls.key.previous"
    # Left by a run that could not put the old key back: it is the key of the certificate in
    # place, and the one to keep (the tls.key beside it may be the failed run's new one).
    had_key = key.exists() or previous.exists()
    keep_previous = previous.exists()
    swapped = False
    try:
        write_file(folder / "ca.crt", layout.ca_cert.read_bytes())  # the same CA for either pair
        write_file(new_key, key_pem(tls_key), secret=True)
        write_file(new_crt, certificate.public_bytes(serialization.Encoding.PEM))
        if had_key and not keep_previous:
            write_file(previous, key.read_bytes(), secret=True)
        swapped = True  # from here on, until tls.crt.new is gone, the old key must go back
        os.replace(new_key, key)
        os.replace(new_crt, crt)
    except BaseException as exc:  # Ctrl-C too: never leave the new key beside the old certificate
        half = swapped and new_crt.exists()
        restored = _restore_key(key, previous if had_key else None) if half else True
        for leftover in (new_key, new_crt, *(() if not restored else (previous,))):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise OperatorError(
            f"cannot write the TLS files in {folder} ({type(exc).__name__}): "
            + (
                "nothing was replaced; run the command again"
                if restored
                else "tls.key and tls.crt may not match (the old key is kept as "
                "tls.key.previous); run the command again"
            )
        ) from None
    with contextlib.suppress(OSError):  # the new pair is in place: the old key is no longer needed
        previous.unlink(missing_ok=True)


def _restore_key(key: Path, previous: Path | None) -> bool:
    """Undo the new key's rename (when it happened: the key is not the old one): the old key back
    from `previous`, or (a new member: there was none) no key at all. False when that fails."""
    try:
        if previous is None:
            key.unlink(missing_ok=True)
        elif key.read_bytes() != previous.read_bytes():
            os.replace(previous, key)
    except OSError:
        return False
    return True


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
    endpoint, host = _endpoint(endpoint)
    try:
        draft = Member(id=gss, name=name, endpoint=endpoint, status="active")
        if services_endpoint is not None:
            draft = Member.model_validate(
                {**draft.model_dump(), "services_endpoint": services_endpoint}
            )
    except ValidationError as exc:
        raise OperatorError(f"the member is refused: {describe_errors(exc)}") from None
    _check_common_name(draft.name, "the member's name")
    folder = layout.member(gss)
    history = _key_history(folder)
    key, private = _signing_key(gss, signing_jwk, moment, key_validity)
    ca_cert, ca_key = _load_ca(layout)
    certificate, tls_key = issue_member_certificate(
        ca_cert, ca_key, gss=gss, name=draft.name, host=host, now=moment
    )
    member = Member.model_validate({**draft.model_dump(), "signing_keys": [key.model_dump()]})
    # Everything is checked: only now is anything written.
    key_path = _write_signing_key(folder, private)
    _write_certificate(layout, folder, certificate, tls_key)
    _write_key_history(folder, history, member)  # public keys only: harmless if the save fails
    save_state(layout, state.with_member(member))
    return MemberFiles(folder, key.kid, key_path)


def reissue_cert(
    directory: Path,
    gss: str,
    *,
    endpoint: str | None = None,
    services_endpoint: str | None = None,
    now: datetime | None = None,
) -> Certificate:
    """A new TLS key and certificate for `gss` (renewal, a leaked key, a new host), into its folder;
    `endpoint` also moves the member there, `services_endpoint` its directory's services (both
    recorded in the state: sign to publish them). A recorded endpoint not yet in canonical form
    (from before endpoints were canonicalised) is recorded canonical, as nodes call it."""
    layout = Layout(directory)
    state = load_state(layout)
    member = state.member(_check_gss(gss.strip().upper()))
    moment = _now(now)
    try:
        canonical, host = _endpoint(endpoint if endpoint is not None else member.endpoint)
    except OperatorError:
        if endpoint is not None:
            raise
        raise OperatorError(
            f"{member.id}'s recorded endpoint cannot name a certificate: give --endpoint"
        ) from None
    changes: dict[str, Any] = {"endpoint": canonical}
    if services_endpoint is not None:
        changes["services_endpoint"] = services_endpoint
    try:
        updated = Member.model_validate({**member.model_dump(), **changes})
    except ValidationError as exc:
        raise OperatorError(f"the change is refused: {describe_errors(exc)}") from None
    _check_common_name(updated.name, "the member's name")
    ca_cert, ca_key = _load_ca(layout)
    certificate, tls_key = issue_member_certificate(
        ca_cert, ca_key, gss=member.id, name=updated.name, host=host, now=moment
    )
    folder = layout.member(member.id)
    _write_certificate(layout, folder, certificate, tls_key)
    if updated != member:
        save_state(layout, state.with_member(updated))
    return Certificate(
        folder,
        updated.endpoint,
        updated.endpoint != member.endpoint,
        updated.services_endpoint != member.services_endpoint,
        certificate.not_valid_after_utc,
    )


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


LEAD_CONTACT_ID_MAX = 64


def add_lead_contact(
    directory: Path, gss: str, id: str, name: str, role: str, email: str, phone: str
) -> LeadContact:
    """List a lead CAF contact for `gss` (protocol 003 §2: WORK contact details only)."""
    member = load_state(Layout(directory)).member(_check_gss(gss.strip().upper()))
    if any(contact.id == id for contact in member.lead_contacts):
        raise OperatorError(f"{member.id} already lists a lead contact with that id")
    if "@" in id or len(id) > LEAD_CONTACT_ID_MAX:
        # Nodes write the id into their audit log (no "@": an e-mail address is personal data)
        # and into columns of that length.
        raise OperatorError(
            f"a lead contact's id is at most {LEAD_CONTACT_ID_MAX} characters, without '@' (use a"
            " staff number or a user name; the console can match the e-mail address instead)"
        )
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
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise OperatorError(f"the grace period is 0 to {MAX_GRACE.days} days")
    layout = Layout(directory)
    member = load_state(layout).member(_check_gss(gss.strip().upper()))
    unknown = set(revoke) - {key.kid for key in member.signing_keys}
    if unknown:
        raise OperatorError(f"{member.id} has no key {', '.join(sorted(unknown))}")
    moment = _now(now)
    history = _key_history(layout.member(member.id))
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
    new, private = _signing_key(member.id, signing_jwk, moment, key_validity)
    path = _write_signing_key(layout.member(member.id), private)
    updated = _update(directory, member.id, signing_keys=[*kept, new.model_dump()])
    # Revoked, or dropped as compromised (grace 0): out of the history too, verifying nothing.
    dropped = {key.kid for key in member.signing_keys} - {key["kid"] for key in kept}
    _write_key_history(layout.member(member.id), history, updated, dropped)
    return MemberFiles(layout.member(member.id), new.kid, path)


def _not_after(path: Path) -> datetime | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):  # not kept here (handed over and removed), or not a certificate
        return None


def _certificate_warnings(layout: Layout, metadata: FederationMetadata) -> list[str]:
    """Certificates that end within EXPIRY_WARNING: the CA's, and each active member's as kept in
    its folder. Past their end every TLS handshake with that member (or with all) fails."""
    horizon = metadata.issued_at + EXPIRY_WARNING
    found = []
    ca_ends = _not_after(layout.ca_cert)
    if ca_ends is not None and ca_ends <= horizon:
        found.append(
            f"the federation CA certificate expires {ca_ends:%Y-%m-%d %H:%M}Z: every member "
            "certificate ends with it"
        )
    for member in metadata.members:
        ends = _not_after(layout.member(member.id) / "tls.crt")
        if member.status == "active" and ends is not None and ends <= horizon:
            found.append(
                f"{member.id}: TLS certificate expires {ends:%Y-%m-%d %H:%M}Z "
                f"(renew it with reissue-cert {member.id})"
            )
    return found


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
    if not timedelta(0) < validity <= MAX_METADATA_VALIDITY:
        raise OperatorError(
            f"the metadata validity is more than 0 and at most {MAX_METADATA_VALIDITY.days} days"
        )
    layout = Layout(directory)
    state = load_state(layout)
    key = load_operator_key(directory)
    moment = _now(now)
    target = out if out is not None else layout.metadata
    last, notes = _last_version(state, key, {layout.metadata, target})
    metadata = FederationMetadata(
        federation=state.federation,
        version=last + 1,
        issued_at=moment,
        expires_at=moment + validity,
        members=state.members,
    )
    token = sign_metadata(metadata, key)
    save_state(layout, state.model_copy(update={"version": metadata.version}))
    write_file(target, token + "\n")
    warnings = [*notes, *_warnings(metadata), *_certificate_warnings(layout, metadata)]
    return Signed(target, metadata, warnings)


def _last_version(
    state: FederationState, key: PublicKey, published: Collection[Path]
) -> tuple[int, list[str]]:
    """The highest version signed so far: the state's, or a published copy's (verified with our
    own key, expired or not) when that is higher, as after restoring `federation.json` from a
    backup. Signing below what nodes hold would be refused by all of them as a rollback."""
    public = type(key).import_key(key.as_dict(private=False))
    last, notes = state.version, []
    for path in sorted(published):
        try:
            version = read_metadata(
                path.read_text(encoding="utf-8"), public, last_version=None
            ).version
        except (OSError, UnicodeError, MetadataError):
            continue  # none yet, or not ours: the state's version stands
        if version > last:
            notes.append(
                f"{path.name} holds version {version}, above the state's {state.version}: "
                "carrying on from there"
            )
            last = version
    return last, notes
