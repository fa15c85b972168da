"""`make demo`'s federation, as a newcomer gets it: three processes, then the protocol's story."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.demo import DEMO_PASSWORD, free_port


def test_the_demo_runs_the_story_to_its_end(tmp_path: Path) -> None:
    for attempt in ("first run: everything generated", "second run: everything reused"):
        result = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "demo",
                "run",
                "--root",
                str(tmp_path),
                "--scenario",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"{attempt}: {result.stdout[-3000:]} {result.stderr[-3000:]}"
        for step in ("found", "consent_excluded", "permitted", "marked withdrawn", "read-only"):
            assert step in " ".join(result.stdout.split()), f"{attempt}: {step!r} missing"
        # The lead contacts' console, and how to sign in to it, for each borough.
        assert result.stdout.count("/console/") == 3 and DEMO_PASSWORD in result.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"federation", "camden", "hackney", "islington"}
    # Each borough's demo services were loaded once (the second run reused them).
    for borough in ("camden", "hackney", "islington"):
        with sqlite3.connect(tmp_path / borough / "node.sqlite3") as connection:
            (services,) = connection.execute("SELECT count(*) FROM directory_services").fetchone()
            (generation,) = connection.execute(
                "SELECT generation FROM directory_generation"
            ).fetchone()
        assert (services, generation) == (300, 1), borough
    assert "directory/services?scope=federation" in result.stdout.replace("\n", "")


def test_ports_planned_for_later_are_distinct_and_below_the_ephemeral_range() -> None:
    """A planned node binds its ports later; one from the kernel's ephemeral range could meanwhile
    be taken as the source port of any outgoing connection (seen: EADDRINUSE at a node's start)."""
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= port < floor for port in ports)
