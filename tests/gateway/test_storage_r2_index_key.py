"""The first index-key check of a database indexed before the fingerprint was kept (review 2,
finding 8), on SQLite and PostgreSQL: when indexed episodes no longer open, the check tries the
next few until one opens, so a wrong key is refused rather than recorded unchecked."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
from sqlalchemy import delete, select, update

from gateway.episodes import EpisodeStore, check_index_key
from gateway.protection import KeyMaterialError, KeyRing, associated_data, seal
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import blind_index_key, episodes

from ..conftest import Database
from .test_timeliness import episode

BROKEN = 4


async def test_a_wrong_index_key_is_refused_when_the_first_episodes_do_not_open(
    database: Database,
) -> None:
    ring = KeyRing.generate()
    made = [episode().model_copy(update={"episode_id": uuid.uuid4()}) for _ in range(BROKEN + 1)]
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            for one in made:
                await EpisodeStore(ring).add(connection, one)
            for one in made[:BROKEN]:  # stored by an earlier release: a newer rule refuses them
                document = json.loads(one.model_dump_json())
                document["consents"][0]["consent_id"] = "C1\x1b"
                sealed = seal(
                    json.dumps(document).encode(),
                    ring,
                    associated_data("episodes", str(one.episode_id), "document"),
                )
                await connection.execute(
                    update(episodes)
                    .where(episodes.c.id == str(one.episode_id))
                    .values(document=sealed.to_bytes(), key_id=sealed.key_id)
                )
            await connection.execute(delete(blind_index_key))  # indexed before 0014

        kek = ring.kek(ring.current)
        assert kek is not None
        wrong = KeyRing(ring.current, {ring.current: kek}, secrets.token_bytes(32))
        with pytest.raises(KeyMaterialError) as refused:
            await check_index_key(engine, EpisodeStore(wrong))
        assert refused.value.rule == "index_key.mismatch"
        async with engine.connect() as connection:
            assert await connection.scalar(select(blind_index_key.c.fingerprint)) is None

        assert await check_index_key(engine, EpisodeStore(ring))  # the right one is recorded
    finally:
        await engine.dispose()
