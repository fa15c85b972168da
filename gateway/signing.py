"""The node's signing key: an Ed25519 private JWK (Ed25519 only, for now: a P-256 key is refused).
It signs access tokens and audit checkpoints (and, with the federation, CAF-Attestations and HTTP
message signatures)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from .files import write_atomically

__all__ = ["generate_signing_key", "load_signing_key", "write_signing_key"]


def generate_signing_key(member_id: str) -> OKPKey:
    kid = f"{member_id}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    return OKPKey.generate_key(
        "Ed25519", parameters={"kid": kid, "use": "sig", "alg": "Ed25519"}, private=True
    )


def write_signing_key(key: OKPKey, path: Path) -> None:
    """Write the private JWK readable by its owner only (0600 whether or not the file was there),
    atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(key.as_dict(private=True)), 0o600)


def load_signing_key(path: Path) -> OKPKey:
    """The private Ed25519 JWK at `path`, or ValueError for anything else: a node signs with Ed25519
    only for now (the operator refuses a member key of another kind), so a P-256 or X25519 key, or
    a file that is no JWK, is refused here with a message rather than a traceback."""
    try:
        jwk = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(jwk, dict) or (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
            raise ValueError("not an Ed25519 (OKP) JWK")
        key = OKPKey.import_key(jwk)
    # KeyError: joserfc's OKP import looks the curve up in a table; JoseError: a bad parameter.
    except (OSError, ValueError, KeyError, TypeError, JoseError) as exc:
        raise ValueError(f"cannot load the signing key ({type(exc).__name__})") from None
    if not key.is_private:
        raise ValueError("the signing key file holds a public key only")
    return key
