"""`cafx adapt` stopped by SIGTERM or SIGINT: its temporaries removed, exit 128 + the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters import get_adapter
from gateway.cli import cli
from gateway.cli._adapt._signals import Interrupted, interruptible, raise_if_stopped

from ..adapters.facts import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]


def _register(tmp_path: Path, copies: int) -> Path:
    csv = get_adapter("caf-register-csv")
    rows = csv.to_national(
        (EXAMPLES / "caf-register-csv" / "register-101.csv").read_bytes()
    ).episodes
    many = [e.model_copy(update={"local_ref": f"CAF-{n}"}) for n in range(copies) for e in rows]
    big = tmp_path / "big.csv"
    big.write_bytes(csv.from_national(many))
    return big


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signal_mid_run_leaves_no_temporaries(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """A large register written one eCAF file per episode: its results are temporaries until the
    run's end. Stopped once the first appears, the run removes them all and says why it ended."""
    big = _register(tmp_path, 3000)  # 9,000 episodes: seconds of writing, stopped at the first
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "adapt"]
    run = subprocess.Popen(  # noqa: S603  # fixed arguments, our own interpreter
        [*command, "--to", "ecaf-xml-v3", "--out", str(out), str(big)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and any(out.iterdir())):
            assert run.poll() is None, "the run ended before writing anything"
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.005)
        run.send_signal(signum)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # How it ended first: a run that finished before the signal came says so here, not as a
    # directory of results.
    assert run.returncode == code, err.decode(errors="replace")
    assert f"interrupted by {signum.name}" in err.decode()
    assert list(out.rglob("*")) == []  # no temporary, and nothing half written


def test_the_handlers_are_put_back_and_a_second_signal_waits_for_the_cleanup() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = False
    with pytest.raises(Interrupted) as caught, interruptible():
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            signal.raise_signal(signal.SIGINT)  # ignored: the cleanup goes on
            cleaned = True
    assert cleaned
    assert (caught.value.code, caught.value.signal) == (143, signal.SIGTERM)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_run_that_ends_puts_the_handlers_back(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    source = EXAMPLES / "ecaf-xml-v3" / "ecaf-xml-v3-101-0.xml"
    result = CliRunner().invoke(cli, ["adapt", "--out", str(tmp_path / "out"), str(source)])
    assert result.exit_code == 0, result.stderr
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_whose_exception_was_swallowed_still_stops_the_run() -> None:
    """Code called back from C can swallow the handler's exception (pydantic-core's union
    serializer takes it for a member that did not fit). Seen: a run that went on to the end and
    exited 0. The next safe point raises it again; outside a run nothing is pending."""
    with pytest.raises(Interrupted) as caught, interruptible():
        try:
            signal.raise_signal(signal.SIGINT)
        except Interrupted:
            pass  # swallowed where it was raised
        raise_if_stopped()
    assert caught.value.signal is signal.SIGINT
    raise_if_stopped()  # the run is over: nothing left to raise
