"""Key material for data at rest (DESIGN 4; issue 5): key-encryption keys and the blind-index key.

A key ring holds several key-encryption keys (KEKs) by key id, one of them current, and one
blind-index key. The KEKs only ever wrap per-value data keys (see `_envelope`), so rotating a KEK
means re-wrapping 40 bytes per row, never re-encrypting data (`cafx keys rotate`).

The blind-index key is separate and does NOT rotate with the KEKs: every blind index stored in the
database is an HMAC under it, so a new index key makes every stored index unfindable until all rows
are re-indexed (decrypt, re-normalise, re-HMAC). That is a planned migration, not a rotation; the
`index_fingerprint` lets a node detect at start that its index key is not the one its database was
indexed with, instead of silently answering `not_found` to every look-up.

Key file and environment variable (`CAFX_KEYS_JSON`, the `keys_json` setting) hold the same JSON::

    {"format": "cafx-keyring/1", "current": "k2",
     "keys": {"k1": "<base64, 32 bytes>", "k2": "<base64, 32 bytes>"},
     "index_key": "<base64, 32 bytes>"}

`format` may be omitted; any other member is refused, so a typo cannot silently drop a key.
Messages name the key id and the rule, never key bytes.

A running node follows its key file (`KeyRing.from_file(path, follow=True)`): `cafx keys rotate`
rewrites the file while the node runs, and the node must open the values re-wrapped under the new
key at once, seal new values under it, and stop using a retired key, without a restart. The file is
looked at (one `stat`) whenever a key is used and read again when it changed. A changed file that
does not load, or that names another blind-index key, is not taken: the node keeps the keys it has
and logs the rule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..files import write_atomically
from ._errors import KeyMaterialError

__all__ = ["KEYRING_FORMAT", "KEY_BYTES", "KeyRing", "generate_keyfile", "write_keyfile"]

KEYRING_FORMAT = "cafx-keyring/1"
KEY_BYTES = 32  # AES-256 KEKs; a 256-bit HMAC-SHA256 key for the blind indexes
DEFAULT_ENV_VAR = "CAFX_KEYS_JSON"
# Key ids travel inside every sealed value (one length byte), so they are short and plain ASCII.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NUMBERED_ID = re.compile(r"k(\d{1,9})")
_FINGERPRINT_LABEL = b"cafx-blind-index-key-fingerprint/1"

log = logging.getLogger("cafx.keys")


def _check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
        raise KeyMaterialError(
            "kek.id",
            "a key id is 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-' starting with a letter or digit",
        )
    return key_id


def _check_length(what: str, rule: str, key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise KeyMaterialError(rule, f"{what} must be {KEY_BYTES} bytes (256 bits), got {len(key)}")
    return key


def _decode(what: str, kind: str, text: object) -> bytes:
    """Base64 (standard or URL-safe alphabet, padded) of a 32-byte key; rules `<kind>.base64|length`."""
    if not isinstance(text, str):
        raise KeyMaterialError(f"{kind}.base64", f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the library error stays out of the traceback, and with it any hint of the input.
        raise KeyMaterialError(f"{kind}.base64", f"{what} is not valid base64") from None
    return _check_length(what, f"{kind}.length", raw)


def _encode(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


class KeyRing:
    """KEKs by id (one current) and the blind-index key. Immutable (except a ring that follows its
    key file, see `from_file`); its repr shows ids only."""

    __slots__ = ("_index_key", "_state")

    def __init__(self, current: str, keys: Mapping[str, bytes], index_key: bytes) -> None:
        checked = {
            _check_key_id(k): _check_length(f"key {k!r}", "kek.length", v) for k, v in keys.items()
        }
        if not checked:
            raise KeyMaterialError("keyring.empty", "a key ring needs at least one key")
        if _check_key_id(current) not in checked:
            raise KeyMaterialError(
                "keyring.current", f"current key id {current!r} is not in the key ring"
            )
        _check_length("index_key", "index_key.length", index_key)
        # One key, one purpose: an HMAC key reused as a KEK would tie the two rotation schedules together.
        if any(hmac.compare_digest(index_key, kek) for kek in checked.values()):
            raise KeyMaterialError(
                "index_key.reused", "index_key must differ from every key-encryption key"
            )
        # One attribute for the current id and the KEKs, so a reload replaces both at once.
        self._state: tuple[str, Mapping[str, bytes]] = (current, MappingProxyType(checked))
        self._index_key = bytes(index_key)

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current!r}, key_ids={self.key_ids!r})"

    def _snapshot(self) -> tuple[str, Mapping[str, bytes]]:
        return self._state

    # -- reading ---------------------------------------------------------------------------------

    @property
    def current(self) -> str:
        """The id of the KEK that wraps new data keys."""
        return self._snapshot()[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._snapshot()[1]))

    @property
    def current_kek(self) -> bytes:
        return self.sealing_key()[1]

    def sealing_key(self) -> tuple[str, bytes]:
        """The current key id and its KEK, from one look at the ring (use this to wrap: a ring that
        follows its file could otherwise change between reading the id and reading the key)."""
        current, keys = self._snapshot()
        return current, keys[current]

    def kek(self, key_id: str) -> bytes | None:
        """The KEK with this id, or None (a sealed value naming a retired key)."""
        return self._snapshot()[1].get(key_id)

    @property
    def index_key(self) -> bytes:
        return self._index_key

    def index_fingerprint(self) -> str:
        """A short, non-secret tag of the blind-index key, to store beside the indexes.

        If a node starts with a fingerprint different from the one its database recorded (table
        `blind_index_key`), every look-up would miss: it refuses to start instead
        (`gateway.episodes.check_index_key`, rule `index_key.mismatch`; re-indexing is a migration).
        """
        return hmac.new(self._index_key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyRing:
        """A fresh ring: one random KEK (current) and a random blind-index key (`cafx keys init`)."""
        return cls(key_id, {key_id: secrets.token_bytes(KEY_BYTES)}, secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        try:
            document: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise KeyMaterialError("keyring.json", "key material is not valid JSON") from None
        if not isinstance(document, dict):
            raise KeyMaterialError("keyring.shape", "key material must be a JSON object")
        unknown = sorted(set(document) - {"format", "current", "keys", "index_key"})
        if unknown:
            raise KeyMaterialError(
                "keyring.unknown_member", f"unknown members: {', '.join(unknown)}"
            )
        if document.get("format", KEYRING_FORMAT) != KEYRING_FORMAT:
            raise KeyMaterialError("keyring.format", f"format must be {KEYRING_FORMAT!r}")
        for member in ("current", "keys", "index_key"):
            if member not in document:
                raise KeyMaterialError("keyring.missing_member", f"missing member: {member}")
        keys = document["keys"]
        if not isinstance(keys, dict):
            raise KeyMaterialError(
                "keyring.shape", "keys must be an object of key id -> base64 key"
            )
        decoded = {
            _check_key_id(key_id): _decode(f"key {key_id!r}", "kek", value)
            for key_id, value in keys.items()
        }
        index_key = _decode("index_key", "index_key", document["index_key"])
        return cls(_check_key_id(document["current"]), decoded, index_key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, follow: bool = False) -> KeyRing:
        """Load a key file (JSON as above). I/O happens here only, never at import.

        With `follow`, the ring keeps following the file (a running node: see the module docstring).
        """
        if follow:
            return _FollowedKeyRing(Path(path))
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise KeyMaterialError(
                "keyring.file", f"cannot read the key file ({exc.strerror})"
            ) from None
        return cls.from_json(text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], name: str = DEFAULT_ENV_VAR) -> KeyRing:
        """Load from an environment variable holding the key-file JSON; `environ` is passed in."""
        text = environ.get(name)
        if not text:
            raise KeyMaterialError("keyring.env", f"environment variable {name} is not set")
        return cls.from_json(text)

    def to_json(self) -> str:
        """The key-file JSON for this ring (secret: write it with `write_keyfile`)."""
        current, keys = self._snapshot()
        document = {
            "format": KEYRING_FORMAT,
            "current": current,
            "keys": {key_id: _encode(keys[key_id]) for key_id in sorted(keys)},
            "index_key": _encode(self._index_key),
        }
        return json.dumps(document, indent=2) + "\n"

    # -- rotation --------------------------------------------------------------------------------

    def with_new_key(self, key_id: str | None = None, *, current: bool = True) -> KeyRing:
        """This ring plus a fresh random KEK, which becomes current (unless `current` is False: a
        key staged on every replica before it is used); older KEKs stay to open old rows.

        Default id: `k<n+1>` after the highest numbered id, so ids never repeat after a retirement.
        """
        now, keys = self._snapshot()
        keys = dict(keys)
        new_id = _check_key_id(key_id if key_id is not None else _next_id(keys))
        if new_id in keys:
            raise KeyMaterialError("kek.id_taken", f"key id {new_id!r} is already in the key ring")
        keys[new_id] = secrets.token_bytes(KEY_BYTES)
        return KeyRing(new_id if current else now, keys, self._index_key)

    def staged(self) -> str | None:
        """The key added after the current one and not yet current (`with_new_key(current=False)`):
        the highest numbered key above the current one, or None."""
        now, keys = self._snapshot()
        later = [k for k in keys if _number(k) > _number(now)]
        return max(later, key=_number) if later else None

    def with_current(self, key_id: str) -> KeyRing:
        """This ring with `key_id`, already in it, as the current key."""
        _, keys = self._snapshot()
        if key_id not in keys:
            raise KeyMaterialError("kek.unknown", f"not in the key ring: {key_id}")
        return KeyRing(key_id, keys, self._index_key)

    def without_keys(self, key_ids: Iterable[str]) -> KeyRing:
        """This ring minus retired KEKs (after every row was re-wrapped); the current one stays."""
        retired = set(key_ids)
        current, known = self._snapshot()
        if current in retired:
            raise KeyMaterialError("keyring.current", "the current key cannot be removed")
        missing = sorted(retired - set(known))
        if missing:
            raise KeyMaterialError("kek.unknown", f"not in the key ring: {', '.join(missing)}")
        keys = {k: v for k, v in known.items() if k not in retired}
        return KeyRing(current, keys, self._index_key)


_FileStamp = tuple[int, int, int, int]  # device, inode, size, mtime in ns


def _file_stamp(path: Path) -> _FileStamp | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


class _FollowedKeyRing(KeyRing):
    """A key ring that takes its key file's keys whenever the file changes (`write_keyfile` replaces
    the file, so a change is a new inode even within one mtime tick)."""

    __slots__ = ("_path", "_stamp")

    def __init__(self, path: Path) -> None:
        stamp = _file_stamp(path)
        ring = KeyRing.from_file(path)
        current, keys = ring._snapshot()
        super().__init__(current, keys, ring.index_key)
        self._path, self._stamp = path, stamp

    def _snapshot(self) -> tuple[str, Mapping[str, bytes]]:
        stamp = _file_stamp(self._path)
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp  # a file that does not load is not read again until it changes
            self._reload()
        return self._state

    def _reload(self) -> None:
        try:
            ring = KeyRing.from_file(self._path)
        except KeyMaterialError as exc:
            log.warning("key file changed but not loaded; keeping the keys in use (%s)", exc.rule)
            return
        if not hmac.compare_digest(ring.index_key, self._index_key):
            # The index key never rotates (see the module docstring): every look-up would miss.
            log.warning(
                "key file changed its index_key; keeping the keys in use (index_key.changed)"
            )
            return
        self._state = ring._snapshot()


def _next_id(keys: Mapping[str, bytes]) -> str:
    return f"k{max(map(_number, keys), default=0) + 1}"


def _number(key_id: str) -> int:
    """`k7` -> 7; an id of another shape (given by hand) -> 0."""
    found = _NUMBERED_ID.fullmatch(key_id)
    return int(found[1]) if found is not None else 0


def generate_keyfile() -> str:
    """JSON text of a brand-new key ring, for `cafx keys init`."""
    return KeyRing.generate().to_json()


def write_keyfile(path: str | os.PathLike[str], ring: KeyRing, *, overwrite: bool = False) -> None:
    """Write a key file readable by its owner only (0600), atomically.

    The new content goes to a temporary file in the same directory, then replaces the old file, so
    a crash mid-rotation leaves either the old or the new ring, never half a file. Without
    `overwrite` an existing file is an error (`cafx keys init` must not destroy keys).
    """
    try:  # mkstemp already creates 0600; said explicitly
        write_atomically(Path(path), ring.to_json(), 0o600, replace=overwrite)
    except FileExistsError:
        raise KeyMaterialError("keyring.file_exists", "the key file already exists") from None
