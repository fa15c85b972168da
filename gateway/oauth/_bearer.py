"""Bearer token validation for /api/v1 (RFC 6750, RFC 9068): signature, exp/nbf/iat, iss, aud and
scope are all checked — decoding alone validates nothing."""

from __future__ import annotations

from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ..errors import Forbidden, Unauthorised

__all__ = ["Caller", "validate_access_token"]

LEEWAY = 30  # seconds of clock skew tolerated


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this call needs the scope {scope}")


def validate_access_token(token: str, key: OKPKey, *, issuer: str, audience: str) -> Caller:
    try:
        decoded = jwt.decode(token, key, algorithms=["Ed25519"])
        if decoded.header.get("typ") != "at+jwt":
            raise Unauthorised("not an access token")
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            scope={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Unauthorised(f"invalid access token ({type(exc).__name__})") from None
    scope = decoded.claims["scope"]
    if not isinstance(scope, str):
        raise Unauthorised("invalid access token (scope)")
    return Caller(client_id=str(decoded.claims["sub"]), scopes=frozenset(scope.split()))
