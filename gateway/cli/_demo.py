"""`cafx demo run` and `cafx demo scenario`: a local federation of three boroughs on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from ..demo import DEMO_PASSWORD
from ..demo._run import prepare, running_nodes, story

__all__ = ["demo"]

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


@demo.command("run")
@root_option
@click.option("--scenario", is_flag=True, help="Run the protocol's story once, then stop.")
def run(root: Path, scenario: bool) -> None:
    """Start the three nodes (each its own process and SQLite file); Ctrl-C stops them."""
    console = Console()
    plans = prepare(root)
    with running_nodes(plans):
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
            f"Demo borough systems' credentials (private_key_jwt) are in {root}/<borough>/"
            "demo-client.json; node logs in <borough>/node.log.",
            soft_wrap=True,
        )
        console.print(
            "  ('visitor-1' signs in but is refused: nobody's lead contact.) Requests to verify "
            "come from `cafx demo scenario` or POST /api/v1/requests."
        )
        console.print(
            "Each borough publishes a few hundred services: with a demo token, try GET "
            f"{plans[0].api_url}/api/v1/directory/services?scope=federation&text=youth"
            f"&postcode=N1&eligible_for=residence:{plans[1].borough.gss},school:"
            f"{plans[0].borough.gss}",
            soft_wrap=True,
        )
        if scenario:
            story(plans, console.print)
            console.print("[green]the story ran to its end[/]")
            return
        console.print("Run the protocol's story: .venv/bin/cafx demo scenario   (Ctrl-C stops)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping the nodes ...")


@demo.command("scenario")
@root_option
def scenario(root: Path) -> None:
    """Against running demo nodes: check -> verify -> found -> refused -> permitted ->
    withdrawn and pushed -> transfer."""
    console = Console()
    story(prepare(root), console.print)
    console.print("[green]the story ran to its end[/]")
