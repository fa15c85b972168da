"""The node's signing key: an Ed25519 private JWK. It signs access tokens and audit checkpoints
(and, with the federation, CAF-Attestations and HTTP message signatures)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from joserfc.jwk import OKPKey

__all__ = ["generate_signing_key", "load_signing_key", "write_signing_key"]


def generate_signing_key(member_id: str) -> OKPKey:
    kid = f"{member_id}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    return OKPKey.generate_key(
        "Ed25519", parameters={"kid": kid, "use": "sig", "alg": "Ed25519"}, private=True
    )


def write_signing_key(key: OKPKey, path: Path) -> None:
    """Write the private JWK readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)


def load_signing_key(path: Path) -> OKPKey:
    try:
        key = OKPKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load the signing key ({type(exc).__name__})") from None
    if not key.is_private:
        raise ValueError("the signing key file holds a public key only")
    return key
