"""`make demo`'s federation, as a newcomer gets it: three processes, then the protocol's story."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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
        steps = ("found", "consent_excluded", "permitted", "marked withdrawn", "read-only")
        for step in (*steps, "Subject access"):
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


def _cafx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_scenario_and_a_token_need_the_demo_running(tmp_path: Path) -> None:
    for command in (("scenario",), ("token", "camden")):
        result = _cafx("demo", *command, "--root", str(tmp_path / "demo"))
        assert result.returncode == 2, result.stderr
        said = " ".join((result.stdout + result.stderr).split())
        assert "no demo federation" in said and "make demo" in said and "Traceback" not in said
    assert not (tmp_path / "demo").exists()  # nothing generated where it was not asked for


def test_a_demo_stopped_by_sigterm_stops_its_nodes(tmp_path: Path) -> None:
    """SIGTERM (a service manager, a closed terminal's SIGHUP alike) stops the nodes with the demo;
    meanwhile a token can be had, and a second demo on the same ports is refused."""
    root = str(tmp_path)
    with subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "gateway.cli", "demo", "run", "--root", root],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        try:
            assert demo.stdout is not None
            said = ""
            deadline = time.monotonic() + 180
            while "Ctrl-C stops the nodes" not in said and time.monotonic() < deadline:
                line = demo.stdout.readline()
                assert line, f"the demo ended: {said[-2000:]}"
                said += line
            url = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1", said)
            assert url is not None, said

            token = _cafx("demo", "token", "camden", "--root", root)
            assert token.returncode == 0, token.stderr
            assert token.stdout.strip().count(".") == 2  # a JWT, and nothing else on stdout

            second = _cafx("demo", "run", "--root", root)
            assert second.returncode == 1
            assert "already answers" in " ".join(second.stdout.split())

            demo.send_signal(signal.SIGTERM)
            assert demo.wait(timeout=60) == 0
            assert "the nodes are stopped" in demo.stdout.read()
        finally:
            if demo.poll() is None:
                demo.kill()
    with pytest.raises(urllib.error.URLError):  # nobody answers on the node's port any more
        urllib.request.urlopen(url.group(1) + "/healthz", timeout=5)  # noqa: S310 - loopback
