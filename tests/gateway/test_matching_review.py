"""Existence-check matching after review: a twin's name, names in the other order, and how the
episode store groups episodes into children (a UPN given to two children, a renamed child).

A wrong `found` tells a practitioner about another child, so each scenario checks the answer the
holder would give (`classify`), and for the store, whose episodes that answer would reveal.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.episodes import EpisodeStore
from gateway.protection import (
    FOUND_THRESHOLD,
    IDENTIFIER_DISAGREEMENT_CONFIDENCE,
    POSSIBLE_MATCH,
    Candidate,
    KeyRing,
    Match,
    MatchOutcome,
    NameQuery,
    classify,
    match_candidates,
)
from gateway.protection._matching import POSSIBLE_ONLY
from gateway.storage import create_engine, upgrade
from schemas import Episode

from ..conftest import Database

DOB = dt.date(2015, 3, 4)
NHS = "9434765919"
UPN = "B801200005001"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "national" / "valid-episode.json"


def _answer(given: str, family: str, record: tuple[str, str], dob: dt.date = DOB) -> list[Match]:
    query = NameQuery(given_names=given, family_name=family, date_of_birth=DOB)
    candidate = Candidate(
        ref="record", given_names=record[0], family_name=record[1], date_of_birth=dob
    )
    return match_candidates(query, [candidate])


# -- 1. a twin's name is not the child asked about -----------------------------------------------


@pytest.mark.parametrize(
    ("asked", "twin"),
    [
        ("Michael", "Michaela"),
        ("Daniel", "Daniela"),
        ("Gabriel", "Gabriela"),
        ("Christian", "Christiana"),
        ("Julian", "Juliana"),
        ("Stefan", "Stefani"),
        ("Antonio", "Antonia"),
        ("Roberto", "Roberta"),
        ("Louis", "Louise"),
        ("Francis", "Frances"),
        ("Jesse", "Jessie"),
    ],
)
def test_a_twins_form_of_the_name_is_at_best_ambiguous(asked: str, twin: str) -> None:
    """Same family name, same birthday, only the other twin on record: never `found`."""
    for query, record in ((asked, twin), (twin, asked)):
        (match,) = _answer(query, "Smith", (record, "Smith"))
        assert POSSIBLE_MATCH <= match.confidence <= POSSIBLE_ONLY < FOUND_THRESHOLD
        assert classify([match]) is MatchOutcome.AMBIGUOUS, (query, record)


@pytest.mark.parametrize(
    ("asked", "recorded"),
    [
        (("Mohammed", "Ali"), ("Mohammad", "Ali")),
        (("Jonathan", "Smith"), ("Jonahtan", "Smith")),
        (("Hussain", "Khan"), ("Hussein", "Khan")),
        (("Catherine", "Smith"), ("Katherine", "Smith")),
        (("Michael", "O'Brien"), ("Michael", "Ó Briain")),
        (("Zoë-Mae", "Walsh"), ("ZOE MAE", "WALSH")),
    ],
)
def test_spelling_variants_inside_a_name_are_still_found(
    asked: tuple[str, str], recorded: tuple[str, str]
) -> None:
    matches = _answer(*asked, recorded)
    assert classify(matches) is MatchOutcome.FOUND


def test_the_child_asked_about_is_found_beside_a_twin_only_by_an_exact_lead() -> None:
    query = NameQuery(given_names="Michael", family_name="Smith", date_of_birth=DOB)
    both = [
        Candidate(ref="michael", given_names="Michael", family_name="Smith", date_of_birth=DOB),
        Candidate(ref="michaela", given_names="Michaela", family_name="Smith", date_of_birth=DOB),
    ]
    matches = match_candidates(query, both)
    assert [m.ref for m in matches] == ["michael", "michaela"]
    assert classify(matches) is MatchOutcome.AMBIGUOUS  # the twin is too close to rule out


# -- 3. given and family names the other way round -----------------------------------------------


def test_names_in_the_other_order_are_a_possible_match_not_a_new_child() -> None:
    (match,) = _answer("Wei", "Zhang", ("Zhang", "Wei"))
    assert match.confidence == POSSIBLE_ONLY and "name.fuzzy" in match.reasons
    assert classify([match]) is MatchOutcome.AMBIGUOUS
    (spaced,) = _answer("Amelia Rose", "Smith", ("Smith", "Amelia Rose"))
    assert classify([spaced]) is MatchOutcome.AMBIGUOUS
    # Another birthday: another child, as in the order given.
    assert _answer("Wei", "Zhang", ("Zhang", "Wei"), dt.date(2016, 7, 9)) == []
    # The order given still wins when it fits.
    (straight,) = _answer("Wei", "Zhang", ("Wei", "Zhang"))
    assert classify([straight]) is MatchOutcome.FOUND and "name.exact" in straight.reasons


# -- 2. the episode store's children -------------------------------------------------------------


def _episode(
    number: int,
    given: str,
    family: str,
    born: str,
    identifiers: dict[str, str],
    *,
    state: str = "open",
) -> Episode:
    document: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text()))
    document["episode_id"] = str(uuid.UUID(int=number))  # ids fix the order rows come back in
    child = document["child"]
    child.update(given_names=given, family_name=family, date_of_birth=born)
    child["identifiers"] = identifiers
    document["state"] = state
    if state == "closed":
        document["closure"] = {"closed_on": "2026-03-01", "outcome": "resolved_family"}
    return Episode.model_validate(document)


async def _search(
    database: Database, episodes: list[Episode], *queries: NameQuery
) -> list[list[tuple[Match, Episode]]]:
    """Store `episodes` in this order in a migrated database and search it for each query, as the
    holder does."""
    engine = create_engine(database.url, schema=database.schema)
    store = EpisodeStore(KeyRing.generate())
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            for episode in episodes:
                await store.add(connection, episode)
        async with engine.connect() as connection:
            return [await store.search(connection, query) for query in queries]
    finally:
        await engine.dispose()


def _revealed(found: list[tuple[Match, Episode]]) -> set[str]:
    """The given names of the episodes a `found` answer would choose from (holder.py)."""
    best = found[0][0].ref
    return {e.child.given_names for m, e in found if m.ref == best}


@pytest.mark.parametrize("other_first", [True, False])
async def test_a_upn_given_to_two_children_does_not_make_them_one(
    database: Database, other_first: bool
) -> None:
    connor = _episode(1 if other_first else 2, "Connor", "Walsh", "2014-01-09", {"upn": UPN})
    maya = _episode(2 if other_first else 1, "Maya", "Testchild", "2015-06-01", {"upn": UPN})
    stored = [connor, maya] if other_first else [maya, connor]
    maya_keys = NameQuery(
        given_names="Maya", family_name="Testchild", date_of_birth=dt.date(2015, 6, 1), upn=UPN
    )
    found, by_upn = await _search(database, stored, maya_keys, NameQuery(upn=UPN))
    assert classify([m for m, _ in found]) is MatchOutcome.FOUND
    assert _revealed(found) == {"Maya"}
    (connors,) = [m for m, e in found if e.child.given_names == "Connor"]
    assert connors.confidence == IDENTIFIER_DISAGREEMENT_CONFIDENCE  # the birthday disagrees
    # The UPN alone cannot tell them apart.
    assert classify([m for m, _ in by_upn]) is MatchOutcome.AMBIGUOUS


@pytest.mark.parametrize("old_first", [True, False])
async def test_a_renamed_child_is_found_whichever_episode_comes_back_first(
    database: Database, old_first: bool
) -> None:
    """One child (one NHS number), an older episode under another surname: the newer name finds
    them, whatever order the rows come back in, and every episode of theirs is offered."""
    closed = _episode(
        1 if old_first else 2, "Maya", "Smith", "2015-06-01", {"nhs_number": NHS}, state="closed"
    )
    new = _episode(2 if old_first else 1, "Maya", "Jones", "2015-06-01", {"nhs_number": NHS})
    stored = [closed, new] if old_first else [new, closed]
    query = NameQuery(given_names="Maya", family_name="Jones", date_of_birth=dt.date(2015, 6, 1))
    (found,) = await _search(database, stored, query)
    assert classify([m for m, _ in found]) is MatchOutcome.FOUND
    assert {e.child.family_name for _, e in found} == {"Smith", "Jones"}
    assert len({m.ref for m, _ in found}) == 1


async def test_episodes_sharing_upn_birthday_and_name_are_one_child(database: Database) -> None:
    """A school's episode with the UPN only, a health visitor's with the NHS number as well."""
    school = _episode(1, "Maya", "Smith", "2015-06-01", {"upn": UPN}, state="closed")
    health = _episode(2, "Maya", "Jones", "2015-06-01", {"upn": UPN, "nhs_number": NHS})
    query = NameQuery(given_names="Maya", family_name="Smith", date_of_birth=dt.date(2015, 6, 1))
    (found,) = await _search(database, [school, health], query)
    assert classify([m for m, _ in found]) is MatchOutcome.FOUND
    assert len({m.ref for m, _ in found}) == 1 and len(found) == 2


async def test_twins_sharing_a_upn_in_error_stay_two_children(database: Database) -> None:
    michaela = _episode(1, "Michaela", "Smith", "2015-06-01", {"upn": UPN})
    michael = _episode(2, "Michael", "Smith", "2015-06-01", {"upn": UPN})
    query = NameQuery(given_names="Michael", family_name="Smith", date_of_birth=dt.date(2015, 6, 1))
    (found,) = await _search(database, [michaela, michael], query)
    assert len({m.ref for m, _ in found}) == 2
    assert _revealed(found) == {"Michael"}
    assert classify([m for m, _ in found]) is MatchOutcome.AMBIGUOUS
