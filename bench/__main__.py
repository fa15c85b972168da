"""`python -m bench [NAME ...]`: run every benchmark (or the named ones: adapters, federation,
directory), write bench/report.json, print the figures."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import adapters, directory, federation
from ._report import Figure, write_report

REPORT = Path(__file__).resolve().parent / "report.json"
BENCHMARKS = (adapters, federation, directory)


def main(names: list[str]) -> int:
    console = Console()
    chosen = [m for m in BENCHMARKS if not names or m.__name__.removeprefix("bench.") in names]
    if names and len(chosen) != len(set(names)):
        known = ", ".join(m.__name__.removeprefix("bench.") for m in BENCHMARKS)
        console.print(f"unknown benchmark in {' '.join(names)}; known: {known}")
        return 2
    figures: list[Figure] = []
    for module in chosen:
        console.print(f"running {module.__name__} ...")
        figures += module.run()
    write_report(figures, REPORT)
    table = Table(title=f"bench ({figures[0].machine if figures else ''})")
    for column in ("name", "value", "unit", "baseline", "baseline value", "ratio", "target"):
        table.add_column(column)
    for f in figures:
        table.add_row(
            f.name,
            f"{f.value:,.1f}",
            f.unit,
            f.baseline_name,
            f"{f.baseline_value:,.1f}",
            f"{f.ratio:.3f}",
            f.target,
        )
    console.print(table)
    console.print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
