"""The eCAF element codes (ecaf-xml-v3 `Element/@code`), shared by every format that quotes them.

They are listed in the order of the national `Element` enum (formats/README.md says the two orders
match), so the table is built by zipping and a change to either list fails at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from schemas import Element

_CODES: Final = (
    "DEV.HEALTH.GENERAL",
    "DEV.HEALTH.PHYSICAL",
    "DEV.HEALTH.SLC",
    "DEV.EMOTIONAL",
    "DEV.BEHAVIOUR",
    "DEV.IDENTITY",
    "DEV.RELATIONSHIPS",
    "DEV.SELFCARE",
    "DEV.LEARNING.UNDERSTANDING",
    "DEV.LEARNING.PARTICIPATION",
    "DEV.LEARNING.PROGRESS",
    "DEV.LEARNING.ASPIRATIONS",
    "PAR.BASIC_CARE",
    "PAR.WARMTH",
    "PAR.GUIDANCE",
    "FAM.HISTORY",
    "FAM.WIDER",
    "FAM.HOUSING",
    "FAM.COMMUNITY",
)
ECAF_ELEMENT: Final[Mapping[str, Element]] = MappingProxyType(
    dict(zip(_CODES, Element, strict=True))
)
ECAF_CODE: Final[Mapping[Element, str]] = MappingProxyType(
    {element: code for code, element in ECAF_ELEMENT.items()}
)
