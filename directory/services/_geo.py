"""Where things are: London postcode districts' centroids (shipped as data) and great-circle distance.

A postcode's district is its outward code (`N1 9GU` -> `N1`); a sector (`N1 9`) or a district alone is
accepted too.
The table and where its figures come from: `data/london-districts.csv`, `data/SOURCE.md`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from functools import cache
from importlib.resources import files

__all__ = ["EARTH_RADIUS_M", "district_centroids", "district_of", "haversine_m", "locate_postcode"]

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
_FULL = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")
_INWARD = re.compile(r"^[0-9](?:[A-Z]{2})?$")  # a full inward code, or a sector's digit alone


@cache
def district_centroids() -> dict[str, tuple[float, float]]:
    text = files("directory.services").joinpath("data/london-districts.csv").read_text("utf-8")
    return {
        row["district"]: (float(row["lat"]), float(row["lon"]))
        for row in csv.DictReader(io.StringIO(text))
    }


def district_of(postcode: str) -> str | None:
    """The outward code of a full UK postcode, of a sector (`N1 9`) or of a district; None when it
    is none of these. With a space, what comes before it is the outward code: `E1 7` is a sector of
    E1, never the district E17."""
    parts = postcode.upper().split()
    if len(parts) == 1:
        match = _FULL.match(parts[0])
        return match.group(1) if match else (parts[0] if _DISTRICT.match(parts[0]) else None)
    if len(parts) == 2 and _DISTRICT.match(parts[0]) and _INWARD.match(parts[1]):
        return parts[0]
    return None


def locate_postcode(postcode: str) -> tuple[float, float] | None:
    """The centroid of the postcode's district, if the district is in London's table."""
    district = district_of(postcode)
    return district_centroids().get(district) if district else None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))
