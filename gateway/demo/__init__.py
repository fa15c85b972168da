"""A local federation on loopback, for `make demo` and the end-to-end tests: the operator's files,
three boroughs' keys, certificates and settings, generated on first run and reused after."""

from ._federation import (
    DEMO_BOROUGHS,
    DEMO_PASSWORD,
    Borough,
    NodePlan,
    free_port,
    plan_federation,
)

__all__ = [
    "DEMO_BOROUGHS",
    "DEMO_PASSWORD",
    "Borough",
    "NodePlan",
    "free_port",
    "plan_federation",
]
