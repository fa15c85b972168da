"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.demo import plan_federation

from .nodes import Node, running


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    """The three demo boroughs, each a real node on its own SQLite file (a module needing other
    settings, such as auto-approval by role, defines its own)."""
    async with running(plan_federation(tmp_path)) as nodes:
        yield nodes
