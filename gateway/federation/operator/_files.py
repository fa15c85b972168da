"""The operator's directory: where each file lives and how it is written.

    <dir>/operator-key.json        the operator's private signing JWK (0600)
    <dir>/operator-public.json     its public JWK: the key every node pins
    <dir>/ca.crt, ca.key           the federation CA (key 0600)
    <dir>/federation.json          the operator's state: members, keys, contacts, last version
    <dir>/metadata.jws             the signed metadata (the default output of `sign`)
    <dir>/members/<GSS>/           what one node receives: tls.crt, tls.key (0600),
                                   signing-key.json (0600, unless the node brought its own key), ca.crt

Every file is written to a temporary name and renamed into place, so a node reading metadata.jws (or an
interrupted command) never sees half a file; secrets are created 0600 from the start, never chmod-ed
after being readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...files import write_atomically

__all__ = ["Layout", "write_file"]


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def operator_key(self) -> Path:
        return self.root / "operator-key.json"

    @property
    def operator_public(self) -> Path:
        return self.root / "operator-public.json"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def state(self) -> Path:
        return self.root / "federation.json"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.jws"

    def member(self, gss: str) -> Path:
        return self.root / "members" / gss


def write_file(path: Path, data: str | bytes, *, secret: bool = False) -> None:
    """Write `data` atomically; mode 0600 for a secret, 0644 otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, 0o600 if secret else 0o644)
