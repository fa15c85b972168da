"""`cafx demo run`, `cafx demo scenario` and `cafx demo token`: a local federation of three
boroughs on loopback."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from ..demo import DEMO_PASSWORD
from ..demo._federation import NodePlan
from ..demo._run import answers, demo_token, prepare, running_nodes, stopped, story

__all__ = ["demo"]

EXIT_NOT_RUNNING = 2

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the federation's files and the nodes' databases live (made on the first run).",
)


@click.group()
def demo() -> None:
    """A local federation: Camden, Hackney and Islington on loopback."""


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@demo.command("run")
@root_option
@click.option("--scenario", is_flag=True, help="Run the protocol's story once, then stop.")
def run(root: Path, scenario: bool) -> None:
    """Start the three nodes (each its own process and SQLite file); Ctrl-C stops them."""
    console = Console()
    # Stopped by a signal (a service manager's SIGTERM, a closed terminal's SIGHUP) as by Ctrl-C:
    # the nodes are stopped with it, never left running on the demo's ports.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    plans = prepare(root)
    try:
        with running_nodes(plans) as processes:
            _banner(console, root, plans)
            if scenario:
                story(plans, console.print)
                console.print("[green]the story ran to its end[/]")
                return
            console.print("Run the protocol's story: .venv/bin/cafx demo scenario")
            console.print("Ctrl-C stops the nodes.")
            while (gone := stopped(plans, processes)) is None:
                time.sleep(1)
            plan, code = gone
            console.print(
                f"[red]{plan.borough.name}'s node stopped (exit code {code}): see "
                f"{plan.folder / 'node.log'}[/]; stopping the others",
                soft_wrap=True,
            )
            sys.exit(1)
    except KeyboardInterrupt:
        console.print("the nodes are stopped")
    except RuntimeError as exc:  # a node did not start, or the ports are taken
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        sys.exit(1)


def _banner(console: Console, root: Path, plans: list[NodePlan]) -> None:
    # One block per borough, never a table: addresses must not be cut to the terminal's width.
    console.print("[bold]CAF Exchange demo federation[/]")
    for plan in plans:
        lines = (
            f"[bold]{plan.borough.name}[/] ({plan.borough.gss})",
            f"  console     {plan.api_url}/console/  sign in as "
            f"{' or '.join(plan.borough.lead_contacts())}",
            f"  API         {plan.api_url}/api/v1",
            f"  federation  {plan.settings.federation_public_url} (mutual TLS, other nodes only)",
        )
        for line in lines:
            console.print(line, soft_wrap=True, highlight=False)
    console.print(
        f"Every demo sign-in's password: {DEMO_PASSWORD} (the built-in demo identity provider)."
    )
    console.print(
        f"Demo borough systems' credentials (private_key_jwt, ES256) are in {root}/<borough>/"
        f"demo-client.json; `cafx demo token <borough>` prints an access token made with them. "
        f"Node logs: {root}/<borough>/node.log.",
        soft_wrap=True,
    )
    console.print(
        "('visitor-1' signs in but is refused: nobody's lead contact.) The lead contacts' queue "
        "fills with requests from `cafx demo scenario`, or from POST /api/v1/requests.",
        soft_wrap=True,
    )
    console.print(
        "Each borough publishes a few hundred services: with a token, try GET "
        f"{plans[0].api_url}/api/v1/directory/services?scope=federation&text=youth"
        f"&postcode=N1&eligible_for=residence:{plans[1].borough.gss},school:"
        f"{plans[0].borough.gss}",
        soft_wrap=True,
    )


def _running(root: Path, console: Console) -> list[NodePlan]:
    """The demo's plans, if its nodes are running; else said, and exit 2."""
    if not (root / "federation").is_dir():
        console.print(
            f"[red]no demo federation in {root}[/]: start one with `make demo` (or `cafx demo run`)"
            " in this directory, then run this again in another terminal",
            soft_wrap=True,
        )
        sys.exit(EXIT_NOT_RUNNING)
    plans = prepare(root)
    down = [plan.borough.name for plan in plans if not answers(plan)]
    if down:
        console.print(
            f"[red]the demo nodes are not running ({', '.join(down)})[/]: start them with "
            "`make demo` (or `cafx demo run`) in another terminal",
            soft_wrap=True,
        )
        sys.exit(EXIT_NOT_RUNNING)
    return plans


@demo.command("scenario")
@root_option
def scenario(root: Path) -> None:
    """Against running demo nodes: check -> verify -> found -> refused -> permitted ->
    withdrawn and pushed -> transfer."""
    console = Console()
    story(_running(root, console), console.print)
    console.print("[green]the story ran to its end[/]")


@demo.command("token")
@root_option
@click.argument("borough", type=click.Choice(["camden", "hackney", "islington"]))
def token(root: Path, borough: str) -> None:
    """Print an access token of BOROUGH's demo borough system (every API scope), for curl:
    `curl -H "Authorization: Bearer $(cafx demo token camden)" ...`. It lasts an hour."""
    console = Console(stderr=True)
    [plan] = [p for p in _running(root, console) if p.folder.name == borough]
    click.echo(asyncio.run(demo_token(plan)))
