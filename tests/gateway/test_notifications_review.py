"""Notifications after review (DESIGN 3.6, `gateway/federation/notifications.py`): the newest change
of lead professional is the current one whatever order the updates arrive in, and a member is told
about an episode only by the member this node knows holds it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from joserfc.jwk import OKPKey
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import FederationRefused, NotFound, SchemaViolation
from gateway.federation.custody import sign_step
from gateway.federation.notifications import Notifications
from gateway.federation.outbox import Message
from gateway.protection import KeyRing
from gateway.storage._tables import episodes, notifications, received_copies, transfers

CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"
EPISODE = "6f1c2b9e-0d5c-4a53-9a59-0c3f1f7f2a10"
CHANGED = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


def _lead(name: str, authority: str = HACKNEY) -> dict[str, Any]:
    return {
        "name": name,
        "organisation": "Family Hub",
        "agency_type": "early_help",
        "authority": authority,
    }


def _told(holder: str = HACKNEY, **changes: Any) -> dict[str, Any]:
    return {"episode_ref": EPISODE, "holder": holder, "practitioner": _lead("Lead A"), **changes}


async def _receive(kept: Notifications, engine: AsyncEngine, sender: str, message: Message) -> None:
    async with engine.begin() as connection:
        await kept.receive(connection, sender, message)


async def _listed(kept: Notifications, engine: AsyncEngine, **query: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        return await kept.listed(connection, **query)


# --- 1. the newest change wins, whatever order it arrives in ------------------------------------


async def test_an_older_update_arriving_late_does_not_become_the_current_lead(
    engine: AsyncEngine,
) -> None:
    """Each outbox message backs off on its own: after one failed send, update A (made first) can
    arrive after B. The borough system reads the list oldest change first, and A says it was
    superseded; before, the list went by arrival and A, listed last, read as current."""
    kept = Notifications(KeyRing.generate())
    a_at, b_at = CHANGED, CHANGED + dt.timedelta(minutes=5)
    b = _told(practitioner=_lead("Lead B"), changed_at=b_at.isoformat(), revision=3)
    a = _told(practitioner=_lead("Lead A"), changed_at=a_at.isoformat(), revision=2)
    await _receive(kept, engine, HACKNEY, Message("m-b", "lead_professional_update", b))
    await _receive(kept, engine, HACKNEY, Message("m-a", "lead_professional_update", a))

    listed = await _listed(kept, engine, episode_ref=EPISODE)
    assert [n["practitioner"]["name"] for n in listed] == ["Lead A", "Lead B"]
    assert [n["changed_at"] for n in listed] == [a_at.isoformat(), b_at.isoformat()]
    assert [n["superseded"] for n in listed] == [True, False]
    assert listed[0]["received_at"] > listed[1]["received_at"]  # A did arrive last
    # A poll that started after B sees only A, and is told A is not current.
    (late,) = await _listed(kept, engine, since=dt.datetime.fromisoformat(listed[1]["received_at"]))
    assert late["practitioner"]["name"] == "Lead A" and late["superseded"] is True


async def test_a_tac_notification_is_never_superseded(engine: AsyncEngine) -> None:
    kept = Notifications(KeyRing.generate())
    for n, minutes in enumerate((5, 0)):
        at = (CHANGED + dt.timedelta(minutes=minutes)).isoformat()
        message = Message(f"m{n}", "tac_notification", _told(changed_at=at))
        await _receive(kept, engine, HACKNEY, message)
    listed = await _listed(kept, engine)
    assert [n["superseded"] for n in listed] == [False, False]
    assert listed[0]["changed_at"] < listed[1]["changed_at"]


async def test_a_body_from_an_older_node_is_dated_when_it_was_received(
    engine: AsyncEngine,
) -> None:
    kept = Notifications(KeyRing.generate())
    await _receive(kept, engine, HACKNEY, Message("m1", "lead_professional_update", _told()))
    (listed,) = await _listed(kept, engine)
    assert listed["changed_at"] == listed["received_at"]
    assert listed["superseded"] is False


@pytest.mark.parametrize(
    "changes",
    [
        {"changed_at": "2026-12-07T09:00:00"},  # no time zone
        {"changed_at": "yesterday"},
        {"changed_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()},  # ahead
        {"revision": 0},
    ],
    ids=["naive", "not-a-date", "ahead", "revision-0"],
)
async def test_a_bad_time_of_change_is_refused_and_nothing_kept(
    engine: AsyncEngine, changes: dict[str, Any]
) -> None:
    kept = Notifications(KeyRing.generate())
    message = Message("m1", "lead_professional_update", _told(**changes))
    with pytest.raises(SchemaViolation):
        await _receive(kept, engine, HACKNEY, message)
    assert await _listed(kept, engine) == []


# --- 2. only the member known to hold the episode tells about it --------------------------------


async def _kept_senders(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(notifications.c.sender))
        return sorted(r.sender for r in rows)


async def test_only_the_member_that_told_first_tells_again(engine: AsyncEngine) -> None:
    """With no record of the episode, the first word is kept and marked unverified (a TAC member's
    borough usually learns of an episode this way); from then on another member is refused."""
    kept = Notifications(KeyRing.generate())
    await _receive(kept, engine, HACKNEY, Message("m1", "tac_notification", _told()))
    await _receive(kept, engine, HACKNEY, Message("m2", "lead_professional_update", _told()))
    with pytest.raises(NotFound) as refused:
        await _receive(
            kept, engine, CAMDEN, Message("m3", "lead_professional_update", _told(CAMDEN))
        )
    assert "Lead" not in refused.value.message and EPISODE not in refused.value.message
    assert await _kept_senders(engine) == [HACKNEY, HACKNEY]
    listed = await _listed(kept, engine)
    assert [n["holder_verified"] for n in listed] == [False, True]


async def _record(engine: AsyncEngine, source: str) -> str:
    """What this node stores that names the episode's holder; returns that holder."""
    now = dt.datetime.now(dt.UTC)
    episode = {
        "id": EPISODE,
        "source_format": "national-json",
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "key_id": "k",
        "document": b"not read",
    }
    async with engine.begin() as connection:
        if source == "our-copy":  # we hold it: nobody else tells us about it
            await connection.execute(
                insert(episodes).values(home_authority=ISLINGTON, state="open", **episode)
            )
            return ISLINGTON
        if source == "received-copy":  # Camden disclosed from it
            await connection.execute(
                insert(received_copies).values(
                    id="c1",
                    request_id="r1",
                    holder=CAMDEN,
                    episode_ref=EPISODE,
                    basis="C1",
                    received_at=now,
                    key_id="k",
                    sealed=b"not read",
                )
            )
            return CAMDEN
        # we moved it to Camden: our copy is read-only
        await connection.execute(
            insert(episodes).values(home_authority=ISLINGTON, state="transferred", **episode)
        )
        await connection.execute(
            insert(transfers).values(
                id="o1",
                direction="out",
                episode_id=EPISODE,
                counterpart=CAMDEN,
                state="committed",
                created_at=now,
                updated_at=now,
            )
        )
        return CAMDEN


@pytest.mark.parametrize("source", ["our-copy", "received-copy", "moved-away"])
async def test_the_holder_is_the_one_this_nodes_records_name(
    engine: AsyncEngine, source: str
) -> None:
    holder = await _record(engine, source)
    kept = Notifications(KeyRing.generate())
    with pytest.raises(NotFound):  # Hackney never held it, as far as we know
        await _receive(kept, engine, HACKNEY, Message("m1", "lead_professional_update", _told()))
    if holder == CAMDEN:
        told = Message("m2", "lead_professional_update", _told(CAMDEN))
        await _receive(kept, engine, CAMDEN, told)
        (listed,) = await _listed(kept, engine)
        assert listed["from"] == CAMDEN and listed["holder_verified"] is True
    else:
        assert await _listed(kept, engine) == []


def _key(member: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": f"{member}-1"}, private=True)


KEYS = {m: _key(m) for m in (CAMDEN, HACKNEY, ISLINGTON)}


def key_for(member: str, kid: str, at: dt.datetime) -> OKPKey:
    if kid != f"{member}-1" or member not in KEYS:
        raise FederationRefused("no such key", code="invalid_signature")
    return KEYS[member]


def _step(signer: str, sender: str, receiver: str) -> str:
    return sign_step(
        KEYS[signer],
        episode_ref=EPISODE,
        sender=sender,
        receiver=receiver,
        offer_id="o1",
        committed_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )


@pytest.mark.parametrize(
    ("custody", "accepted"),
    [
        ([_step(HACKNEY, HACKNEY, CAMDEN)], True),  # Hackney moved it to Camden
        ([_step(CAMDEN, HACKNEY, CAMDEN)], False),  # Camden's own word that it came to it
        ([], False),
    ],
    ids=["signed-by-the-holder", "forged", "none"],
)
async def test_a_new_holder_shows_the_signed_steps_that_moved_the_episode_to_it(
    engine: AsyncEngine, custody: list[str], accepted: bool
) -> None:
    kept = Notifications(KeyRing.generate(), key_for=key_for)
    await _receive(kept, engine, HACKNEY, Message("m1", "tac_notification", _told()))
    moved = Message("m2", "lead_professional_update", _told(CAMDEN, custody=custody))
    if accepted:
        await _receive(kept, engine, CAMDEN, moved)
        assert (await _listed(kept, engine))[-1]["holder_verified"] is True
        # From then on Camden is the holder we know; Hackney's copy is read-only.
        with pytest.raises(NotFound):
            await _receive(kept, engine, HACKNEY, Message("m3", "tac_notification", _told()))
    else:
        with pytest.raises(NotFound):
            await _receive(kept, engine, CAMDEN, moved)
        assert await _kept_senders(engine) == [HACKNEY]


async def test_without_the_federation_keys_a_move_is_not_taken_on_trust(
    engine: AsyncEngine,
) -> None:
    kept = Notifications(KeyRing.generate())
    await _receive(kept, engine, HACKNEY, Message("m1", "tac_notification", _told()))
    custody = [_step(HACKNEY, HACKNEY, CAMDEN)]
    with pytest.raises(NotFound):
        await _receive(
            kept, engine, CAMDEN, Message("m2", "tac_notification", _told(CAMDEN, custody=custody))
        )
