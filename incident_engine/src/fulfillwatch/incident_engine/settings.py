"""Server settings: a TOML file (``--config``), ``FULFILLWATCH_*`` variables over it, and
command-line flags over both.

Validated once at start; a bad value stops the server with a message naming the setting
(``repair_targets.shop.url (FULFILLWATCH_REPAIR_TARGETS__SHOP__URL): ...``).
"""

from __future__ import annotations

import secrets
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fulfillwatch.collector_processor.ingest_auth import IngestAccess, IngestKey
from fulfillwatch.collector_processor.ingest_gate import IngestLimits
from fulfillwatch.collector_processor.receiver import DEFAULT_MAX_BODY_BYTES
from fulfillwatch.incident_engine.config import (
    AlertDestination,
    ApiTokenConfig,
    IngestKeyConfig,
    IngestProject,
    Project,
    RepairTarget,
    check_name,
    is_loopback,
)
from fulfillwatch.incident_engine.sources.otel_traces import validate_table_name
from fulfillwatch.incident_engine.stripe_config import Plan, SilenceWatch, StripeConfig, check_event_type

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Tokens that look like someone forgot to set one.
_PLACEHOLDER_TOKENS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "token", "password", "fulfillwatch", "demo", "test"}
)
MIN_TOKEN_LENGTH = 16
#: What a process runs: ``serve`` all three; ``fulfillwatch collector|engine|api`` one each.
Role = Literal["collector", "engine", "api"]
ALL_ROLES: frozenset[Role] = frozenset({"collector", "engine", "api"})
_config_file_values: ContextVar[dict[str, Any] | None] = ContextVar("fulfillwatch_config_file", default=None)


class SettingsError(ValueError):
    """Invalid configuration; the message names the setting."""


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values read from ``--config FILE``, below environment variables."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_config_file_values.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_config_file_values.get() or {})


class ServerSettings(BaseSettings):
    """Everything ``fulfillwatch serve`` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="FULFILLWATCH_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

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
    repair_targets: dict[str, RepairTarget] = Field(
        default_factory=dict, description="Reprocess callback target per service.name"
    )
    alerts: dict[str, AlertDestination] = Field(default_factory=dict, description="Alert destinations by name")
    projects: dict[str, Project] = Field(default_factory=dict, description="Projects and the services they own")
    ingest_keys: dict[str, IngestKeyConfig] = Field(
        default_factory=dict, description="Named ingest keys (OTLP and REST) and their projects"
    )
    ingest_auth: Literal["required", "off"] | None = Field(
        None,
        description="Ingest keys: required by default, optional with --demo; 'off' accepts signals without "
        "a key (allowed only on a loopback listener); 'required' also in demo mode",
    )
    api_tokens: dict[str, ApiTokenConfig] = Field(
        default_factory=dict, description="Named API tokens with scopes (besides FULFILLWATCH_API_TOKEN)"
    )
    ingest_projects: dict[str, IngestProject] = Field(
        default_factory=dict, description="Older form: a project with one REST key (see projects, ingest_keys)"
    )
    ingest_inflight_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Request bytes being read, decoded and stored at once (429 beyond)"
    )
    ingest_body_timeout_s: float = Field(30.0, gt=0, le=600, description="The whole request body must arrive within")
    max_connections: int = Field(512, ge=8, description="Open connections per listener (503 beyond)")
    bulk_reprocess_per_s: float = Field(5.0, gt=0, le=1000, description="Rate of a running bulk reprocess")
    otel_traces_table: str | None = Field(
        None,
        description="Also take fulfillment spans from this table of the Collector's ClickHouse exporter "
        "(table or database.table)",
    )
    otel_traces_overlap_s: float = Field(
        300.0, ge=0, description="Re-read this much of otel_traces before the last imported span"
    )
    receive_otlp: bool = Field(
        True, description="Run the OTLP/REST receiver; false to take spans only from otel_traces_table"
    )
    stripe: StripeConfig | None = Field(
        None, description="Reconcile against Stripe's Events API (not_received incidents)"
    )
    plans: dict[str, Plan] = Field(
        default_factory=dict, description="Effects every event of a type needs (effect_missing incidents)"
    )
    silence: dict[str, SilenceWatch] = Field(
        default_factory=dict, description="Per service.name: alert when its receipts stop (signals_stopped)"
    )
    engine_lease_s: float = Field(
        30.0, gt=0, description="Split engine: a lease older than this is taken over by a standby engine"
    )

    @field_validator("otel_traces_table")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_table_name(value)

    @field_validator("plans")
    @classmethod
    def _plan_types(cls, plans: dict[str, Plan]) -> dict[str, Plan]:
        for event_type in plans:
            check_event_type(event_type)
        return plans

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @model_validator(mode="after")
    def _projects_and_keys(self) -> ServerSettings:
        for name, legacy in self.ingest_projects.items():  # the older form, read as the new one
            if name in self.projects or name in self.ingest_keys:
                raise ValueError(f"ingest_projects.{name} clashes with a project or ingest key of that name")
            self.projects[name] = Project(services=[legacy.service])
            self.ingest_keys[name] = IngestKeyConfig(sha256=legacy.key_sha256, projects=[name])
        owners: dict[str, str] = {}
        for name, project in self.projects.items():
            check_name(name, "project")
            for service in project.services:
                if service in owners:
                    raise ValueError(
                        f"service {service!r} is in projects {owners[service]!r} and {name!r}: one owner each"
                    )
                owners[service] = name
        digests: set[str] = set()
        for name, key in self.ingest_keys.items():
            check_name(name, "ingest key")
            unknown = sorted(set(key.projects) - set(self.projects))
            if unknown:
                raise ValueError(f"ingest_keys.{name} grants unknown project(s) {', '.join(unknown)}")
            if key.sha256 in digests:
                raise ValueError(f"ingest_keys.{name}: the same key digest is configured twice")
            digests.add(key.sha256)
        for name in self.api_tokens:
            check_name(name, "API token")
        if self.ingest_auth == "off" and not self.demo and not is_loopback(self.host):
            raise ValueError(
                f"ingest_auth = 'off' lets anyone who reaches the OTLP port write signals: it is allowed only "
                f"when the listeners bind to a loopback address, not {self.host!r}"
            )
        return self

    @model_validator(mode="after")
    def _token_policy(self) -> ServerSettings:
        token = self.api_token.get_secret_value() if self.api_token is not None else ""
        if not token:
            if self.api_tokens:
                return self  # named tokens only
            if not self.demo:
                raise ValueError(
                    "FULFILLWATCH_API_TOKEN is not set and no [api_tokens] are configured: the API refuses "
                    "to run unauthenticated (set a random token of at least 16 characters, or use --demo)"
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
        """``FULFILLWATCH_API_TOKEN`` ("" when only named tokens are configured)."""
        return self.api_token.get_secret_value() if self.api_token is not None else ""

    def service_projects(self) -> dict[str, str]:
        """``service.name`` → the project that owns it."""
        return {service: name for name, project in self.projects.items() for service in project.services}

    def ingest_access(self) -> IngestAccess:
        """The ingest authentication policy these settings describe."""
        keys = {
            key.sha256: IngestKey(name=name, digest=key.sha256, projects=frozenset(key.projects))
            for name, key in self.ingest_keys.items()
        }
        required = self.ingest_auth == "required" or (self.ingest_auth is None and not self.demo)
        return IngestAccess(keys=keys, service_projects=self.service_projects(), required=required)

    def ingest_limits(self) -> IngestLimits:
        """Limits of the ingest listener."""
        return IngestLimits(
            max_body_bytes=self.max_body_bytes,
            inflight_bytes=self.ingest_inflight_bytes,
            body_timeout_s=self.ingest_body_timeout_s,
        )


def read_config_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML configuration file."""
    try:
        with path.open("rb") as handle:
            values: dict[str, Any] = tomllib.load(handle)
            return values
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServerSettings:
    """Settings from the config file, the environment over it, and non-``None`` overrides
    (command-line flags) over both."""
    values = read_config_file(config_file) if config_file is not None else {}
    given = {key: value for key, value in overrides.items() if value is not None}
    token = _config_file_values.set(values)
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(_describe(error["loc"], error["msg"]) for error in exc.errors())
        raise SettingsError(problems) from None
    finally:
        _config_file_values.reset(token)


def _describe(location: tuple[Any, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    if not location:
        return message
    name = ".".join(str(part) for part in location)
    variable = "FULFILLWATCH_" + "__".join(str(part) for part in location).upper()
    return f"{name} ({variable}): {message}"
