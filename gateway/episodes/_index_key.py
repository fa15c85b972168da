"""The blind-index key a node's database was indexed with (`protection._keys`: the index key does not
rotate). Its fingerprint is kept in `blind_index_key`, recorded at the first start and compared at
every start after: a node given another index key (a key file restored from another backup, an
environment variable copied from another node) refuses to start, instead of running with every
search and existence check silently answering `not_found`.

A database indexed before the fingerprint was kept has none recorded: one indexed episode (the first
of a few that opens) is indexed again under the node's key first, so a key that was already wrong is
refused rather than recorded.

A node started before its migrations were applied (`migrate_on_start = false`, then `cafx db
upgrade`) finds no table to check at start. The check is then made when `/readyz` first finds the
migrations current, and until it has passed every other request is answered 503 `not_ready`
(`gateway/app.py`), so the node serves nothing under an index key it has not checked.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging

from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..protection import KeyMaterialError
from ..storage import insert_on_conflict
from ..storage._tables import blind_index_key
from ._store import EpisodeStore

__all__ = ["check_index_key"]

log = logging.getLogger("cafx.keys")

_MISMATCH = (
    "the key ring's index_key is not the one this database's blind indexes were made with:"
    " every search would find nothing. Start with the key file (or CAFX_KEYS_JSON) this database"
    " was indexed with; a new index key needs every episode re-indexed first"
)


def _has_table(connection: Connection) -> bool:
    return inspect(connection).has_table(blind_index_key.name)


async def check_index_key(engine: AsyncEngine, store: EpisodeStore) -> bool:
    """Record the ring's index-key fingerprint, or compare it with the one recorded; raise
    `KeyMaterialError` (rule `index_key.mismatch`, no key material) when they differ. False when
    there is nothing to check yet (migrations not applied); once checked, `store.index_key_checked`.
    """
    if store.index_key_checked:
        return True
    fingerprint = store.ring.index_fingerprint()
    async with engine.begin() as connection:
        if not await connection.run_sync(_has_table):  # migrations not applied yet (not ready)
            log.warning("index key not checked yet: the database has no blind_index_key table")
            return False
        recorded = await connection.scalar(select(blind_index_key.c.fingerprint))
        if recorded is None:
            if await store.indexed_with_this_key(connection) is False:
                raise KeyMaterialError("index_key.mismatch", _MISMATCH)
            await connection.execute(  # replicas starting together record the same value once
                insert_on_conflict(connection, blind_index_key)
                .values(id=1, fingerprint=fingerprint, recorded_at=dt.datetime.now(dt.UTC))
                .on_conflict_do_nothing(index_elements=["id"])
            )
            recorded = await connection.scalar(select(blind_index_key.c.fingerprint))
        if recorded is None or not hmac.compare_digest(recorded, fingerprint):
            raise KeyMaterialError("index_key.mismatch", _MISMATCH)
    store.index_key_checked = True
    return True
