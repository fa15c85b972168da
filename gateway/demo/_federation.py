"""Planning a local federation: operator state, member certificates and keys, node settings."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..federation.operator import Layout, add_lead_contact, add_member, init, load_state, sign
from ..protection import KeyRing, write_keyfile
from ..settings import Settings

__all__ = [
    "DEMO_BOROUGHS",
    "DEMO_PASSWORD",
    "Borough",
    "NodePlan",
    "free_port",
    "plan_federation",
]

# The built-in identity provider's one password for every demo user (the console's sign-in).
DEMO_PASSWORD = "london-caf-demo"  # noqa: S105 - a published demo credential, not a secret


@dataclass(frozen=True, slots=True)
class Borough:
    gss: str
    name: str
    short: str

    def lead_contacts(self) -> list[str]:
        return [f"{self.short}-lead-1", f"{self.short}-lead-2"]


DEMO_BOROUGHS = (
    Borough("E09000007", "Camden", "camden"),
    Borough("E09000012", "Hackney", "hackney"),
    Borough("E09000019", "Islington", "islington"),
)


@dataclass(frozen=True, slots=True)
class NodePlan:
    borough: Borough
    folder: Path
    settings: Settings

    @property
    def api_url(self) -> str:
        return self.settings.public_url


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port for a listener started later, free now and not handed out before by this
    process. Chosen below the kernel's ephemeral range: a port from bind(0) lies inside it, where
    any outgoing connection may take it as its source port before the listener binds (tests met
    EADDRINUSE so, starting a node planned a moment earlier)."""
    floor = _ephemeral_floor()
    tries = 100 if floor - _LOWEST > 1_000 else 0  # no room below the range: the kernel's choice
    for _ in range(tries):
        port = _LOWEST + secrets.randbelow(floor - _LOWEST)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ports(folder: Path) -> dict[str, int]:
    """The node's two ports, chosen once and kept (they are in the signed metadata)."""
    record = folder / "ports.json"
    if record.exists():
        ports: dict[str, int] = json.loads(record.read_text(encoding="utf-8"))
        return ports
    ports = {"api": free_port(), "federation": free_port()}
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(ports), encoding="utf-8")
    return ports


DatabaseFor = Callable[[Borough, Path], tuple[str, str | None]]  # -> (url, schema)


def _sqlite(borough: Borough, folder: Path) -> tuple[str, str | None]:
    return f"sqlite+aiosqlite:///{folder / 'node.sqlite3'}", None


def plan_federation(
    root: Path,
    boroughs: tuple[Borough, ...] = DEMO_BOROUGHS,
    *,
    database: DatabaseFor = _sqlite,
    metadata_validity: dt.timedelta = dt.timedelta(days=7),
    auto_approve_roles: tuple[str, ...] = (),
) -> list[NodePlan]:
    """Create (or reuse) the operator's files and each borough's node; sign fresh metadata."""
    operator = root / "federation"
    layout = Layout(operator)
    if not layout.state.exists():
        init(operator, "London CAF federation (local)")
    known = {member.id for member in load_state(layout).members}
    plans = []
    for borough in boroughs:
        folder = root / borough.short
        ports = _ports(folder)
        if borough.gss not in known:
            add_member(
                operator, borough.gss, f"https://127.0.0.1:{ports['federation']}", borough.name
            )
            for number, contact in enumerate(borough.lead_contacts(), start=1):
                add_lead_contact(
                    operator,
                    borough.gss,
                    contact,
                    f"Lead CAF contact {number}, {borough.name}",
                    "Lead CAF contact",
                    f"lead{number}@{borough.short}.example",
                    f"020 7000 000{number}",
                )
        keys = folder / "data-keys.json"
        if not keys.exists():
            write_keyfile(keys, KeyRing.generate())
        member = layout.member(borough.gss)
        url, schema = database(borough, folder)
        settings = Settings(
            member_id=borough.gss,
            database_url=url,
            database_schema=schema,
            port=ports["api"],
            public_url=f"http://127.0.0.1:{ports['api']}",
            keyfile=keys,
            signing_key_file=member / "signing-key.json",
            federation_metadata=str(layout.metadata),
            operator_public_key_file=layout.operator_public,
            federation_port=ports["federation"],
            federation_public_url=f"https://127.0.0.1:{ports['federation']}",
            tls_cert_file=member / "tls.crt",
            tls_key_file=member / "tls.key",
            ca_file=layout.ca_cert,
            metadata_poll_seconds=2,
            outbox_interval_seconds=0.2,
            auto_approve_existence_roles=list(auto_approve_roles),
            auto_approver=borough.lead_contacts()[0] if auto_approve_roles else None,
            console_dev_provider=True,
            console_dev_password=DEMO_PASSWORD,
        )
        plans.append(NodePlan(borough, folder, settings))
    sign(operator, validity=metadata_validity)
    return plans
