"""Figures and `bench/report.json`."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

__all__ = ["Figure", "best_rates", "machine", "write_report"]


@cache
def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    machine: str = field(default_factory=machine)
    target: str = ""  # the target, for the printed table (not part of the report schema)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    def as_json(self) -> dict[str, object]:
        record = asdict(self)
        record.pop("target")
        record["value"] = round(self.value, 3)
        record["baseline_value"] = round(self.baseline_value, 3)
        record["ratio"] = round(self.ratio, 4)
        return record


def best_rates(works: Sequence[Callable[[], int]], repeat: int = 5) -> list[float]:
    """Items per second of each of `works`: the fastest of `repeat` runs (the least disturbed by
    other load). The works run in turn, so a ratio of two of them comes from runs seconds apart,
    and a burst of other load on this shared machine reaches both alike, not one of them."""
    best = [0.0] * len(works)
    for _ in range(repeat):
        for index, work in enumerate(works):
            start = time.perf_counter()
            items = work()
            elapsed = time.perf_counter() - start
            best[index] = max(best[index], items / elapsed)
    return best


def write_report(figures: list[Figure], path: Path) -> None:
    path.write_text(json.dumps([f.as_json() for f in figures], indent=2) + "\n", encoding="utf-8")
