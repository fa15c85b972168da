"""The demo boroughs' Family Information Service records: a few hundred generated services each
(seeded, so every demo has the same ones), loaded into the node's database on the first run."""

from __future__ import annotations

from directory.services import generate_services, read_services

from ..service_directory import generation, save_services
from ..storage import create_engine, upgrade
from ._federation import NodePlan

__all__ = ["DEMO_SERVICES", "ensure_services"]

DEMO_SERVICES = 300  # per borough


async def ensure_services(plan: NodePlan, count: int = DEMO_SERVICES) -> int:
    """Load the borough's demo services unless its directory has had an import; how many loaded."""
    engine = create_engine(plan.settings.database_url, schema=plan.settings.database_schema)
    try:
        await upgrade(engine)
        if await generation(engine) > 0:
            return 0
        borough = plan.borough
        accepted, rejected = read_services(generate_services(borough.gss, borough.name, count))
        if rejected:  # the generator's own output: a fault here is a bug, not bad input
            raise RuntimeError(f"demo services rejected: {rejected[0].problems[0]}")
        await save_services(engine, borough.gss, accepted)
        return len(accepted)
    finally:
        await engine.dispose()
