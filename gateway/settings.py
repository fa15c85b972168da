"""Node settings: one frozen object, read once at start (TOML file, then CAFX_* environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas import is_gss_code

__all__ = ["Settings", "load_settings"]


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
    keys_json: str | None = Field(None, description="the same keys as JSON, instead of a file")
    signing_key_file: Path | None = Field(None, description="node signing key, a private JWK")
    token_ttl_seconds: int = Field(300, ge=30, le=3600)
    allow_client_secret_basic: bool = Field(False, description="development only")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    audit_checkpoint_every: int = Field(100, ge=1)
    log_level: str = "INFO"

    @field_validator("member_id")
    @classmethod
    def _gss(cls, value: str) -> str:
        if not is_gss_code(value):
            raise ValueError("member_id must be a GSS code such as E09000007")
        return value

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def api_audience(self) -> str:
        """The `aud` of access tokens for this node's /api/v1."""
        return f"{self.issuer}/api/v1"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config` (TOML) and the environment; `overrides` win over both."""

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
