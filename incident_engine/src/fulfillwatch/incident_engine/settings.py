"""Server settings: ``FULFILLWATCH_*`` environment variables, overridden by command-line flags.

Validated once at start; a bad value stops the server with a message naming the setting.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fulfillwatch.collector_processor.receiver import DEFAULT_MAX_BODY_BYTES

#: Tokens that look like someone forgot to set one.
_PLACEHOLDER_TOKENS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "token", "password", "fulfillwatch", "demo", "test"}
)
MIN_TOKEN_LENGTH = 16


class SettingsError(ValueError):
    """Invalid configuration; the message names the setting."""


class ServerSettings(BaseSettings):
    """Everything ``fulfillwatch serve`` can be told."""

    model_config = SettingsConfigDict(env_prefix="FULFILLWATCH_", extra="ignore", validate_default=True)

    clickhouse_dsn: str = Field("chdb://", description="chdb:///dir (embedded) or http(s)://user:pass@host:8123/db")
    data_dir: Path = Field(Path(".fulfillwatch"), description="chDB data directory for chdb:// DSNs")
    api_token: SecretStr | None = Field(None, description="Bearer token of the HTTP API")
    demo: bool = Field(False, description="Demo mode: a generated token is allowed")
    host: str = Field("127.0.0.1", description="Address both listeners bind to")
    otlp_port: int = Field(4318, ge=0, le=65535)
    api_port: int = Field(8000, ge=0, le=65535)
    retention_days: int = Field(400, ge=1, description="TTL of signals and incident log rows")
    engine_interval_s: float = Field(5.0, gt=0, description="Seconds between evaluations")
    default_timeout_s: float = Field(1800.0, gt=0, description="Deadline when a receipt names none")
    ingest_overlap_s: float = Field(2.0, ge=0, description="Re-read window for out-of-order commits")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, gt=0)
    engine_heartbeat_stale_s: float = Field(60.0, gt=0, description="Heartbeat age reported as stale")

    @model_validator(mode="after")
    def _token_policy(self) -> ServerSettings:
        token = self.api_token.get_secret_value() if self.api_token is not None else ""
        if not token:
            if not self.demo:
                raise ValueError(
                    "FULFILLWATCH_API_TOKEN is not set: the API refuses to run unauthenticated "
                    "(set a random token of at least 16 characters, or use --demo)"
                )
            self.api_token = SecretStr(secrets.token_urlsafe(24))
        elif not self.demo and (len(token) < MIN_TOKEN_LENGTH or token.strip().lower() in _PLACEHOLDER_TOKENS):
            raise ValueError(
                f"FULFILLWATCH_API_TOKEN looks like a placeholder: use a random value of at least "
                f"{MIN_TOKEN_LENGTH} characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        return self

    def token(self) -> str:
        """The API token (always set after validation)."""
        assert self.api_token is not None
        return self.api_token.get_secret_value()


def load_settings(**overrides: Any) -> ServerSettings:
    """Settings from the environment, with non-``None`` overrides (command-line flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(_describe(error["loc"], error["msg"]) for error in exc.errors())
        raise SettingsError(problems) from None


def _describe(location: tuple[Any, ...], message: str) -> str:
    if not location:
        return message.removeprefix("Value error, ")
    name = ".".join(str(part) for part in location)
    return f"{name} (FULFILLWATCH_{name.upper()}): {message}"
