"""The federation metadata document (DESIGN 3.1) as frozen pydantic models.

Everything here arrives from the network (after the operator's signature is checked) or from the
operator's own state file, so every model forbids unknown fields and checks what a later lookup relies
on: one entry per member, per key id and per lead contact; a signing key that is a PUBLIC Ed25519 or
P-256 JWK saying its algorithm (RFC 7517 4.4, the RFC 9864 fully specified names); https endpoints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from schemas import GSS_PATTERN, is_gss_code

__all__ = [
    "ALGORITHMS",
    "FederationMetadata",
    "GssCode",
    "HttpsUrl",
    "LeadContact",
    "Member",
    "MemberStatus",
    "PublicKey",
    "SigningKey",
    "import_public_jwk",
]

# (kty, crv) -> the one JWS algorithm such a key signs with. "EdDSA" is deprecated by RFC 9864.
ALGORITHMS: dict[tuple[str, str], str] = {("OKP", "Ed25519"): "Ed25519", ("EC", "P-256"): "ES256"}

PublicKey = OKPKey | ECKey
MemberStatus = Literal["active", "suspended"]


def _check_gss(value: str) -> str:
    if not is_gss_code(value):
        raise ValueError("a GSS code is a country letter and 8 digits")
    return value


def _check_https(value: str) -> str:
    """An absolute https URL with a host and nothing a client could be confused by."""
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a port out of range or not a number
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme != "https" or not parts.hostname or port == 0:
        raise ValueError("an https URL with a host is required")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL with credentials is refused")
    if parts.query or parts.fragment:
        raise ValueError("a URL with a query or fragment is refused")
    return value


GssCode = Annotated[
    str,
    AfterValidator(_check_gss),
    WithJsonSchema({"type": "string", "pattern": f"^{GSS_PATTERN}$"}),
]
HttpsUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_check_https)]
_Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
_Base64Url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=100)]
_Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
_Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
_Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 ()-]{4,30}$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _duplicates(values: Iterable[str]) -> list[str]:
    return sorted(value for value, count in Counter(values).items() if count > 1)


def import_public_jwk(jwk: dict[str, Any]) -> PublicKey:
    """A joserfc key from a public Ed25519 or P-256 JWK; a private one is refused, so that a key
    file copied by mistake never ends up published or pinned."""
    if "d" in jwk:
        raise ValueError("a public JWK is required, this one holds the private key")
    if (jwk.get("kty"), jwk.get("crv")) not in ALGORITHMS:
        raise ValueError("only Ed25519 (OKP) and P-256 (EC) keys are accepted")
    try:
        key: PublicKey = (OKPKey if jwk["kty"] == "OKP" else ECKey).import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid JWK ({type(exc).__name__})") from None
    return key


class SigningKey(_Model):
    """A member's public signing key: the JWK members (RFC 7517 4, RFC 8037 2 / RFC 7518 6.2) plus
    the window in which signatures by it are accepted (DESIGN 3.2: key outside its window -> refused).
    """

    kty: Literal["OKP", "EC"]
    crv: Literal["Ed25519", "P-256"]
    x: _Base64Url
    y: _Base64Url | None = None
    kid: _Id
    alg: Literal["Ed25519", "ES256"]
    use: Literal["sig"] | None = None
    not_before: AwareDatetime
    not_after: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> SigningKey:
        if ALGORITHMS.get((self.kty, self.crv)) != self.alg:
            raise ValueError(
                "kty, crv and alg do not match (OKP/Ed25519/Ed25519 or EC/P-256/ES256)"
            )
        if (self.kty == "EC") != (self.y is not None):
            raise ValueError("an EC key has y, an OKP key has none")
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        self.public_key()  # the point must really be a key
        return self

    def jwk(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"not_before", "not_after"}, exclude_none=True)

    def public_key(self) -> PublicKey:
        return import_public_jwk(self.jwk())

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any], **window: Any) -> SigningKey:
        """From a public JWK dict and `not_before` / `not_after`; refuses a private JWK."""
        import_public_jwk(jwk)
        fields = {
            name: jwk[name] for name in ("kty", "crv", "x", "y", "kid", "alg", "use") if name in jwk
        }
        return cls.model_validate({**fields, **window})


class LeadContact(_Model):
    """A lead CAF contact: the LARA list of protocol 003 §2 (public WORK contact details only). Their
    `id` is what a CAF-Attestation names in `approved_by` (DESIGN 3.3)."""

    id: _Id
    name: _Text
    role: _Text
    email: _Email
    phone: _Phone


class Member(_Model):
    id: GssCode
    name: _Text
    endpoint: HttpsUrl
    status: MemberStatus
    signing_keys: list[SigningKey] = Field(default_factory=list)
    lead_contacts: list[LeadContact] = Field(default_factory=list)
    services_endpoint: HttpsUrl | None = None

    @model_validator(mode="after")
    def _unique(self) -> Member:
        if duplicated := _duplicates(key.kid for key in self.signing_keys):
            raise ValueError(f"key ids listed twice: {', '.join(duplicated)}")
        if _duplicates(contact.id for contact in self.lead_contacts):
            raise ValueError("a lead contact id is listed twice")
        return self


class FederationMetadata(_Model):
    """The signed document itself (DESIGN 3.1). `version` only ever grows: nodes refuse a lower one."""

    federation: _Text
    version: Annotated[int, Field(ge=1, strict=True)]
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    members: list[Member]

    @model_validator(mode="after")
    def _consistent(self) -> FederationMetadata:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be later than issued_at")
        if duplicated := _duplicates(member.id for member in self.members):
            raise ValueError(f"members listed twice: {', '.join(duplicated)}")
        return self
