"""Federation throughput: disclosures per second over the full London-protocol path between two nodes
on this machine, beside a plain pair of aiohttp processes measured in the same run.

The holder (Hackney) runs as its own `cafx serve` process, on SQLite and then on PostgreSQL, seeded
with the demo eCAF form (whose consent lets health see the assessments). The caller (Camden) is this
process, using the node's own transport client (`FederationClient` over a `FederationConnector`
session: keep-alive mutual TLS 1.3). Each disclosure is the whole path: TLS, RFC 9421 signature and
digest both ways, the CAF-Attestation check (one attestation, reused; every request still carries its
own nonce, so the replay check runs every time), consent, decryption of the episode, the audit entry,
the register row and the signed receipt. Every answer must be 200 with outcome "disclosed".

The baseline is the same kind of client session (same TLS contexts, same connector, same connection
limit) calling a plain aiohttp process with the federation's server TLS context that answers a small
JSON document to every POST: what two aiohttp processes on this machine do with no protocol at all.

Measured: closed loop at a few concurrency levels over a bounded number of requests (throughput and
latency), and an open loop at 500 requests/s offered (latency measured from each request's scheduled
time, so a stalled server is not hidden by the client waiting for it). A SQLite holder past its
capacity answers `503 busy` to a request that waited 20 s for its one database connection: such
answers are counted as turned away, apart from failures, and reported with the open loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from directory.members import MetadataSource, load_public_key
from gateway.demo import NodePlan
from gateway.federation.attestation import (
    ATTESTATION_HEADER,
    issue_attestation,
    subject_for_episode,
)
from gateway.federation.transport import FederationClient, client_context
from gateway.federation.transport.client import FederationConnector
from gateway.signing import load_signing_key

from ._nodes import echo_server, holder_node, plan_pair, postgres_schema, postgres_unreachable
from ._report import Figure

CONCURRENCY = (8, 32)  # closed-loop levels; the latency figures are taken at the first
REQUESTS = 3_000  # per closed-loop run
WARMUP = 300
OPEN_RATE = 500.0  # requests/s offered in the open-loop run
OPEN_SECONDS = 5.0
BASELINE_REPEAT = 2  # the baseline is quick: keep the best of two runs per level
TIMEOUT = 60.0  # per request (the open loop queues when the holder falls behind)
FEDERATION_PATH = "/federation/v1"
PURPOSE = "early_help"
SECTIONS = ["assessments"]
TARGET_RATE = 1_000.0
TARGET_SHARE = 0.15
TARGET_P99_MS = 50.0
BASELINE = "aiohttp_mtls_pair"

Call = Callable[[], Awaitable[None]]  # one request; raises Failed (or anything) when it failed


class Failed(Exception):
    """An answer that is not the one the benchmark asked for."""


class Shed(Exception):
    """`503 busy`: the holder, past what it can serve, turned the request away after its wait for a
    database connection ran out (load shedding by design, counted apart from failures)."""


@dataclass
class Run:
    """One measured run: successful latencies (seconds), failures, wall time, CPU time used."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None
    shed: int = 0  # answered 503 busy
    connections: int = 0  # TLS connections opened during the run
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def ms(self, quantile: float) -> float:
        """Nearest-rank percentile of the successful requests, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(quantile * len(ordered)))
        return ordered[rank - 1] * 1000.0

    async def attempt(self, call: Call, since: float) -> None:
        """Make one request; its latency from `since` if it succeeded, else count how it did not."""
        try:
            await call()
        except Shed:
            self.shed += 1
        except Exception as error:  # every failure is counted, and reported
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = f"{type(error).__name__}: {error}"[:200]
        else:
            self.latencies.append(time.perf_counter() - since)

    def summary(self) -> str:
        done = len(self.latencies)
        text = (
            f"{self.rate:,.0f}/s p50 {self.ms(0.5):.1f} ms p99 {self.ms(0.99):.1f} ms "
            f"({done} ok, {self.failures} failed, {self.shed} shed, "
            f"{self.connections} connections opened"
        )
        if done:
            text += f", CPU/request: client {self.client_cpu / done * 1000:.2f} ms"
            if self.server_cpu:
                text += f", server {self.server_cpu / done * 1000:.2f} ms"
        return text + ")"


def _process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks
    except (OSError, IndexError, ValueError):
        return 0.0


class Counter:
    """Counts new connections of a session (to show they are reused)."""

    def __init__(self) -> None:
        self.opened = 0
        self.trace = aiohttp.TraceConfig()
        self.trace.on_connection_create_end.append(self._created)

    async def _created(self, *_: Any) -> None:
        self.opened += 1


def _session(plan: NodePlan, counter: Counter) -> aiohttp.ClientSession:
    """`federation_session` (mutual TLS client context, member check on every connection), with a
    connection limit for the highest concurrency and a connection counter."""
    settings = plan.settings
    assert settings.tls_cert_file and settings.tls_key_file and settings.ca_file  # noqa: S101
    context = client_context(settings.tls_cert_file, settings.tls_key_file, settings.ca_file)
    return aiohttp.ClientSession(
        connector=FederationConnector(ssl=context, limit_per_host=max(CONCURRENCY)),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        trust_env=False,
        trace_configs=[counter.trace],
    )


async def _measured(
    work: Callable[[Run], Awaitable[None]], counter: Counter, server_pid: int | None
) -> Run:
    run = Run()
    opened, client, server = counter.opened, time.process_time(), _process_cpu(server_pid)
    started = time.perf_counter()
    await work(run)
    run.seconds = time.perf_counter() - started
    run.client_cpu = time.process_time() - client
    run.server_cpu = _process_cpu(server_pid) - server
    run.connections = counter.opened - opened
    return run


async def closed_loop(
    call: Call, total: int, concurrency: int, counter: Counter, server_pid: int | None = None
) -> Run:
    """`concurrency` workers, each sending its next request as soon as the last is answered."""

    async def work(run: Run) -> None:
        remaining = iter(range(total))

        async def worker() -> None:
            for _ in remaining:
                await run.attempt(call, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    return await _measured(work, counter, server_pid)


async def open_loop(
    call: Call, rate: float, seconds: float, counter: Counter, server_pid: int | None = None
) -> Run:
    """Requests sent on a fixed schedule whatever the answers do; each latency counts from the
    request's scheduled time (no coordinated omission)."""

    async def work(run: Run) -> None:
        total = int(rate * seconds)
        start = time.perf_counter()

        tasks = []
        sent = 0
        while sent < total:
            now = time.perf_counter()
            while sent < total and start + sent / rate <= now:  # catch up after a late wake-up
                tasks.append(asyncio.create_task(run.attempt(call, start + sent / rate)))
                sent += 1
            if sent < total:
                await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        await asyncio.gather(*tasks)

    return await _measured(work, counter, server_pid)


@dataclass
class Measured:
    levels: dict[int, Run]
    open: Run
    runs: list[Run]  # every run, warm-up included
    connections: int  # opened in all

    @property
    def best(self) -> Run:
        return max(self.levels.values(), key=lambda run: run.rate)

    def levels_text(self) -> str:
        return ", ".join(f"c={c}: {r.rate:,.0f}/s" for c, r in self.levels.items())

    @property
    def requests(self) -> int:
        return sum(len(r.latencies) + r.failures + r.shed for r in self.runs)

    def failures(self) -> tuple[int, str | None]:
        first = next((r.first_failure for r in self.runs if r.first_failure), None)
        return sum(r.failures for r in self.runs), first


async def _measure(
    call: Call, counter: Counter, server_pid: int | None, label: str, repeat: int = 1
) -> Measured:
    # Warm-up: connections opened, caches and the holder's SQLite pages filled.
    runs = [await closed_loop(call, WARMUP, CONCURRENCY[0], counter)]
    levels: dict[int, Run] = {}
    for concurrency in CONCURRENCY:
        for _ in range(repeat):
            run = await closed_loop(call, REQUESTS, concurrency, counter, server_pid)
            runs.append(run)
            print(f"  {label} closed loop c={concurrency}: {run.summary()}", flush=True)
            if concurrency not in levels or run.rate > levels[concurrency].rate:
                levels[concurrency] = run
    opened = await open_loop(call, OPEN_RATE, OPEN_SECONDS, counter, server_pid)
    runs.append(opened)
    print(f"  {label} open loop {OPEN_RATE:.0f}/s offered: {opened.summary()}", flush=True)
    return Measured(levels, opened, runs, counter.opened)


# --- the two sides ----------------------------------------------------------------------------


def _disclosure_body(episode_id: str) -> dict[str, Any]:
    return {"episode_ref": episode_id, "purpose": PURPOSE, "sections": SECTIONS}


async def _baseline(caller: NodePlan, holder: NodePlan, folder: Path) -> Measured:
    """The plain pair: the same client session kind (the caller's certificate) against the echo
    process (the holder's certificate)."""
    counter = Counter()
    async with echo_server(holder, folder) as (base, process), _session(caller, counter) as session:
        url = base + FEDERATION_PATH + "/disclosures"
        body = json.dumps(_disclosure_body("00000000-0000-0000-0000-000000000000")).encode()
        headers = {"Content-Type": "application/json"}

        async def call() -> None:
            async with session.post(url, data=body, headers=headers) as reply:
                answer = await reply.json()
                if reply.status != 200 or answer.get("outcome") != "ok":
                    raise Failed(f"{reply.status}")

        return await _measure(call, counter, process.pid, "baseline", BASELINE_REPEAT)


async def _disclosures(root: Path, schema: str | None) -> Measured:
    """Camden (this process) asks the Hackney process for disclosures."""
    camden, hackney = plan_pair(root, schema)
    settings = camden.settings
    assert settings.federation_metadata and settings.operator_public_key_file  # noqa: S101
    assert settings.signing_key_file  # noqa: S101
    source = MetadataSource(
        settings.federation_metadata, load_public_key(settings.operator_public_key_file)
    )
    await source.refresh()

    def key_for(member: str, kid: str, at: dt.datetime) -> Any:
        return source.current().key_for(member, kid, at)

    def endpoint(member: str) -> str:
        return source.current().active(member).endpoint.rstrip("/") + FEDERATION_PATH

    signing_key = load_signing_key(settings.signing_key_file)
    me, recipient = camden.borough.gss, hackney.borough.gss
    counter = Counter()
    async with holder_node(hackney) as holder, _session(camden, counter) as session:
        client = FederationClient(
            session,
            me=me,
            signing_key=signing_key,
            keyid=signing_key.kid or "",
            endpoints=endpoint,
            response_keys=key_for,
        )
        attestation = issue_attestation(
            signing_key,
            issuer=me,
            audience=recipient,
            practitioner={
                "id": f"{me}-hv-1",
                "name": "Benchmark Health Visitor",
                "role": "Health visitor",
                "agency": f"{camden.borough.name} health visiting",
                "agency_type": "health",
            },
            purpose=PURPOSE,
            reason="benchmark: the family has moved into our area",
            subject=subject_for_episode(holder.episode_id),
            approved_by=camden.borough.lead_contacts()[0],
        )
        body = _disclosure_body(holder.episode_id)
        headers = {ATTESTATION_HEADER: attestation}

        async def call() -> None:
            reply = await client.post(recipient, "/disclosures", body, headers=headers)
            answer = reply.body if isinstance(reply.body, dict) else {}
            if reply.status == 503 and answer.get("error") == "busy":
                raise Shed
            if reply.status != 200 or answer.get("outcome") != "disclosed":
                raise Failed(f"{reply.status} {answer.get('error', answer.get('outcome'))}")

        label = "postgresql" if schema else "sqlite"
        return await _measure(call, counter, holder.process.pid, label)


# --- figures ----------------------------------------------------------------------------------


def _figures(backend: str, measured: Measured, baseline: Measured) -> list[Figure]:
    best, base = measured.best, baseline.best
    latency, base_latency = measured.levels[CONCURRENCY[0]], baseline.levels[CONCURRENCY[0]]
    failures, first = measured.failures()
    invalid = f"INVALID: {failures} failed ({first}); " if failures else ""
    met = best.rate >= TARGET_RATE and best.rate >= TARGET_SHARE * base.rate
    p99_met = measured.open.ms(0.99) < TARGET_P99_MS
    name = f"federation.{{}}.{backend}"
    return [
        Figure(
            name=name.format("disclosures"),
            value=best.rate,
            unit="disclosures/s",
            baseline_name=f"{BASELINE}.requests",
            baseline_value=base.rate,
            target=(
                f"{invalid}>= {TARGET_RATE:,.0f}/s and >= {TARGET_SHARE} x baseline: "
                f"{'met' if met else 'MISSED'} ({measured.levels_text()}; n={REQUESTS} per "
                f"level, {measured.connections} connections for {measured.requests:,} requests)"
            ),
        ),
        Figure(
            name=name.format("disclosure_p50_ms"),
            value=latency.ms(0.5),
            unit="ms",
            baseline_name=f"{BASELINE}.p50_ms",
            baseline_value=base_latency.ms(0.5),
            target=f"{invalid}closed loop, concurrency {CONCURRENCY[0]}",
        ),
        Figure(
            name=name.format("disclosure_p99_ms"),
            value=latency.ms(0.99),
            unit="ms",
            baseline_name=f"{BASELINE}.p99_ms",
            baseline_value=base_latency.ms(0.99),
            target=f"{invalid}closed loop, concurrency {CONCURRENCY[0]}",
        ),
        Figure(
            name=name.format("disclosure_p99_ms_at_500rps"),
            value=measured.open.ms(0.99),
            unit="ms",
            baseline_name=f"{BASELINE}.p99_ms_at_500rps",
            baseline_value=baseline.open.ms(0.99),
            target=(
                f"{invalid}< {TARGET_P99_MS:.0f} ms: {'met' if p99_met else 'MISSED'} "
                f"({measured.open.rate:,.0f}/s answered of {OPEN_RATE:,.0f}/s offered, "
                f"{measured.open.shed} turned away 503 busy)"
            ),
        ),
    ]


async def _run(root: Path) -> list[Figure]:
    sqlite_root = root / "sqlite"
    baseline = await _baseline(*plan_pair(sqlite_root), root)
    figures = _figures("sqlite", await _disclosures(sqlite_root, None), baseline)
    reason = await postgres_unreachable()
    if reason is not None:
        print(f"  postgresql: skipped, {reason}", flush=True)
        return figures
    async with postgres_schema() as schema:
        figures += _figures("postgresql", await _disclosures(root / "postgresql", schema), baseline)
    return figures


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="cafx-bench-federation-") as folder:
        return asyncio.run(_run(Path(folder)))
