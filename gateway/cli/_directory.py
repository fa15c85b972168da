"""`cafx directory import FILE` and `cafx directory export`: a borough's services in and out of the
node's database, as Open Referral UK JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from directory.services import (
    Rejected,
    ServiceRecord,
    UnusableFile,
    is_service_id,
    list_page,
    read_services,
    record_count,
)
from schemas import Problem, is_gss_code

from ..service_directory import Saved, export_documents, save_services
from ._node import _settings, config_option, database

__all__ = ["directory"]

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2
LARGE = 200  # records: from this many on, a progress bar


@click.group()
def directory() -> None:
    """The service directory (Open Referral UK)."""


def _rejected_json(rejected: list[Rejected]) -> list[dict[str, Any]]:
    return [
        {
            "record": r.where,
            "id": r.service_id,
            "problems": [
                {"location": p.where, "rule": p.rule, "message": p.message} for p in r.problems
            ],
        }
        for r in rejected
    ]


def _report(console: Console, rejected: list[Rejected]) -> None:
    """One line per fault. Ids, pointers and messages come from the file: printed as plain text,
    never read as rich markup (a value such as `[/x]` would otherwise stop the report)."""
    for rejection in rejected:
        for problem in rejection.problems:
            line = Text("rejected", style="yellow")
            line.append(
                f" {rejection.where or '/'} ({rejection.service_id or 'no id'}):"
                f" {problem.where}: {problem.rule}: {problem.message}"
            )
            console.print(line, highlight=False)


def _moves_refused(accepted: list[ServiceRecord], owners: dict[str, str]) -> list[Rejected]:
    """The records whose id is another authority's service, as rejections of those records."""
    return [
        Rejected(
            record.where,
            record.id,
            [
                Problem(
                    (),
                    "directory.authority",
                    f"this id is a service of {owners[record.id]}: an import does not move a"
                    " service to another authority (remove it there first)",
                    location=f"{record.where}/id",
                )
            ],
        )
        for record in accepted
        if record.id in owners
    ]


def _replace_refused(accepted: list[ServiceRecord], rejected: list[Rejected]) -> str | None:
    """Why a file cannot be taken as the authority's whole directory, or None. A rejected record
    keeps the stored service of its id; a record without a readable id might be any service, and
    a file whose every record was rejected is more likely the wrong file than an empty directory
    (withdrawing every service takes an explicit empty list)."""
    if rejected and not accepted:
        return "every record was rejected"
    if any(not is_service_id(rejection.service_id) for rejection in rejected):
        return "a rejected record has no readable id, so which service it is cannot be known"
    return None


@directory.command("import")
@config_option
@click.option(
    "--authority", help="GSS code of the authority running these services (default: this node's)."
)
@click.option(
    "--replace",
    is_flag=True,
    help="FILE is the authority's whole directory: remove its services that are not in FILE.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the rejected records and why, as JSON.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_services(
    config: Path | None,
    authority: str | None,
    replace: bool,
    report_file: Path | None,
    file: Path,
) -> None:
    """Import FILE (an ORUK page, a list of services, or one service) into the node's directory.

    Each record is checked against the Open Referral UK schema and the access rule; valid records
    are stored together (a service with the same id is replaced), invalid ones are listed with the
    JSON pointer of each fault. A record whose id is already another authority's service is
    rejected: an import never moves a service between authorities. With --replace, the
    authority's services missing from FILE are removed in the same transaction (a record of FILE
    that was rejected keeps its stored service), and nothing is stored if every record was
    rejected or a rejected record has no readable id (an empty list withdraws every service).
    Exit code: 0 all imported, 1 some rejected, 2 unusable file (nothing stored).
    """
    console = Console(stderr=True, soft_wrap=True)  # one line per fault, for grep
    settings = _settings(config)
    authority = authority or settings.member_id
    if not is_gss_code(authority):
        raise click.BadParameter("a GSS code such as E09000007", param_hint="--authority")
    try:
        # NaN and Infinity, which this reader accepts, are refused record by record with where
        # they are (oruk.number), as 1e400 (infinite once read) must be too.
        data = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:  # nesting deeper than the reader goes
        console.print(
            Text(f"{file}", style="red"),
            Text(f": not readable JSON ({type(exc).__name__}: {exc})"),
            sep="",
        )
        sys.exit(EXIT_UNUSABLE)
    try:
        size = record_count(data)
    except UnusableFile as exc:  # a wrapper, {}, null: read as one service it would be rejected
        line = Text(f"{file}", style="red")
        line.append(f": unusable file: {exc}")
        console.print(line, highlight=False)
        sys.exit(EXIT_UNUSABLE)
    with Progress(console=console, transient=True, disable=size < LARGE) as progress:
        task = progress.add_task("checking", total=size)
        accepted, rejected = read_services(data, lambda n: progress.advance(task, n))

    async def store() -> Saved:
        async with database(settings) as engine:
            keep = {r.service_id for r in rejected if r.service_id is not None}
            return await save_services(engine, authority, accepted, replace=replace, keep=keep)

    refused = _replace_refused(accepted, rejected) if replace else None
    saved = Saved(0, 0)
    if refused is None and (accepted or replace):
        saved = asyncio.run(store())
        rejected += _moves_refused(accepted, saved.owned_elsewhere)
        if replace and accepted and not saved.stored:  # each one another authority's service
            refused = "every record was rejected"
    if report_file is not None:
        report_file.write_text(
            json.dumps(_rejected_json(rejected), indent=2) + "\n", encoding="utf-8"
        )
    _report(console, rejected)
    if refused is not None:
        console.print(
            f"nothing stored for {authority}: directory.replace: with --replace, {refused};"
            f" rejected {len(rejected)} (to withdraw every service, import an empty list)",
            highlight=False,
            markup=False,
        )
        sys.exit(EXIT_UNUSABLE)
    removed = f"; removed {saved.removed} not in the file" if replace else ""
    console.print(
        f"imported {saved.stored} services for {authority}; rejected {len(rejected)}{removed}",
        highlight=False,
        markup=False,
    )
    sys.exit(EXIT_REJECTED if rejected else EXIT_OK)


@directory.command("export")
@config_option
@click.option("--authority", help="Only this authority's services (GSS code).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
def export_services(config: Path | None, authority: str | None, output: Path | None) -> None:
    """Write the directory as one Open Referral UK page (valid against service_list.json)."""
    settings = _settings(config)
    if authority is not None and not is_gss_code(authority):
        raise click.BadParameter("a GSS code such as E09000007", param_hint="--authority")

    async def documents() -> list[dict[str, Any]]:
        async with database(settings) as engine:
            return await export_documents(engine, authority)

    text = json.dumps(list_page(asyncio.run(documents())), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
