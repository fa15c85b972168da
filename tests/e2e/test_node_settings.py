"""Settings a node takes from its configuration reach the parts that use them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from gateway.demo import plan_federation
from gateway.keys import OUTBOX

from .nodes import running


async def test_a_nodes_outbox_gives_up_when_its_settings_say(tmp_path: Path) -> None:
    plans = plan_federation(tmp_path)
    settings = plans[0].settings.model_copy(update={"outbox_delivery_deadline_hours": 6.5})
    plans[0] = dataclasses.replace(plans[0], settings=settings)
    async with running(plans) as nodes:
        node = nodes[plans[0].borough.gss]
        assert node.runner is not None
        assert node.runner.app[OUTBOX].deadline == dt.timedelta(hours=6.5)
