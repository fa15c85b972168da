"""Node settings: one frozen object, read once at start (TOML file, then CAFX_* environment)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from yarl import URL

from directory.members import metadata_location
from schemas import is_gss_code

__all__ = ["Settings", "canonical_origin", "load_settings"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def canonical_origin(value: str) -> str:
    """`https://host[:port]` in the one form a federation client signs (`str(yarl.URL(...))`): host
    lower-cased and IDNA-encoded (A-labels), the default port 443 dropped. A path, query, fragment or
    credentials are refused, and so is a host that is neither an IP address nor a DNS name (letters,
    digits and hyphens, no trailing dot, a last label that is not all digits (RFC 3696 2)): the
    server rebuilds `@target-uri` as this origin plus the request's path, so any other spelling
    would make every signature fail. The operator canonicalises member endpoints the same way.
    Raises ValueError saying what is wrong (never echoing the value)."""
    try:
        url = URL(value)
        port = url.explicit_port
        host = url.raw_host
    except (ValueError, TypeError, UnicodeError):
        raise ValueError("not a URL") from None
    if url.scheme != "https" or not host:
        raise ValueError("an https origin with a host is required")
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError("an origin carries no credentials")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise ValueError("an origin has no path, query or fragment")
    if port == 0:
        raise ValueError("port 0 is not a port")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError("the host is not a DNS name or an IP address") from None
        # 2130706433, 999.1.1.1: no top-level domain is all digits. [v1.x]: only IPv6 in brackets.
        if labels[-1].isdigit() or "[" in value:
            raise ValueError("the host is not a DNS name or an IP address") from None
    return str(URL.build(scheme="https", host=host, port=None if port == 443 else port))


class Settings(BaseSettings):
    """Every field can be set in the TOML file given to `cafx serve --config` or as `CAFX_<NAME>`
    (the environment wins over the file)."""

    model_config = SettingsConfigDict(env_prefix="CAFX_", frozen=True, extra="forbid")

    member_id: str = Field(description="GSS code of the authority this node serves")
    database_url: str = Field(
        "sqlite+aiosqlite:///var/cafx.sqlite3",
        description="sqlite+aiosqlite:///PATH (embedded default) or postgresql+asyncpg://...",
    )
    database_schema: str | None = Field(None, description="PostgreSQL schema (search_path)")
    migrate_on_start: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = Field("http://127.0.0.1:8080", description="base URL clients use")
    keyfile: Path | None = Field(None, description="data-protection keys (cafx keys init)")
    # Secret: never shown by a repr or a dump of the settings.
    keys_json: SecretStr | None = Field(
        None, description="the same keys as JSON, instead of a file"
    )
    signing_key_file: Path | None = Field(None, description="node signing key, a private JWK")
    token_ttl_seconds: int = Field(300, ge=30, le=3600)
    allow_client_secret_basic: bool = Field(False, description="development only")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    audit_checkpoint_every: int = Field(100, ge=1)
    audit_checkpoint_seconds: float = Field(
        60,
        ge=0,
        description="how often the head of the audit chain is signed when entries came since the"
        " last checkpoint (entries after it could be removed unseen); 0: only every"
        " audit_checkpoint_every entries",
    )
    retention_interval_seconds: float = Field(
        6 * 3600,
        ge=0,
        description="how often closed episodes due are archived, and archived ones due purged (a"
        " pass also runs at start); 0: never (what is due is still listed)",
    )
    log_level: str = "INFO"

    # The London protocol (issue 6); all optional: without `federation_metadata` the node runs alone.
    federation_metadata: str | None = Field(
        None, description="signed metadata: a path or an https URL (http on loopback only)"
    )
    operator_public_key_file: Path | None = Field(None, description="the pinned operator key")
    metadata_poll_seconds: float = Field(60, gt=0)
    federation_port: int | None = Field(None, description="the mutual-TLS listener for peers")
    federation_public_url: str | None = Field(None, description="origin peers call, https://...")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    ca_file: Path | None = Field(None, description="the federation CA: the only trust anchor")
    auto_approve_existence_roles: list[str] = Field(
        default_factory=list, description="roles whose existence checks need no lead contact"
    )
    auto_approver: str | None = Field(None, description="lead contact answerable for auto-approval")
    outbox_interval_seconds: float = Field(1.0, gt=0)
    outbox_delivery_deadline_hours: float = Field(
        72.0,
        gt=0,
        le=24 * 30,
        description="how long a message to a member is retried before it is dead-lettered (a"
        " transfer commit or a consent withdrawal: before the alert; they are retried until"
        " delivered)",
    )
    transfer_answer_working_days: int = Field(
        5,
        ge=1,
        le=60,
        description="working days (England and Wales) a transfer offer may wait before it escalates",
    )
    # Protocol 003: sharing without consent is the sharing practitioner's judgement, so by default
    # an override another borough approved waits for one of ours.
    disclosure_approval: Literal["never", "overrides", "always"] = Field(
        "overrides",
        description="incoming disclosures that wait for this borough's lead CAF contact to approve"
        " (overrides: only those relying on a public-interest override)",
    )

    # The lead CAF contact console (issue 8): sign-in with OpenID Connect against the borough's IdP.
    console_issuer: str | None = Field(None, description="the OpenID provider's issuer URL")
    console_client_id: str = Field("cafx-console", min_length=1, max_length=200)
    console_client_secret: str | None = Field(None, description="none: a public client (PKCE)")
    console_redirect_url: str | None = Field(None, description="default: <public_url>/console/...")
    console_identity_claim: str = Field(
        "sub",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
        description="the ID token claim that names a lead contact: `email` (verified) is matched with"
        " their e-mail address; any other claim (`sub`, `preferred_username`...) with their id",
    )
    console_idle_minutes: int = Field(15, ge=1, le=480, description="signed out after this idle")
    console_session_hours: float = Field(
        10, gt=0, le=24, description="signed out this long after signing in, however active"
    )
    console_dev_provider: bool = Field(False, description="development only: an IdP at /dev-idp")
    console_dev_password: str | None = Field(None, description="the built-in IdP's demo password")
    # The service directory (issue 7).
    directory_refresh_seconds: float = Field(
        2.0, gt=0, description="how often to check for imports made by another process"
    )
    directory_peer_timeout_seconds: float = Field(
        3.0, gt=0, description="federated search: how long to wait for each member"
    )

    @field_validator("member_id")
    @classmethod
    def _gss(cls, value: str) -> str:
        if not is_gss_code(value):
            raise ValueError("member_id must be a GSS code such as E09000007")
        return value

    @field_validator("federation_public_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        return None if value is None else canonical_origin(value)

    @field_validator("federation_metadata")
    @classmethod
    def _metadata_location(cls, value: str | None) -> str | None:
        if value is not None:  # a file or an https URL: over http a newer copy could be held back
            metadata_location(value)
        return value

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def console_enabled(self) -> bool:
        """The console needs the federation (its lead contacts) and an identity provider."""
        has_provider = self.console_issuer is not None or self.console_dev_provider
        return self.federation_metadata is not None and has_provider

    @property
    def api_audience(self) -> str:
        """The `aud` of access tokens for this node's /api/v1."""
        return f"{self.issuer}/api/v1"


# `CAFX_*` environment variables that are not settings: the test suite's own switches. (The data
# keys as JSON are the setting `keys_json`, CAFX_KEYS_JSON.)
_NOT_SETTINGS = re.compile(r"CAFX_(CHROMIUM|TEST_[A-Z0-9_]+|REQUIRE_[A-Z0-9_]+)")


# What Kubernetes puts in every pod for each Service of its namespace (service links), named after
# the Service: `cafx-camden-api` gives CAFX_CAMDEN_API_SERVICE_HOST, CAFX_CAMDEN_API_PORT, ...
_SERVICE_LINK = re.compile(
    r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_[A-Z]+.*)?)"
)


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """`CAFX_*` names in `environ` that name no setting: a misspelt one would otherwise leave its
    setting at the default without a word (a TOML file with the same typo is refused). In a
    Kubernetes pod, names shaped as its service links are not counted."""
    known = {f"CAFX_{name.upper()}" for name in Settings.model_fields}
    in_kubernetes = "KUBERNETES_SERVICE_HOST" in environ
    return sorted(
        name
        for name in environ
        if name.upper().startswith("CAFX_")
        and name.upper() not in known
        and not _NOT_SETTINGS.fullmatch(name.upper())
        and not (in_kubernetes and _SERVICE_LINK.fullmatch(name.upper()))
    )


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config` (TOML) and the environment; `overrides` win over both. An unknown
    `CAFX_*` environment variable is refused, by name (never its value)."""
    unknown = unknown_environment(os.environ)
    if unknown:
        raise ValueError(f"unknown settings in the environment: {', '.join(unknown)}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=config)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            toml = TomlConfigSettingsSource(settings_cls)
            return (init_settings, env_settings, toml)

    return _FromFile(**overrides) if config else Settings(**overrides)
