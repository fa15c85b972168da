"""`cafx federation ...`: the federation operator's commands (DESIGN 3.1).

Every command works on the operator directory given by `--dir` (default `var/federation`). The
operator runs them on its own machine; nodes receive only `members/<GSS>/` and pin
`operator-public.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from ..federation import operator

__all__ = ["federation"]

F = TypeVar("F", bound=Callable[..., Any])


def dir_option(function: F) -> F:
    decorator = click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("var/federation"),
        show_default=True,
        help="The operator directory.",
    )
    return decorator(function)


@contextmanager
def _refusals() -> Iterator[None]:
    """Operator refusals become a one-line error and exit status 1, not a traceback."""
    try:
        yield
    except operator.OperatorError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def federation() -> None:
    """The federation operator: signing key, CA, members, signed metadata."""


@federation.command("init")
@dir_option
@click.option("--name", required=True, help="The federation's name, e.g. 'London CAF'.")
@click.option(
    "--algorithm",
    type=click.Choice(["Ed25519", "ES256"]),
    default="Ed25519",
    show_default=True,
    help="The operator signing key's algorithm.",
)
@click.option(
    "--first-version",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The first metadata version signed: above the last one nodes hold, when a federation is"
    " set up again.",
)
def init_command(
    directory: Path, name: str, algorithm: Literal["Ed25519", "ES256"], first_version: int
) -> None:
    """Create the operator signing key and the federation CA (refuses when any of its files, or
    metadata.jws, already exists)."""
    with _refusals():
        layout = operator.init(directory, name, algorithm=algorithm, first_version=first_version)
    click.echo(f"operator public key (nodes pin it): {layout.operator_public}")
    click.echo(f"federation CA certificate: {layout.ca_cert}")


@federation.command("add-member")
@dir_option
@click.argument("gss")
@click.option("--endpoint", required=True, help="The node's https base URL.")
@click.option("--name", help="Defaults to the authority's name for a London GSS code.")
@click.option("--services-endpoint", help="Where the node's service directory is searched.")
@click.option(
    "--signing-jwk",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's own PUBLIC Ed25519 signing key (JWK); without it one is generated for the node.",
)
def add_member_command(
    directory: Path,
    gss: str,
    endpoint: str,
    name: str | None,
    services_endpoint: str | None,
    signing_jwk: Path | None,
) -> None:
    """Add a member: issue its TLS certificate and signing key into members/GSS/."""
    with _refusals():
        jwk = _read_jwk(signing_jwk) if signing_jwk is not None else None
        files = operator.add_member(
            directory,
            gss,
            endpoint,
            name,
            signing_jwk=jwk,
            services_endpoint=services_endpoint,
        )
    click.echo(f"member files: {files.folder}")
    click.echo(f"signing key id: {files.kid}")


@federation.command("reissue-cert")
@dir_option
@click.argument("gss")
@click.option("--endpoint", help="The node's new https base URL (default: the one recorded).")
@click.option(
    "--services-endpoint", help="Where the node's service directory is searched, when it moves too."
)
def reissue_cert_command(
    directory: Path, gss: str, endpoint: str | None, services_endpoint: str | None
) -> None:
    """Give a member a new TLS key and certificate (renewal, a leaked tls.key, a new host)."""
    with _refusals():
        issued = operator.reissue_cert(
            directory, gss, endpoint=endpoint, services_endpoint=services_endpoint
        )
    click.echo(f"new tls.crt and tls.key in {issued.folder}")
    click.echo(f"certificate valid until {issued.not_after.isoformat()}")
    if issued.endpoint_changed:
        click.echo(f"endpoint is now {issued.endpoint}")
    if issued.services_endpoint_changed:
        click.echo("services endpoint changed")
    changed = issued.endpoint_changed or issued.services_endpoint_changed
    click.echo(
        "the member needs fresh signed metadata: run `cafx federation sign` and publish it"
        + (", and let the nodes poll it" if changed else "")
    )
    if endpoint is not None:
        click.echo(
            f"on the node: set federation_public_url (CAFX_FEDERATION_PUBLIC_URL) to "
            f"{issued.endpoint}, or every signed request to it fails; install the new files and "
            "move it there only once the nodes hold the new metadata (the new certificate names "
            "the new host only)"
        )
    click.echo(
        "install tls.crt and tls.key on the node together, then restart it: a running node keeps "
        "the certificate it started with"
    )
    click.echo(
        "the old certificate stays valid for TLS until it expires (there is no revocation list);"
        " suspend the member or rotate its signing key if more than tls.key leaked"
    )


def _read_jwk(path: Path) -> dict[str, Any]:
    try:
        jwk = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise operator.OperatorError(f"cannot read {path} ({type(exc).__name__})") from None
    if not isinstance(jwk, dict):
        raise operator.OperatorError(f"{path} does not hold one JWK object")
    return jwk


@federation.command("add-lead-contact")
@dir_option
@click.argument("gss")
@click.option("--id", "contact_id", required=True, help="What attestations name in approved_by.")
@click.option("--name", required=True)
@click.option("--role", required=True)
@click.option("--email", required=True, help="Work email address.")
@click.option("--phone", required=True, help="Work telephone number.")
def add_lead_contact_command(
    directory: Path, gss: str, contact_id: str, name: str, role: str, email: str, phone: str
) -> None:
    """List a lead CAF contact of a member (work contact details only)."""
    with _refusals():
        operator.add_lead_contact(directory, gss, contact_id, name, role, email, phone)
    click.echo(f"lead contact {contact_id} listed for {gss}")


@federation.command("remove-lead-contact")
@dir_option
@click.argument("gss")
@click.option("--id", "contact_id", required=True)
def remove_lead_contact_command(directory: Path, gss: str, contact_id: str) -> None:
    """Remove a lead CAF contact from a member's list."""
    with _refusals():
        operator.remove_lead_contact(directory, gss, contact_id)
    click.echo(f"lead contact {contact_id} removed from {gss}")


@federation.command("suspend")
@dir_option
@click.argument("gss")
def suspend_command(directory: Path, gss: str) -> None:
    """Suspend a member; nodes refuse its traffic once they have the next signed metadata."""
    with _refusals():
        member = operator.suspend(directory, gss)
    click.echo(f"{member.id} is suspended (sign to publish)")


@federation.command("reinstate")
@dir_option
@click.argument("gss")
def reinstate_command(directory: Path, gss: str) -> None:
    """Make a suspended member active again."""
    with _refusals():
        member = operator.reinstate(directory, gss)
    click.echo(f"{member.id} is active (sign to publish)")


@federation.command("rotate-key")
@dir_option
@click.argument("gss")
@click.option(
    "--grace-days",
    type=click.IntRange(min=0, max=operator.MAX_GRACE.days),
    default=operator.DEFAULT_GRACE.days,
    show_default=True,
    help="How long the old key stays valid; 0 drops it at once (compromised key).",
)
@click.option(
    "--revoke",
    "revoke",
    multiple=True,
    metavar="KID",
    help="Drop this key (also one whose window is over): nothing it signed verifies any more.",
)
@click.option(
    "--signing-jwk",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The node's own new PUBLIC Ed25519 key (JWK); without it one is generated for the node.",
)
def rotate_key_command(
    directory: Path, gss: str, grace_days: int, revoke: tuple[str, ...], signing_jwk: Path | None
) -> None:
    """Give a member a new signing key; the old one stays valid for the grace period. Keys whose
    window is over stay listed (for what they signed then) unless revoked."""
    with _refusals():
        jwk = _read_jwk(signing_jwk) if signing_jwk is not None else None
        files = operator.rotate_key(
            directory, gss, grace=timedelta(days=grace_days), signing_jwk=jwk, revoke=revoke
        )
    click.echo(f"new signing key id: {files.kid}")
    if files.signing_key is not None:
        click.echo(f"private key for the node: {files.signing_key}")


@federation.command("sign")
@dir_option
@click.option(
    "--validity-days",
    type=click.IntRange(min=1, max=operator.MAX_METADATA_VALIDITY.days),
    default=operator.DEFAULT_METADATA_VALIDITY.days,
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed metadata [default: DIR/metadata.jws].",
)
def sign_command(directory: Path, validity_days: int, out: Path | None) -> None:
    """Sign the current members as the next metadata version."""
    with _refusals():
        signed = operator.sign(directory, out, validity=timedelta(days=validity_days))
    metadata = signed.metadata
    click.echo(
        f"metadata version {metadata.version} for {len(metadata.members)} member(s), "
        f"expires {metadata.expires_at.isoformat()}: {signed.path}"
    )
    for warning in signed.warnings:
        click.echo(f"warning: {warning}", err=True)
