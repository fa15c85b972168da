"""Retention of episodes (gateway/retention/_episodes.py), on SQLite and PostgreSQL: a closed
episode is archived a year after its closure and purged six years later, a transferred-out copy
seven years after its commit, each step once (replicas too), audited, and only while still due."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alembic import command
from dateutil.relativedelta import relativedelta
from pytest_aiohttp import AiohttpClient
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.audit_log import AuditLog
from gateway.episodes import EpisodeStore, EventBody, apply_event
from gateway.errors import Conflict, SchemaViolation
from gateway.federation.outbox import Outbox
from gateway.federation.withdrawals import receive_withdrawal
from gateway.keys import AUDIT, ENGINE, EPISODES
from gateway.protection import KeyRing
from gateway.retention import RETENTION_ACTOR, RetentionPass, _episodes, apply_retention
from gateway.signing import load_signing_key
from gateway.storage import aware_utc, create_engine, upgrade
from gateway.storage._migrate import alembic_config
from gateway.storage._tables import (
    audit_entries,
    episode_index,
    episodes,
    outbox,
    register,
    transfers,
)
from gateway.timeliness import Due, DueList, Listed, TimeRule, due_by, due_items
from schemas import LONDON, Episode, EpisodeState, london_today

from ..conftest import Database
from .node import MEMBER, node_settings, register_system
from .test_due_r2_api import _fresh, _stored
from .test_timeliness import episode

TODAY = dt.date(2026, 12, 7)
_PURGE = frozenset({TimeRule.PURGE})
HACKNEY = "E09000012"
ISLINGTON = "E09000019"


def _closed(on: str, state: str = "closed") -> Episode:
    return _fresh(episode(state=state, closed_on=on))


async def _node(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, **settings: Any
) -> TestClient[Any, Any]:
    values: dict[str, Any] = {"retention_interval_seconds": 0} | settings
    return await aiohttp_client(create_app(node_settings(database, tmp_path, **values)))


async def _pass(http: TestClient[Any, Any], today: dt.date = TODAY) -> RetentionPass:
    return await apply_retention(http.app[ENGINE], http.app[EPISODES], http.app[AUDIT], today)


async def _state(engine: AsyncEngine, episode_id: str) -> str | None:
    async with engine.connect() as connection:
        return (
            await connection.execute(select(episodes.c.state).where(episodes.c.id == episode_id))
        ).scalar_one_or_none()


async def _steps(engine: AsyncEngine) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(audit_entries)
            .where(audit_entries.c.action.in_(["episode.archive", "episode.purge"]))
            .order_by(audit_entries.c.sequence)
        )
        return [(r.action, r.subject, r.actor, json.loads(r.details)) for r in rows]


async def _count(engine: AsyncEngine, table: Any, episode_id: str) -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    select(func.count()).select_from(table).where(table.c.episode_id == episode_id)
                )
            ).scalar_one()
        )


async def _disclosed(engine: AsyncEngine, episode_id: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(register).values(
                id=str(uuid.uuid4()),
                episode_id=episode_id,
                direction="sent",
                counterpart=HACKNEY,
                requested_by="practitioner-1",
                sections=["plan"],
                basis="C1",
                override=False,
                disclosed_at=dt.datetime(2020, 5, 1, tzinfo=dt.UTC),
            )
        )


async def _moved_away(
    engine: AsyncEngine,
    episode_id: str,
    committed: dt.datetime,
    state: str = "committed",
    direction: str = "out",
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(transfers).values(
                id=str(uuid.uuid4()),
                direction=direction,
                episode_id=episode_id,
                counterpart=HACKNEY,
                state=state,
                created_at=committed - dt.timedelta(days=2),
                updated_at=committed,
                key_id="k1",
                sealed=b"the lead professional, sealed",
            )
        )


async def _archived_on(engine: AsyncEngine, episode_id: str, day: dt.date) -> None:
    """As if the node had archived it on `day`."""
    at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    async with engine.begin() as connection:
        await connection.execute(
            episodes.update().where(episodes.c.id == episode_id).values(archived_at=at)
        )


async def _archived_day(engine: AsyncEngine, episode_id: str) -> dt.date | None:
    """The day in London the episode was archived here."""
    async with engine.connect() as connection:
        at = await connection.scalar(
            select(episodes.c.archived_at).where(episodes.c.id == episode_id)
        )
    return None if at is None else aware_utc(at).astimezone(LONDON).date()


def _years_after(day: dt.date | None, years: int) -> dt.date:
    assert day is not None
    return day + relativedelta(years=years)


async def test_a_closed_episode_is_archived_a_year_after_its_closure(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    due, not_yet = await _stored(http, _closed("2025-12-07"), _closed("2025-12-08"))
    done = await _pass(http)
    assert (done.archived, done.purged, done.skipped) == ([due], [], [])
    assert await _state(engine, due) == "archived"
    assert await _state(engine, not_yet) == "closed"
    async with engine.connect() as connection:  # kept whole, still read by id, closure and all
        kept = (await http.app[EPISODES].get(connection, due)).episode
    assert kept.state is EpisodeState.ARCHIVED and kept.closure is not None
    assert await _archived_day(engine, due) == london_today()
    assert await _archived_day(engine, not_yet) is None
    assert await _steps(engine) == [("episode.archive", due, RETENTION_ACTOR, {"rule": "archive"})]
    again = await _pass(http)  # nothing is done twice
    assert (again.archived, again.purged, again.skipped) == ([], [], [])
    assert len(await _steps(engine)) == 1
    assert (await http.app[AUDIT].verify()).ok


async def test_an_archived_episode_is_purged_and_the_register_kept(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    gone, kept = await _stored(
        http, _closed("2019-12-07", state="archived"), _closed("2019-12-08", state="archived")
    )
    for episode_id in (gone, kept):
        await _archived_on(engine, episode_id, dt.date(2020, 12, 7))
        await _disclosed(engine, episode_id)
    await _moved_away(engine, gone, dt.datetime(2019, 1, 1, tzinfo=dt.UTC))  # an older move
    assert await _count(engine, episode_index, gone) > 0
    done = await _pass(http)
    assert (done.archived, done.purged) == ([], [gone])
    assert await _state(engine, gone) is None
    assert await _count(engine, episode_index, gone) == 0
    # The register and the transfer record stay (ids and codes); the lead professional sealed in
    # the transfer record goes.
    assert await _count(engine, register, gone) == 1
    async with engine.connect() as connection:
        moves = (
            await connection.execute(select(transfers).where(transfers.c.episode_id == gone))
        ).all()
    assert [(m.state, m.sealed, m.key_id) for m in moves] == [("committed", None, None)]
    assert await _state(engine, kept) == "archived"
    assert await _steps(engine) == [
        ("episode.purge", gone, RETENTION_ACTOR, {"rule": "purge", "transfer_records_cleared": 1})
    ]
    assert (await http.app[AUDIT].verify()).ok


async def test_an_episode_is_purged_only_six_years_after_it_was_archived(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """However far back its closure is dated (by mistake, or a legacy "no date" value), what is
    archived today is purged 6 years on, not in the next pass."""
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    (long_ago,) = await _stored(http, _closed("1990-01-01"))
    done = await _pass(http)
    assert (done.archived, done.purged) == ([long_ago], [])
    purge_on = _years_after(await _archived_day(engine, long_ago), 6)
    listed = await due_by(engine, http.app[EPISODES], dt.date(9999, 1, 1), _PURGE)
    assert [(i.episode_id, i.due.due_on) for i in listed.items] == [(long_ago, purge_on)]
    assert (await _pass(http, purge_on - dt.timedelta(days=1))).purged == []
    assert (await _pass(http, purge_on)).purged == [long_ago]


async def test_an_episode_imported_archived_counts_from_its_import_or_its_closure(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """6 years archived here, and 7 after the closure when that is later."""
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    old, recent = await _stored(
        http, _closed("2015-03-01", state="archived"), _closed("2026-06-01", state="archived")
    )
    imported = await _archived_day(engine, old)
    assert imported == london_today()
    listed = await due_by(engine, http.app[EPISODES], dt.date(9999, 1, 1), _PURGE)
    assert {i.episode_id: i.due.due_on for i in listed.items} == {
        old: _years_after(imported, 6),
        recent: max(dt.date(2033, 6, 1), _years_after(imported, 6)),
    }
    assert (await _pass(http)).purged == []


async def test_an_episode_being_transferred_is_left_alone(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """The child moved back: the member holding the episode now offers it to us, holding our old
    copy. Purging that copy would leave the commit nothing to replace."""
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    copy, closing = await _stored(
        http,
        _fresh(episode(state="transferred")),
        _closed("2025-01-10"),
    )
    await _moved_away(engine, copy, dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
    await _moved_away(engine, copy, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), "accepted", "in")
    await _moved_away(engine, closing, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), "offered")
    done = await _pass(http)
    assert (done.archived, done.purged, sorted(done.skipped)) == ([], [], sorted([copy, closing]))
    assert await _state(engine, copy) == "transferred"
    assert await _state(engine, closing) == "closed"


async def test_a_transferred_out_copy_is_purged_seven_years_after_its_commit(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    engine = http.app[ENGINE]
    due, not_yet = await _stored(
        http,
        _fresh(episode(state="transferred")),
        _fresh(episode(state="transferred")),
    )
    # 6 December 2019, 23:30 UTC; the commit of the other is a day later in London.
    await _moved_away(engine, due, dt.datetime(2019, 12, 6, 23, 30, tzinfo=dt.UTC))
    await _moved_away(engine, not_yet, dt.datetime(2019, 12, 8, 0, 30, tzinfo=dt.UTC))
    done = await _pass(http)
    assert (done.archived, done.purged) == ([], [due])
    assert await _state(engine, due) is None and await _count(engine, transfers, due) == 1
    assert await _state(engine, not_yet) == "transferred"


async def test_an_episode_no_longer_due_when_read_again_is_left_alone(
    aiohttp_client: AiohttpClient,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The list is a hint: each step reads the episode again, under a lock, and decides anew."""
    http = await _node(aiohttp_client, database, tmp_path)
    recent, missing = await _stored(http, _closed("2026-11-01"), _closed("2019-01-01"))
    async with http.app[ENGINE].begin() as connection:  # gone before the step reads it
        await connection.execute(
            episode_index.delete().where(episode_index.c.episode_id == missing)
        )
        await connection.execute(episodes.delete().where(episodes.c.id == missing))
    stale = TODAY - dt.timedelta(days=1)
    listed = DueList(
        [
            Listed(recent, Due(TimeRule.ARCHIVE, stale)),
            Listed(recent, Due(TimeRule.PURGE, stale)),
            Listed(missing, Due(TimeRule.ARCHIVE, stale)),
        ],
        [],
    )

    async def stale_list(*_: Any) -> DueList:
        return listed

    monkeypatch.setattr(_episodes, "due_by", stale_list)
    done = await _pass(http)
    assert (done.archived, done.purged) == ([], [])
    assert sorted(set(done.skipped)) == sorted({recent, missing})
    assert await _state(http.app[ENGINE], recent) == "closed"
    assert await _steps(http.app[ENGINE]) == []


async def test_a_purge_from_a_stale_read_changes_nothing(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    store, engine = http.app[EPISODES], http.app[ENGINE]
    (one,) = await _stored(http, _closed("2019-12-01", state="archived"))
    async with engine.connect() as connection:
        stale = await store.get(connection, one)
    async with engine.begin() as connection:  # changed meanwhile (revision 2)
        await store.replace(connection, stale, stale.episode)
    with pytest.raises(Conflict):
        async with engine.begin() as connection:
            await store.purge(connection, stale)
    assert await _state(engine, one) == "archived"
    assert await _count(engine, episode_index, one) > 0


async def test_passes_at_once_take_each_step_once(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Two passes at once (on PostgreSQL from two replicas, each with its engine, store and audit
    log; SQLite has one process): every step once, one audit entry each, the chain intact."""
    http = await _node(aiohttp_client, database, tmp_path)
    made = [_closed("2019-06-01", "archived") for _ in range(4)]
    made += [_closed("2025-06-01") for _ in range(4)]
    ids = await _stored(http, *made)
    for archived in ids[:4]:
        await _archived_on(http.app[ENGINE], archived, dt.date(2020, 6, 1))
    first = (http.app[ENGINE], http.app[EPISODES], http.app[AUDIT])
    if database.backend == "sqlite":
        second = first
        replica: AsyncEngine | None = None
    else:
        replica = create_engine(database.url, schema=database.schema)
        second = (
            replica,
            EpisodeStore(KeyRing.from_file(tmp_path / "keys.json")),
            AuditLog(replica, load_signing_key(tmp_path / "signing-key.json"), MEMBER, 100),
        )
    try:
        one, two = await asyncio.gather(
            apply_retention(*first, TODAY), apply_retention(*second, TODAY)
        )
    finally:
        if replica is not None:
            await replica.dispose()
    assert sorted(one.archived + two.archived) == sorted(ids[4:])
    assert sorted(one.purged + two.purged) == sorted(ids[:4])
    steps = [(action, subject) for action, subject, _, _ in await _steps(http.app[ENGINE])]
    assert len(steps) == len(set(steps)) == 8
    assert (await http.app[AUDIT].verify()).ok


async def test_a_withdrawal_is_still_recorded_on_an_archived_episode(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Archived means kept and read-only, but the family's "no" must still reach the record (and,
    in a federation, the members that received its data)."""
    http = await _node(aiohttp_client, database, tmp_path)
    (archived,) = await _stored(http, _closed("2025-01-10", state="archived"))
    await _archived_on(http.app[ENGINE], archived, dt.date(2025, 3, 1))
    imported = await _archived_day(http.app[ENGINE], archived)
    settings = node_settings(database, tmp_path)
    system = await register_system(http, settings, ["consents:write", "episodes:write"])
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    url = f"/api/v1/episodes/{archived}"
    withdrawn = await http.post(f"{url}/consents/C1/withdraw", json={}, headers=auth)
    body = await withdrawn.json()
    assert withdrawn.status == 200, body
    assert body["changed"] is True
    async with http.app[ENGINE].connect() as connection:
        kept = (await http.app[EPISODES].get(connection, archived)).episode
    assert kept.state is EpisodeState.ARCHIVED and kept.consents[0].withdrawn_on is not None
    assert await _archived_day(http.app[ENGINE], archived) == imported  # its 6 years run on
    # Anything else is still refused.
    review = {"type": "review", "review": {"held_on": "2025-02-01", "tac_meeting_held": False}}
    changed = await http.post(f"{url}/events", json={"event": review}, headers=auth)
    assert changed.status == 409, await changed.text()


async def test_the_node_archives_in_the_background(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path, retention_interval_seconds=0.05)
    (due,) = await _stored(http, _closed("2024-01-15"))
    for _ in range(200):
        if await _state(http.app[ENGINE], due) == "archived":
            break
        await asyncio.sleep(0.05)
    assert await _state(http.app[ENGINE], due) == "archived"
    assert [subject for _, subject, _, _ in await _steps(http.app[ENGINE])] == [due]


async def test_a_list_of_what_is_due_after_a_purge_names_it_no_more(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    http = await _node(aiohttp_client, database, tmp_path)
    (old,) = await _stored(http, _closed("2019-06-01", state="archived"))
    engine, store = http.app[ENGINE], http.app[EPISODES]
    await _archived_on(engine, old, dt.date(2020, 6, 1))
    before = await due_by(engine, store, TODAY, frozenset(TimeRule))
    assert [item.episode_id for item in before.items] == [old]
    await _pass(http)
    after = await due_by(engine, store, TODAY, frozenset(TimeRule))
    assert after.items == [] and after.unreadable == []


@pytest.mark.parametrize("interval", [0, 3600])
async def test_a_pass_runs_at_start_unless_switched_off(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path, interval: int
) -> None:
    first = await _node(aiohttp_client, database, tmp_path)
    (due,) = await _stored(first, _closed("2024-01-15"))
    await first.close()
    second = await _node(aiohttp_client, database, tmp_path, retention_interval_seconds=interval)
    for _ in range(50):
        if await _state(second.app[ENGINE], due) == "archived":
            break
        await asyncio.sleep(0.04)
    assert await _state(second.app[ENGINE], due) == ("archived" if interval else "closed")


async def test_a_withdrawal_is_passed_back_along_the_chain_from_a_copy_purged_here(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Islington moved the episode to us, we moved it on to Hackney, and retention purged our copy
    7 years on. Hackney tells us statement C1 (on our copy) was withdrawn: we pass it back to
    Islington, as we did before the purge. C2, which Hackney recorded after the move, is not ours
    to pass on."""
    http = await _node(aiohttp_client, database, tmp_path)
    engine, store = http.app[ENGINE], http.app[EPISODES]
    (copy,) = await _stored(http, _fresh(episode(state="transferred")))
    await _moved_away(engine, copy, dt.datetime(2018, 1, 1, tzinfo=dt.UTC), direction="in")
    await _moved_away(engine, copy, dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
    async with engine.begin() as connection:  # `_moved_away` names Hackney: the first is Islington
        await connection.execute(
            transfers.update()
            .where(transfers.c.episode_id == copy, transfers.c.direction == "in")
            .values(counterpart=ISLINGTON)
        )
    assert (await _pass(http)).purged == [copy]
    sent = Outbox(engine, KeyRing.from_file(tmp_path / "keys.json"))
    for consent_id in ("C1", "C2"):
        async with engine.begin() as connection:
            await receive_withdrawal(connection, sent, store, HACKNEY, copy, consent_id)
    async with engine.connect() as connection:
        queued = (await connection.execute(select(outbox.c.recipient, outbox.c.kind))).all()
    assert [tuple(q) for q in queued] == [(ISLINGTON, "consent_withdrawn")]


def test_a_closure_is_not_dated_before_recorded_work() -> None:
    """Retention counts from the closure: one dated back would archive a live record early."""
    made = episode(reviews=[("2026-03-10", True, None)])  # assessed 5 Jan to 20 Feb 2026

    def closure(on: str) -> Any:
        body = {
            "type": "closure",
            "closure": {"closed_on": on, "outcome": "resolved_single_service"},
        }
        return EventBody.model_validate({"event": body}).event

    with pytest.raises(SchemaViolation) as caught:
        apply_event(made, closure("2026-03-09"))
    assert [(p.path, p.rule) for p in caught.value.problems] == [
        (("event", "closure", "closed_on"), "dates.closure_before_recorded_work")
    ]
    assert apply_event(made, closure("2026-03-10")).state is EpisodeState.CLOSED
    started = episode(completed=[None], reviews=[])  # an assessment started 5 Jan, not completed
    with pytest.raises(SchemaViolation):
        apply_event(started, closure("2026-01-04"))
    completed = episode(completed=["2026-02-20"], reviews=[])
    with pytest.raises(SchemaViolation):
        apply_event(completed, closure("2026-02-19"))
    # Work dated after today (a typo, a "no date" value) would block every closure: not counted.
    ahead = episode(reviews=[("9999-12-31", False, None)])
    assert apply_event(ahead, closure("2026-03-10")).state is EpisodeState.CLOSED


async def test_the_migration_counts_episodes_already_archived_from_their_last_change(
    database: Database,
) -> None:
    engine = create_engine(database.url, schema=database.schema)
    changed = dt.datetime(2021, 4, 1, 9, 30, tzinfo=dt.UTC)

    def upgrade_to(connection: Connection, revision: str) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_to, "0014")
            for episode_id, state in (("a", "archived"), ("c", "closed")):
                await connection.execute(
                    insert(episodes).values(
                        id=episode_id,
                        home_authority=MEMBER,
                        state=state,
                        source_format="national-json",
                        revision=3,
                        created_at=changed - dt.timedelta(days=400),
                        updated_at=changed,
                        key_id="k1",
                        document=b"sealed",
                    )
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(select(episodes.c.id, episodes.c.archived_at))
            found = {row.id: row.archived_at for row in rows}
    finally:
        await engine.dispose()
    assert found["c"] is None
    assert found["a"] is not None and aware_utc(found["a"]) == changed


def test_an_archived_episode_closed_on_no_day_is_never_purged() -> None:
    """A closure of 9999-12-31 (a legacy "no date" value) has no 7 years after it: nothing is due,
    however long ago the episode was archived, as a closed one with it is never archived."""
    made = _closed("9999-12-31", state="archived")
    assert due_items(made, archived_on=dt.date(2001, 1, 1)) == []
    steps = {TimeRule.ARCHIVE, TimeRule.PURGE}
    assert [d for d in due_items(_closed("9999-12-31")) if d.rule in steps] == []


async def test_an_episode_purged_and_stored_again_is_listed_as_it_is_now(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    """Stored again under its id after a purge, an episode is at revision 1 again: the list must
    not keep what it worked out for the purged one."""
    http = await _node(aiohttp_client, database, tmp_path)
    engine, store = http.app[ENGINE], http.app[EPISODES]
    made = _closed("2019-06-01", state="archived")
    (again,) = await _stored(http, made)
    await _archived_on(engine, again, dt.date(2020, 6, 1))
    assert [i.episode_id for i in (await due_by(engine, store, TODAY, _PURGE)).items] == [again]
    assert (await _pass(http)).purged == [again]
    await _stored(http, made)  # archived again today: 6 years to go
    assert (await due_by(engine, store, TODAY, _PURGE)).items == []
