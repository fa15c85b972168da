"""Where a node gets its metadata from, and how it keeps it (DESIGN 3.1).

The node polls the operator's signed metadata (a file, or an https URL), accepts a copy only if
`verify_metadata` does, and otherwise keeps serving on the last good copy. The signature makes a copy
trustworthy, but only the transport makes it fresh: over plain http, or through a redirect to any
host, someone on the path could hold back a newer copy (a suspension, a key revoked) until the
current one expires. So a URL is https (plain http only on a loopback address, where no one is on
the path: tests, a demo on one machine) and a redirect is not followed.

Once the last good copy's `expires_at` has passed, `current()` raises `MetadataExpired`: federation
traffic fails closed rather than trusting a member list that may have suspended someone or retired a
key since.

Reads are bounded (size and time), so a misbehaving metadata server cannot exhaust the node. A
`keeper` keeps the last good token beyond the process (`FileKeeper` on disk; the gateway keeps it in
its database): a restarted node then serves on it while the operator is unreachable, and its version
remains the rollback floor even after it expired. Every refresh reads the kept copy first, so
replicas sharing a keeper share the floor: one that lags behind takes a newer copy another replica
accepted, and refuses anything older. Without one the floor lives in memory only, and a restart
would accept any unexpired older copy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from ._directory import MemberDirectory
from ._models import PublicKey
from ._signed import (
    DEFAULT_LEEWAY,
    MetadataError,
    MetadataErrorCode,
    read_metadata,
    verify_metadata,
)

__all__ = [
    "FileKeeper",
    "MetadataExpired",
    "MetadataKeeper",
    "MetadataSource",
    "MetadataUnavailable",
    "is_loopback",
    "metadata_location",
]

log = logging.getLogger("cafx.directory.metadata")

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 10.0


class MetadataUnavailable(MetadataError):
    """No metadata may be used right now: none was ever accepted (code `unavailable`)."""

    def __init__(
        self,
        message: str = "no federation metadata has been accepted yet",
        *,
        code: MetadataErrorCode = "unavailable",
    ) -> None:
        super().__init__(code, message)


class MetadataExpired(MetadataUnavailable):
    """The last good copy has expired (code `expired`): fail closed until a fresh one is accepted."""

    def __init__(self, version: int) -> None:
        super().__init__(f"the last good metadata (version {version}) has expired", code="expired")
        self.version = version


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def is_loopback(host: str | None) -> bool:
    """`localhost` or a loopback IP address (v4 or v6, without brackets)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metadata_location(location: str | Path) -> str | Path:
    """Where the metadata is read: an https URL (plain http on a loopback address only), else a
    file. `ValueError` for an http URL elsewhere, or a URL without a usable host."""
    text = str(location)
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme not in ("http", "https"):
        return Path(location)
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port  # port: ValueError when out of range or not a number
    except ValueError:
        raise ValueError("the metadata URL cannot be read") from None
    if not host:
        raise ValueError("the metadata URL has no host")
    if scheme == "http" and not is_loopback(host):
        raise ValueError("the metadata URL must be https (plain http on a loopback address only)")
    return text


class MetadataKeeper(Protocol):
    """Somewhere the last accepted token outlives the process."""

    async def load(self) -> str | None: ...

    async def keep(self, token: str, version: int) -> None: ...


class FileKeeper:
    """The last accepted token in a file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> str | None:
        if not self.path.is_file():
            return None
        return await asyncio.to_thread(self.path.read_text, encoding="utf-8")

    async def keep(self, token: str, version: int) -> None:
        await asyncio.to_thread(_write_atomically, self.path, token)


class MetadataSource:
    """The node's metadata: fetched from `location`, verified with the pinned operator key."""

    def __init__(
        self,
        location: str | Path,
        operator_public_key: PublicKey,
        *,
        keeper: MetadataKeeper | None = None,
        session: aiohttp.ClientSession | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _utcnow,
        leeway: timedelta = DEFAULT_LEEWAY,
    ) -> None:
        if operator_public_key.is_private:
            raise ValueError("pin the operator's PUBLIC key")
        self._location = metadata_location(location)
        self._key = operator_public_key
        self._keeper = keeper
        self._session = session
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._clock = clock
        self._leeway = leeway
        self._current: MemberDirectory | None = None
        self._floor: int | None = None  # highest version ever accepted, expired or not
        self._kept_token: str | None = None  # the copy the keeper holds, as last read or written

    @property
    def last_version(self) -> int | None:
        return self._floor

    def current(self) -> MemberDirectory:
        """The last good copy; `MetadataUnavailable` / `MetadataExpired` when there is none to use."""
        if self._current is None:
            raise MetadataUnavailable()
        if self._clock() >= self._current.expires_at:
            raise MetadataExpired(self._current.version)
        return self._current

    async def refresh(self) -> MemberDirectory:
        """Fetch and verify; on success the new copy becomes current (and is cached). On failure
        `MetadataError` says why and the last good copy stays as it was."""
        # Every time, not only at start: another replica may have accepted a newer copy, and its
        # version is then this replica's floor too. A keeper that cannot be read fails the refresh.
        await self._load_kept()
        token = await self._fetch()
        try:
            metadata = verify_metadata(
                token, self._key, now=self._clock(), last_version=self._floor, leeway=self._leeway
            )
        except MetadataError as exc:
            log.warning("federation metadata refused: %s", exc.code)
            raise
        directory = MemberDirectory(metadata)
        if self._current is None or metadata.version != self._current.version:
            log.info("federation metadata version %d accepted", metadata.version)
        self._current, self._floor = directory, metadata.version
        if self._keeper is not None and token != self._kept_token:
            try:  # once per copy: polling the same copy writes nothing
                await self._keeper.keep(token, metadata.version)
                self._kept_token = token
            except Exception as exc:  # the copy in memory still serves; the log says why not kept
                log.warning("cannot keep the accepted metadata (%s)", type(exc).__name__)
        return directory

    async def poll_forever(self, interval: float) -> None:
        """Refresh now and then every `interval` seconds until cancelled; a failed refresh is logged
        and the last good copy kept (run it as a background task from a cleanup_ctx)."""
        while True:
            try:
                await self.refresh()
            except MetadataError:
                pass  # logged by refresh or _fetch; the last good copy stays until it expires
            except Exception:
                log.exception("federation metadata refresh failed")
            await asyncio.sleep(interval)

    async def _load_kept(self) -> None:
        """Take the kept copy as the last good one; if it has expired, `current()` says so, and its
        version still refuses anything older."""
        if self._keeper is None:
            return
        try:
            token = await self._keeper.load()
        except Exception as exc:
            log.warning("cannot read the kept metadata (%s)", type(exc).__name__)
            raise MetadataError(
                "unavailable", f"cannot read the kept metadata ({type(exc).__name__})"
            ) from None
        if token is None or token == self._kept_token:
            return  # nothing new: the usual poll reads one row and verifies nothing
        try:
            metadata = read_metadata(token, self._key, last_version=None)
        except MetadataError as exc:  # e.g. signed with an operator key no longer pinned
            log.warning("the kept federation metadata is refused: %s", exc.code)
            return
        self._kept_token = token
        if self._floor is not None and metadata.version <= self._floor:
            return
        self._floor = metadata.version
        if metadata.issued_at <= self._clock() + self._leeway:
            self._current = MemberDirectory(metadata)

    async def _fetch(self) -> str:
        try:
            if isinstance(self._location, Path):
                raw = await asyncio.to_thread(self._read_file, self._location)
            else:
                raw = await self._download(self._location)
        except MetadataError as exc:
            log.warning("federation metadata unavailable: %s", exc.message)
            raise
        try:
            return raw.decode("ascii")  # a compact JWS is base64url and dots only
        except UnicodeDecodeError:
            raise MetadataError("malformed", "the metadata is not a compact JWS") from None

    def _read_file(self, path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                raw = handle.read(self._max_bytes + 1)
        except OSError as exc:
            raise MetadataError(
                "unavailable", f"cannot read the file ({type(exc).__name__})"
            ) from None
        if len(raw) > self._max_bytes:
            raise MetadataError("unavailable", "the metadata file is larger than allowed")
        return raw

    async def _download(self, url: str) -> bytes:
        if self._session is not None:
            return await self._get(self._session, url)
        async with aiohttp.ClientSession() as session:
            return await self._get(session, url)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> bytes:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            # A redirect is answered as the failure it is: followed, it could lead anywhere, plain
            # http included, and the copy the operator publishes would never be seen.
            async with session.get(url, timeout=timeout, allow_redirects=False) as response:
                if response.status != 200:
                    raise MetadataError("unavailable", f"the server answered {response.status}")
                declared = response.content_length
                if declared is not None and declared > self._max_bytes:
                    raise MetadataError("unavailable", "the metadata is larger than allowed")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise MetadataError("unavailable", "the metadata is larger than allowed")
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MetadataError("unavailable", f"fetch failed ({type(exc).__name__})") from None
