"""Envelope encryption of personal data at rest (DESIGN 4; issue 5).

Each value gets its own random 256-bit data key (DEK). The value is encrypted with AES-256-GCM
(NIST SP 800-38D) under the DEK with a random 96-bit nonce; the associated data names the row and
column (see `associated_data`) so a ciphertext copied into another row fails to open. The DEK is
wrapped by the current key-encryption key (KEK) with AES Key Wrap (RFC 3394, NIST SP 800-38F "KW").

Why RFC 3394 for the wrap rather than AES-GCM: the wrapped object is itself a uniformly random key,
which is what KW was designed for; it is deterministic, needs no nonce (so no nonce-reuse risk when
millions of DEKs are wrapped under one KEK), carries its own 64-bit integrity check, and costs 40
bytes. The header (version, key id) is not covered by the payload's GCM tag on purpose: `rewrap`
must change the key id without touching the ciphertext. Tampering with it still fails closed: a
changed key id names an unknown key or a KEK under which the unwrap integrity check fails, and the
version byte IS bound into the payload's associated data.

Serialisation, version 1 (bytes, for a binary column)::

    offset  size  field
    0       1     version (0x01)
    1       1     key id length n (1..64)
    2       n     key id, ASCII
    2+n     40    DEK wrapped under the KEK (RFC 3394)
    42+n    12    GCM nonce
    54+n    >=16  AES-256-GCM ciphertext || 16-byte tag

No plaintext, no DEK in the clear, no key bytes: only the key id is readable, and it is not secret.
"""

from __future__ import annotations

import re
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ._errors import DecryptionError
from ._keys import KEY_BYTES, KeyRing

__all__ = ["SEALED_VERSION", "Sealed", "associated_data", "open_", "rewrap", "seal"]

SEALED_VERSION = 1
_WRAPPED_BYTES = KEY_BYTES + 8  # RFC 3394 adds one 64-bit block
_NONCE_BYTES = 12  # 96 bits: the GCM nonce length that needs no GHASH derivation
_TAG_BYTES = 16
_MAX_KEY_ID = 64
_SEALED_KEY_ID = re.compile(rb"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Sealed:
    """One encrypted value. Store `to_bytes()`; `key_id` may also go in its own column so that
    `cafx keys rotate` can select the rows still wrapped under an old key."""

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes  # GCM ciphertext followed by its 16-byte tag

    def to_bytes(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return b"".join(
            (
                struct.pack("BB", SEALED_VERSION, len(key_id)),
                key_id,
                self.wrapped_key,
                self.nonce,
                self.ciphertext,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Sealed:
        """Parse a stored value; any malformation is a `DecryptionError` (rule `sealed.*`)."""
        view = bytes(data)
        if len(view) < 2:
            raise DecryptionError("sealed.truncated", "sealed value is too short")
        version, id_length = view[0], view[1]
        if version != SEALED_VERSION:
            raise DecryptionError("sealed.version", f"unsupported sealed format version {version}")
        if not 1 <= id_length <= _MAX_KEY_ID:
            raise DecryptionError("sealed.key_id", "sealed value has an invalid key id length")
        header = 2 + id_length
        if len(view) < header + _WRAPPED_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError("sealed.truncated", "sealed value is too short")
        raw_id = view[2:header]
        if _SEALED_KEY_ID.fullmatch(raw_id) is None:
            raise DecryptionError("sealed.key_id", "sealed value has an invalid key id")
        wrapped_end = header + _WRAPPED_BYTES
        nonce_end = wrapped_end + _NONCE_BYTES
        return cls(
            key_id=raw_id.decode("ascii"),
            wrapped_key=view[header:wrapped_end],
            nonce=view[wrapped_end:nonce_end],
            ciphertext=view[nonce_end:],
        )


def associated_data(*parts: str | bytes) -> bytes:
    """Unambiguous associated data from parts, e.g. `associated_data("episode", str(id), "child")`.

    Each part is length-prefixed, so ("ab", "c") and ("a", "bc") differ. Name the table, the row id
    and the column: then a ciphertext moved to another row or another column does not open.
    """
    chunks: list[bytes] = []
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        chunks.append(struct.pack(">I", len(raw)))
        chunks.append(raw)
    return b"".join(chunks)


def _payload_ad(associated: bytes) -> bytes:
    # Binding the version byte means a future format cannot be confused with this one.
    return bytes((SEALED_VERSION,)) + associated


def seal(plaintext: bytes, ring: KeyRing, associated_data: bytes) -> Sealed:
    """Encrypt under a fresh DEK, wrapped by the ring's current KEK."""
    dek = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, bytes(plaintext), _payload_ad(associated_data))
    key_id, kek = ring.sealing_key()
    return Sealed(key_id, aes_key_wrap(kek, dek), nonce, ciphertext)


def _as_sealed(sealed: Sealed | bytes) -> Sealed:
    return sealed if isinstance(sealed, Sealed) else Sealed.from_bytes(sealed)


def _unwrap(sealed: Sealed, ring: KeyRing) -> bytes:
    kek = ring.kek(sealed.key_id)
    if kek is None:
        raise DecryptionError(
            "kek.unknown",
            f"sealed value names key id {sealed.key_id!r}, which is not in the key ring",
        )
    if len(sealed.wrapped_key) != _WRAPPED_BYTES or len(sealed.nonce) != _NONCE_BYTES:
        raise DecryptionError("sealed.shape", "sealed value has fields of the wrong size")
    try:
        return aes_key_unwrap(kek, sealed.wrapped_key)
    except InvalidUnwrap:
        raise DecryptionError(
            "kek.unwrap", "the data key does not unwrap: wrong key or tampered value"
        ) from None


def open_(sealed: Sealed | bytes, ring: KeyRing, associated_data: bytes) -> bytes:
    """Decrypt; raises `DecryptionError` on any tampering, unknown or wrong key, or wrong row."""
    value = _as_sealed(sealed)
    dek = _unwrap(value, ring)
    try:
        return AESGCM(dek).decrypt(value.nonce, value.ciphertext, _payload_ad(associated_data))
    except InvalidTag:
        raise DecryptionError(
            "payload.authentication",
            "ciphertext does not authenticate: tampered, or associated data of another row",
        ) from None


def rewrap(sealed: Sealed | bytes, ring: KeyRing) -> Sealed:
    """Re-wrap the DEK under the ring's current KEK; nonce and ciphertext are kept byte for byte.

    This is what `cafx keys rotate` does for every row. A value already under the current key is
    returned unchanged, so an interrupted rotation can simply be run again.
    """
    value = _as_sealed(sealed)
    key_id, kek = ring.sealing_key()
    if value.key_id == key_id:
        return value
    dek = _unwrap(value, ring)
    return Sealed(key_id, aes_key_wrap(kek, dek), value.nonce, value.ciphertext)
