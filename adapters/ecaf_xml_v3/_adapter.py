"""The `ecaf-xml-v3` adapter: detect, to_national, from_national (DESIGN section 5)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Final

from schemas import Episode

from .._base import AdapterError, Translation
from ._paths import FORMAT, NS
from ._reader import read_episode
from ._writer import write_episode

__all__ = ["ADAPTER", "EcafXmlV3"]

_SNIFF: Final = 4096
_START_TAG: Final = re.compile(rb"<(?:([A-Za-z_][\w.\-]*):)?([A-Za-z_][\w.\-]*)([^<>]*)>")
# A declaration of eCAF v3's namespace, with the prefix it binds (none: the default namespace).
_DECLARATION: Final = re.compile(
    rb"xmlns(?::([A-Za-z_][\w.\-]*))?\s*=\s*([\"'])" + re.escape(NS.encode()) + rb"\2"
)


def _root_start(head: bytes) -> re.Match[bytes] | None:
    """The root element's start tag: the first tag after the XML declaration, comments, PIs, DOCTYPE."""
    pos = 0
    while True:
        i = head.find(b"<", pos)
        if i < 0:
            return None
        if head.startswith(b"<?", i):
            end = head.find(b"?>", i)
        elif head.startswith(b"<!--", i):
            end = head.find(b"-->", i)
        elif head.startswith(b"<!", i):
            end = head.find(b">", i)
        else:
            return _START_TAG.match(head, i)
        if end < 0:
            return None
        pos = end + 1


class EcafXmlV3:
    """eCAF-style XML export, one episode per file (namespace urn:x-caf:ecaf:3, root CAFEpisode)."""

    name: str = FORMAT
    media_type: str = "application/xml"
    many_per_document: bool = False

    def detect(self, data: bytes) -> bool:
        """Is the root element `CAFEpisode` in eCAF v3's namespace? Reads the first 4 KB only."""
        try:
            head = data[:_SNIFF]
            if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                head = head.decode("utf-16", "ignore").encode("utf-8")
            start = _root_start(head)
            if start is None or start[2] != b"CAFEpisode":
                return False
            # The root's own namespace can only be declared on the root itself.
            return any(d[1] == start[1] for d in _DECLARATION.finditer(start[3]))
        except Exception:  # a sniff never raises  # noqa: BLE001
            return False

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        return read_episode(data, received_at)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        if len(episodes) != 1:
            raise AdapterError(
                "unsupported_format", "an eCAF v3 document holds exactly one episode", "/"
            )
        return write_episode(episodes[0])


ADAPTER: Final = EcafXmlV3()
