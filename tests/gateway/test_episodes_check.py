"""An episode stored before a rule was added, which that rule now refuses, on SQLite and PostgreSQL:
`cafx episodes check` names it and the rule (exit 1), and the list of what is due leaves it out,
named, rather than failing for every episode."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from pytest_aiohttp import AiohttpClient
from sqlalchemy import update

from gateway.app import create_app
from gateway.cli import cli
from gateway.keys import ENGINE, KEY_RING
from gateway.protection import associated_data, seal
from gateway.storage._tables import episodes

from ..adapters.facts import EXAMPLES
from ..conftest import Database
from .node import cli_env, node_settings, register_system

FORMS = [EXAMPLES / "ecaf-xml-v3" / f"ecaf-xml-v3-101-{n}.xml" for n in (0, 1)]


async def _stored(http: TestClient[Any, Any], auth: dict[str, str]) -> list[str]:
    ids = []
    for form in FORMS:
        answer = await http.post("/api/v1/forms", data=form.read_bytes(), headers=auth)
        assert answer.status == 201, await answer.text()
        ids += (await answer.json())["episode_ids"]
    return ids


async def test_an_episode_a_new_rule_refuses_is_found_and_set_aside(
    aiohttp_client: AiohttpClient, database: Database, tmp_path: Path
) -> None:
    settings = node_settings(database, tmp_path)
    http = await aiohttp_client(create_app(settings))
    system = await register_system(http, settings, ["episodes:read", "episodes:write"])
    auth = {"Authorization": f"Bearer {await system.token(http)}"}
    broken, fine = await _stored(http, auth)

    # As if stored by an earlier release: a consent id with a control character, sealed as such.
    document = await (await http.get(f"/api/v1/episodes/{broken}", headers=auth)).json()
    document["consents"][0]["consent_id"] = "C1\x1b"
    sealed = seal(
        json.dumps(document).encode(),
        http.app[KEY_RING],
        associated_data("episodes", broken, "document"),
    )
    async with http.app[ENGINE].begin() as connection:
        await connection.execute(
            update(episodes)
            .where(episodes.c.id == broken)
            .values(document=sealed.to_bytes(), key_id=sealed.key_id)
        )

    due = await http.get("/api/v1/overdue?as_of=2099-01-01", headers=auth)
    listed = await due.json()
    assert due.status == 200, listed
    assert listed["unreadable"] == [broken]
    assert {i["episode_id"] for i in listed["items"]} == {fine}

    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["episodes", "check"], env=cli_env(settings)
    )
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"{broken}: /consents/0/consent_id text.control_characters"
    ]
    assert "C1" not in result.output  # ids and rules only, never a value
