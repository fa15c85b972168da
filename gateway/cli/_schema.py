"""`cafx schema export` and `cafx validate`: the national schema as files, and checking documents."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from adapters import AdapterError
from adapters.national import check_national
from schemas._xml_schema import build_xsd, episode_json_schema

__all__ = ["schema", "validate"]

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


@click.group()
def schema() -> None:
    """The national schema caf-episode/1."""


@schema.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json-schema", "xsd"]),
    required=True,
    help="JSON Schema (2020-12) of national JSON, or the XSD of national XML.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
def export(fmt: str, out: Path | None) -> None:
    """Write the schema of caf-episode/1, generated from the models."""
    if fmt == "xsd":
        text = build_xsd()
    else:
        text = json.dumps(episode_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
def validate(file: Path) -> None:
    """Validate a national document (JSON or XML) and print every problem with its location.

    Exit code: 0 valid, 1 invalid, 2 unreadable.
    """
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        click.echo(f"unreadable: {file}: {exc.strerror}", err=True)
        sys.exit(EXIT_UNREADABLE)
    try:
        check = check_national(data)
    except AdapterError as exc:
        click.echo(f"unreadable: {file}: {exc.code} at {exc.location}: {exc.message}", err=True)
        sys.exit(EXIT_UNREADABLE)
    for problem in check.problems:
        click.echo(f"{problem.severity}\t{problem.where}\t{problem.rule}\t{problem.message}")
    errors = sum(p.severity == "error" for p in check.problems)
    warnings = len(check.problems) - errors
    verdict = "valid" if check.valid else "invalid"
    click.echo(
        f"{verdict}: {file} ({check.encoding}, {len(check.episodes)} episode(s), "
        f"{errors} error(s), {warnings} warning(s))",
        err=True,
    )
    sys.exit(EXIT_VALID if check.valid else EXIT_INVALID)
