"""`cafx demo`: what a newcomer sees first.

Until the federation exists (issue 6), `demo run` shows what the node can already do: it translates the
example local forms into national episodes, writes them as national JSON and XML, and validates each
result against the national schema.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from adapters import AdapterError, detect_adapter, get_adapter
from adapters.national import check_national

__all__ = ["demo"]

DEFAULT_EXAMPLES = Path("tests/fixtures/examples")


@click.group()
def demo() -> None:
    """Demonstrations on this machine."""


@demo.command("run")
@click.option(
    "--examples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_EXAMPLES,
    show_default=True,
    help="Folder of local CAF forms to translate.",
)
def run(examples: Path) -> None:
    """Translate every example form, write national JSON and XML, and validate both."""
    console = Console()
    table = Table(title="example forms -> national episodes")
    for column in ("form", "format", "episodes", "fidelity", "national JSON", "national XML"):
        table.add_column(column)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="cafx-demo-") as tmp:
        for path in sorted(p for p in examples.rglob("*") if p.is_file()):
            if path.name.endswith(".facts.json"):
                continue
            data = path.read_bytes()
            try:
                adapter = detect_adapter(data)
                translation = adapter.to_national(data)
            except AdapterError as exc:
                table.add_row(path.name, "-", "0", exc.code, "", "")
                failures += 1
                continue
            verdicts = []
            for target in ("national-json", "national-xml"):
                ok = True
                for episode in translation.episodes:
                    written = get_adapter(target).from_national([episode])
                    Path(tmp, f"{episode.episode_id}.{target}").write_bytes(written)
                    ok = ok and check_national(written).valid
                verdicts.append("[green]valid[/]" if ok else "[red]invalid[/]")
                failures += not ok
            table.add_row(
                path.name,
                adapter.name,
                str(len(translation.episodes)),
                translation.report.summary(),
                *verdicts,
            )
    console.print(table)
    console.print(
        "The federation of three boroughs arrives with the London protocol (issue 6); "
        "see README.md for what works today."
    )
    sys.exit(1 if failures else 0)
