"""The node keeps its last accepted federation metadata in its database: a restarted node (or another
replica) refuses an older copy, and serves on the kept one while the operator is unreachable. Before,
the floor lived in memory unless a cache file was set, and a restart re-admitted a suspended member
from any unexpired older copy."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from directory.members import MetadataError, MetadataSource, sign_metadata
from gateway.federation.kept_metadata import DatabaseKeeper
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import kept_metadata

from ..conftest import Database
from ..directory.test_members import OPERATOR, PINNED, T0, Clock, metadata, write


async def test_a_restarted_node_keeps_its_rollback_floor(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "metadata.jws", Clock(T0)
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        keeper = DatabaseKeeper(engine)
        assert await keeper.load() is None
        write(path, sign_metadata(metadata(version=5), OPERATOR))
        first = MetadataSource(path, PINNED, clock=clock, keeper=keeper)
        await first.refresh()
        kept = select(kept_metadata.c.version, kept_metadata.c.kept_at)
        async with engine.connect() as connection:
            before = (await connection.execute(kept)).one()
        await first.refresh()  # polling the same copy again writes nothing
        async with engine.connect() as connection:
            assert (await connection.execute(kept)).one() == before

        path.unlink()  # restarted while the operator is unreachable: serves on the kept copy
        restarted = MetadataSource(path, PINNED, clock=clock, keeper=DatabaseKeeper(engine))
        with pytest.raises(MetadataError, match="unavailable"):
            await restarted.refresh()
        assert restarted.current().version == 5

        # An older copy, still in date, offered to a restarted node: refused as a rollback.
        write(path, sign_metadata(metadata(version=4, issued_at=T0 + timedelta(hours=1)), OPERATOR))
        again = MetadataSource(path, PINNED, clock=clock, keeper=DatabaseKeeper(engine))
        with pytest.raises(MetadataError) as caught:
            await again.refresh()
        assert caught.value.code == "rollback"

        # Two replicas: one that lags behind cannot lower the floor the other raised.
        newer = sign_metadata(metadata(version=6), OPERATOR)
        await keeper.keep(newer, 6)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cafx.federation.metadata"):
            await keeper.keep(sign_metadata(metadata(version=5), OPERATOR), 5)
        assert await keeper.load() == newer
        assert [r.getMessage() for r in caplog.records] == [
            "a higher metadata version is already kept"
        ]
    finally:
        await engine.dispose()


async def test_replicas_share_the_floor_while_they_run(database: Database, tmp_path: Path) -> None:
    """A replica that accepted version 5 learns, on its next poll, of the version 7 another replica
    accepted, and then refuses version 6 (before: the floor was read from the database only at
    start, so a lagging replica took any copy newer than its own)."""
    clock = Clock(T0)
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        lagging_file, leading_file = tmp_path / "a.jws", tmp_path / "b.jws"
        write(lagging_file, sign_metadata(metadata(version=5), OPERATOR))
        lagging = MetadataSource(lagging_file, PINNED, clock=clock, keeper=DatabaseKeeper(engine))
        assert (await lagging.refresh()).version == 5
        write(leading_file, sign_metadata(metadata(version=7), OPERATOR))
        leading = MetadataSource(leading_file, PINNED, clock=clock, keeper=DatabaseKeeper(engine))
        assert (await leading.refresh()).version == 7

        write(lagging_file, sign_metadata(metadata(version=6), OPERATOR))
        with pytest.raises(MetadataError) as caught:
            await lagging.refresh()
        assert caught.value.code == "rollback"
        assert lagging.current().version == 7  # serves on the copy the other replica accepted
        assert lagging.last_version == 7
    finally:
        await engine.dispose()
