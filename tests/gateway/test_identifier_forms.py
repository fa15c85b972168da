"""An NHS number or UPN written another way (crypto-core review), on SQLite and PostgreSQL: a search
or existence check with `943-476-5919` finds the child stored with `9434765919` (the blind index
found it, and the scorer then called the two a conflict: `not_found`), and an identifier in another
script's digits (full-width `９４３…`) is refused, as the published schemas refuse it, rather than
stored under a blind index no ASCII query meets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from gateway.episodes import EpisodeStore
from gateway.protection import KeyRing, NameQuery
from gateway.protection._scoring import identifier_agreement
from gateway.storage import create_engine, upgrade
from schemas import IdentifierError, normalise_nhs_number, normalise_upn

from ..conftest import Database
from .test_timeliness import episode

_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _written(nhs: str) -> list[str]:
    return [nhs, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}", f"{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}"]


async def test_a_child_is_found_by_its_nhs_number_however_it_is_written(
    database: Database, tmp_path: Path
) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        store = EpisodeStore(KeyRing.generate())
        stored = episode()
        async with engine.begin() as connection:
            await store.add(connection, stored)
        nhs, upn = stored.child.identifiers.nhs_number, stored.child.identifiers.upn
        assert nhs is not None and upn is not None
        found: dict[str, Any] = {}
        async with engine.connect() as connection:
            for written in _written(nhs):
                query = NameQuery(nhs_number=written)
                found[written] = [
                    str(e.episode_id) for _, e in await store.search(connection, query)
                ]
            spaced = f"{upn[:4]} {upn[4:8]} {upn[8:]}".lower()
            found[spaced] = [
                str(e.episode_id) for _, e in await store.search(connection, NameQuery(upn=spaced))
            ]
    finally:
        await engine.dispose()
    assert found == dict.fromkeys([*_written(nhs), spaced], [str(stored.episode_id)])


def test_the_scorer_reads_an_identifier_as_the_index_does() -> None:
    assert identifier_agreement("nhs_number", "943-476-5919", "9434765919") == "match"
    assert identifier_agreement("nhs_number", "943 476 5919", "943-476-5919") == "match"
    assert identifier_agreement("nhs_number", "943-476-5920", "9434765919") == "conflict"
    assert identifier_agreement("upn", "a123-4567-8901-2", "A12345678901 2") == "match"


@pytest.mark.parametrize("digits", [_FULL_WIDTH, _ARABIC_INDIC])
def test_identifiers_in_other_scripts_digits_are_refused(digits: dict[int, str]) -> None:
    nhs = "9434765919"
    assert normalise_nhs_number(nhs) == nhs
    with pytest.raises(IdentifierError) as refused:
        normalise_nhs_number(nhs.translate(digits))
    assert refused.value.rule == "nhs_number.format"
    upn = "A123456789012"
    with pytest.raises(IdentifierError) as refused:
        normalise_upn(upn[0] + upn[1:].translate(digits))
    assert refused.value.rule == "upn.format"


def test_a_date_of_birth_query_still_needs_a_name_or_an_identifier() -> None:
    with pytest.raises(ValueError, match="family name"):
        NameQuery(date_of_birth=dt.date(2015, 6, 1))
