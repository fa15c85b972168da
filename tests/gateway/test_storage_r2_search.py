"""A stored episode that no longer opens (review 2, finding 7), on SQLite and PostgreSQL: a search
that meets it leaves it out with a warning naming its id and rule, and still answers with the rest,
instead of failing every search (and federation existence check) sharing its birth date or name."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from gateway.episodes import EpisodeStore
from gateway.errors import PeerUnavailable
from gateway.protection import KeyRing, NameQuery, associated_data, seal
from gateway.storage import create_engine, rewrap_sealed, upgrade
from gateway.storage._tables import episodes

from ..conftest import Database
from .test_timeliness import episode


async def test_a_candidate_that_no_longer_opens_is_left_out_of_a_search(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        ring = KeyRing.generate()
        store = EpisodeStore(ring)
        fine, broken = (episode().model_copy(update={"episode_id": uuid.uuid4()}) for _ in "ab")
        other = fine.child.model_copy(
            update={
                "identifiers": fine.child.identifiers.model_copy(
                    update={"nhs_number": None, "upn": None}
                )
            }
        )
        broken = broken.model_copy(update={"child": other})
        async with engine.begin() as connection:
            await store.add(connection, fine)
            await store.add(connection, broken)
            # As if stored by an earlier release: a consent id a newer rule refuses.
            document = json.loads(broken.model_dump_json())
            document["consents"][0]["consent_id"] = "C1\x1b"
            sealed = seal(
                json.dumps(document).encode(),
                ring,
                associated_data("episodes", str(broken.episode_id), "document"),
            )
            await connection.execute(
                update(episodes)
                .where(episodes.c.id == str(broken.episode_id))
                .values(document=sealed.to_bytes(), key_id=sealed.key_id)
            )

        query = NameQuery(
            given_names="Maya", family_name="Testchild", date_of_birth=dt.date(2015, 6, 1)
        )
        with caplog.at_level(logging.WARNING, logger="cafx.episodes"):
            async with engine.connect() as connection:
                found = await store.search(connection, query)
    finally:
        await engine.dispose()
    assert [str(e.episode_id) for _, e in found] == [str(fine.episode_id)]
    (warned,) = [r.getMessage() for r in caplog.records if r.name == "cafx.episodes"]
    assert warned == (  # its id and rule: nothing of the child
        f"episode {broken.episode_id} left out of a search: it does not open"
        " (text.control_characters)"
    )


async def test_a_candidate_under_a_key_this_replica_has_not_got_is_no_not_found(
    database: Database,
) -> None:
    """A rotation re-wrapped the row under k2 before this replica had the new file: the search
    answers 503 `not_ready` (try again), never an answer that leaves the child out."""
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        lagging = KeyRing.generate("k1")
        rotated = lagging.with_new_key()
        child = episode()
        async with engine.begin() as connection:
            await EpisodeStore(lagging).add(connection, child)
            await rewrap_sealed(connection, rotated)
        query = NameQuery(
            given_names="Maya", family_name="Testchild", date_of_birth=dt.date(2015, 6, 1)
        )
        async with engine.connect() as connection:
            assert len(await EpisodeStore(rotated).search(connection, query)) == 1
            with pytest.raises(PeerUnavailable) as caught:
                await EpisodeStore(lagging).search(connection, query)
    finally:
        await engine.dispose()
    assert (caught.value.status, caught.value.wire_code) == (503, "not_ready")
