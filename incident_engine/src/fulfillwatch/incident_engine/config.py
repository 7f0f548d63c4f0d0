"""Configuration tables of ``fulfillwatch serve --config FILE`` (TOML), validated at start.

The public contract::

    [projects.shop]                             # a project owns the service.names of its apps
    services = ["shop-web", "shop-worker"]

    [ingest_keys.shop-app]                      # `fulfillwatch new-api-key --project shop`
    sha256 = "<sha256 hex of the key>"          # OTLP and REST ingest: Authorization: Bearer <key>
    projects = ["shop"]                         # several for a Collector forwarding for many apps

    [api_tokens.oncall-cli]                     # `fulfillwatch new-api-token oncall-cli --scope operate`
    sha256 = "<sha256 hex of the token>"
    scopes = ["operate"]                        # read | operate | admin, and act_as for the dashboard

    [repair_targets."<service.name>"]         # the service.name of the app's spans
    url = "https://shop.example.com/fulfillwatch/repair"
    secrets = ["whsec_..."]                     # several during rotation: every one signs
    timeout_s = 30
    retry_schedule_s = [0, 5, 30, 120, 600]     # delays before each attempt

    [alerts.oncall]                             # any name
    type = "pagerduty"                          # webhook | slack | pagerduty
    routing_key = "..."

    [ingest_projects.legacy]                    # the older form of a project with one REST key:
    key_sha256 = "<sha256 hex of the key>"      # read as project "legacy" owning the service and
    service = "legacy-php-shop"                 # an ingest key "legacy" granted that project

Callback targets come only from here, never from request data.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator, model_validator

from fulfillwatch.collector_processor.redaction import redact_url

#: Standard Webhooks: secrets are 24 to 64 random bytes, base64 after ``whsec_``.
_MIN_SECRET_BYTES, _MAX_SECRET_BYTES = 24, 64
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (plain HTTP is allowed there)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_signing_secret(secret: str) -> str:
    """Validate a ``whsec_`` secret; returns it unchanged."""
    if not secret.startswith("whsec_"):
        raise ValueError("a signing secret must start with 'whsec_' (Standard Webhooks format)")
    try:
        raw = base64.b64decode(secret[len("whsec_") :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret must be base64 after 'whsec_'") from None
    if not _MIN_SECRET_BYTES <= len(raw) <= _MAX_SECRET_BYTES:
        raise ValueError(
            f"a signing secret must decode to {_MIN_SECRET_BYTES}-{_MAX_SECRET_BYTES} random bytes, got {len(raw)}"
        )
    return secret


def _require_https(url: HttpUrl, allow_plain_http: bool, what: str) -> None:
    if url.scheme != "https" and not allow_plain_http and not is_loopback(url.host):
        raise ValueError(
            f"{what} must use https (plain http is allowed only for loopback hosts, or with allow_plain_http = true)"
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepairTarget(_Strict):
    """Where and how to send reprocess callbacks for one service."""

    url: HttpUrl
    secrets: list[SecretStr] = Field(min_length=1, description="whsec_ secrets; every one signs")
    timeout_s: float = Field(30.0, gt=0, le=300)
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 30.0, 120.0, 600.0],
        min_length=1,
        max_length=20,
        description="Delay before each attempt (the first is usually 0)",
    )
    #: After the app accepted a callback, how long to wait for its result before reopening.
    result_timeout_s: float = Field(1800.0, gt=0)
    allow_plain_http: bool = False

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            check_signing_secret(secret.get_secret_value())
        return secrets

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule(cls, schedule: list[float]) -> list[float]:
        if any(delay < 0 for delay in schedule):
            raise ValueError("retry delays must be >= 0 seconds")
        return schedule

    @model_validator(mode="after")
    def _https(self) -> RepairTarget:
        _require_https(self.url, self.allow_plain_http, "url")
        return self

    def secret_values(self) -> list[str]:
        """The secrets, revealed (only the signer needs them)."""
        return [secret.get_secret_value() for secret in self.secrets]

    def describe(self) -> str:
        """Where it points, without credentials (for logs, banners and the incident log)."""
        return redact_url(str(self.url))


AlertEvent = Literal["opened", "reopened", "resolved", "acknowledged"]
DEFAULT_ALERT_EVENTS: tuple[AlertEvent, ...] = ("opened", "reopened", "resolved")


class AlertDestination(_Strict):
    """One place incidents are announced."""

    type: Literal["webhook", "slack", "pagerduty"]
    url: HttpUrl | None = Field(None, description="Receiver URL (PagerDuty: the Events API v2 URL)")
    secret: SecretStr | None = Field(None, description="webhook: whsec_ secret the payload is signed with")
    routing_key: SecretStr | None = Field(None, description="pagerduty: the integration's routing key")
    on: list[AlertEvent] = Field(default_factory=lambda: list(DEFAULT_ALERT_EVENTS))
    timeout_s: float = Field(10.0, gt=0, le=120)
    retry_schedule_s: list[float] = Field(default_factory=lambda: [0.0, 5.0, 30.0], min_length=1, max_length=10)
    allow_plain_http: bool = False

    @model_validator(mode="after")
    def _complete(self) -> AlertDestination:
        if self.type == "pagerduty":
            if self.routing_key is None:
                raise ValueError("a pagerduty destination needs routing_key")
        elif self.url is None:
            raise ValueError(f"a {self.type} destination needs url")
        if self.type == "webhook":
            if self.secret is None:
                raise ValueError("a webhook destination needs secret (whsec_...) to sign its payloads")
            check_signing_secret(self.secret.get_secret_value())
        _require_https(self.target_url(), self.allow_plain_http, "url")
        return self

    def target_url(self) -> HttpUrl:
        """Where deliveries go."""
        return self.url if self.url is not None else HttpUrl(PAGERDUTY_EVENTS_URL)

    def describe(self) -> str:
        """Where it points, without credentials (a Slack webhook URL is one)."""
        return redact_url(str(self.target_url()))


_SHA256 = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex digest (only the digest is configured)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")


class Project(_Strict):
    """A project: the services whose signals are its own."""

    services: list[str] = Field(min_length=1, description="service.name values of the project's apps")

    @field_validator("services")
    @classmethod
    def _services(cls, services: list[str]) -> list[str]:
        for service in services:
            if not service or len(service) > 256 or service != service.strip():
                raise ValueError(f"{service!r} is not a service.name (1-256 characters, no surrounding spaces)")
        if len(set(services)) != len(services):
            raise ValueError("a service is listed twice")
        return services


class IngestKeyConfig(_Strict):
    """A named ingest key (OTLP and REST) and the projects it may write for."""

    sha256: str = _SHA256
    projects: list[str] = Field(min_length=1, description="Projects this key writes for")


#: What an API token may do: ``read`` (GET), ``operate`` (acknowledge, ignore, note, reprocess
#: one), ``admin`` (bulk reprocess); each includes the ones before it. ``act_as``: the token may
#: name the person it acts for (the dashboard's).
ApiScope = Literal["read", "operate", "admin", "act_as"]


class ApiTokenConfig(_Strict):
    """A named API token; its name is the actor recorded for what it does."""

    sha256: str = _SHA256
    scopes: list[ApiScope] = Field(default_factory=lambda: list[ApiScope](["read"]), min_length=1)


class IngestProject(_Strict):
    """The older form of a project with one REST key (see the module docstring)."""

    key_sha256: str = _SHA256
    service: str = Field(min_length=1, max_length=256, description="service.name its signals are stored under")


def check_name(name: str, what: str) -> str:
    """A project, key or token name: letters, digits and ``_.@:-`` (it shows in logs and the audit trail)."""
    if not _NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} must be 1-64 letters, digits or _.@:- (starting with a letter or digit)"
        )
    return name
