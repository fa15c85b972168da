"""`cafx`: the CAF Exchange command line. One module per command group."""

from __future__ import annotations

import click

from ._adapt import adapt
from ._demo import demo
from ._directory import directory
from ._episodes import episodes, register
from ._federation import federation
from ._node import audit, clients, db, keys, serve
from ._schema import schema, validate

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="caf-exchange", prog_name="cafx")
def cli() -> None:
    """CAF Exchange: London's federation gateway for Common Assessment Framework episodes."""


cli.add_command(schema)
cli.add_command(validate)
cli.add_command(adapt)
cli.add_command(demo)
for command in (serve, db, keys, clients, audit, episodes, register, federation, directory):
    cli.add_command(command)


def main() -> None:
    cli()
