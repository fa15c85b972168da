"""Between real nodes: the postcode a practitioner gives with an existence check sets apart a child
of the same name and birthday recorded at another postcode, and the holder records that it did."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.demo import plan_federation
from gateway.keys import ENGINE, EPISODES
from gateway.storage._tables import audit_entries
from schemas import Episode

from .nodes import CAMDEN, HACKNEY, Node, ask, existence_check, match_keys, running, seed


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    async with running(plan_federation(tmp_path, auto_approve_roles=("Health visitor",))) as nodes:
        yield nodes


def _copy(episode: dict[str, Any], child: dict[str, Any], **changes: Any) -> Episode:
    """`episode` under a new id (unless given), its child changed as `child` says."""
    document = copy.deepcopy(episode)
    document.update({"episode_id": str(uuid.uuid4()), **changes})
    kid = document["child"]
    kid["identifiers"].update(child.get("identifiers", {}))
    kid["address"]["postcode"] = child.get("postcode", kid["address"]["postcode"])
    return Episode.model_validate(document)


async def test_the_postcode_sets_apart_a_child_of_the_same_name_and_birthday(
    federation: dict[str, Node],
) -> None:
    camden, hackney = federation[CAMDEN], federation[HACKNEY]
    seeded = await seed(hackney)
    ours = Episode.model_validate(seeded)
    assert ours.child.address is not None and ours.child.address.postcode is not None
    # Another child of the same name and birthday, in another street, with another NHS number;
    # and the first child's earlier episode, closed, from before the family moved: the child is at
    # the postcode given if any of their records says so. (Its id sorts first, so its record, not
    # the current one, is the child's best match.)
    other = _copy(seeded, child={"identifiers": {"nhs_number": "4010232137"}, "postcode": "E8 1AA"})
    earlier = _copy(
        seeded,
        episode_id="00000000-0000-4000-8000-000000000001",
        child={"postcode": "N1 9GU"},
        state="closed",
        closure={"closed_on": "2025-01-31", "outcome": "moved_authority"},
    )
    assert hackney.runner is not None
    async with hackney.runner.app[ENGINE].begin() as connection:
        for episode in (other, earlier):
            await hackney.runner.app[EPISODES].add(connection, episode)

    keys = match_keys(seeded)
    unsure = await ask(camden, existence_check(seeded))
    assert unsure["answer"]["outcome"] == "ambiguous", unsure
    postcode = ours.child.address.postcode.lower().replace(" ", "")  # as typed in a hurry
    found = await ask(camden, existence_check(seeded, child={**keys, "postcode": postcode}))
    assert found["answer"]["outcome"] == "found", found
    assert found["answer"]["episode_ref"] == seeded["episode_id"]
    elsewhere = await ask(camden, existence_check(seeded, child={**keys, "postcode": "E8 1AA"}))
    assert elsewhere["answer"]["episode_ref"] == str(other.episode_id)

    rows = await hackney.engine_rows(
        select(audit_entries.c.subject, audit_entries.c.details).where(
            audit_entries.c.action == "federation.existence_check"
        )
    )
    said = [(r.subject, json.loads(r.details)) for r in rows]
    assert [(subject, d["answer"], d.get("settled_by")) for subject, d in said] == [
        (None, "ambiguous", None),
        (seeded["episode_id"], "found", "postcode"),
        (str(other.episode_id), "found", "postcode"),
    ]
