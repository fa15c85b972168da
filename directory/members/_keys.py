"""The operator key a node pins (DESIGN 3.1): read from `operator-public.json`, a public JWK.

Pinning means the node trusts this one key and nothing the metadata or its transport says about keys;
a new operator key reaches nodes as configuration, never through the metadata it would sign.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._models import PublicKey, import_public_jwk

__all__ = ["load_public_key"]


def load_public_key(path: Path) -> PublicKey:
    """The public Ed25519 or P-256 JWK in `path`; a private JWK is refused (it has no place on a
    node, and would mean the operator's secret was copied around)."""
    try:
        jwk = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the operator key ({type(exc).__name__})") from None
    if not isinstance(jwk, dict):
        raise ValueError("the operator key file must hold one JWK object")
    return import_public_jwk(jwk)
