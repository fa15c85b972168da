"""The `ecaf-xml-v3` adapter: detect, to_national, from_national (DESIGN section 5)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from schemas import Episode

from .._base import AdapterError, Translation
from .._safe import xml_root_is
from ._paths import FORMAT, NS
from ._reader import read_episode
from ._writer import write_episode

__all__ = ["ADAPTER", "EcafXmlV3"]


class EcafXmlV3:
    """eCAF-style XML export, one episode per file (namespace urn:x-caf:ecaf:3, root CAFEpisode)."""

    name: str = FORMAT
    media_type: str = "application/xml"
    many_per_document: bool = False

    def detect(self, data: bytes) -> bool:
        """Is the root element `CAFEpisode` in eCAF v3's namespace? Reads the first 64 KB only."""
        return xml_root_is(data, NS, "CAFEpisode")

    def to_national(self, data: bytes, *, received_at: dt.datetime | None = None) -> Translation:
        return read_episode(data, received_at)

    def from_national(self, episodes: Sequence[Episode]) -> bytes:
        if len(episodes) != 1:
            raise AdapterError(
                "unsupported_format", "an eCAF v3 document holds exactly one episode", "/"
            )
        return write_episode(episodes[0])


ADAPTER: Final = EcafXmlV3()
