"""The ``[stripe]`` and ``[plans]`` tables of the configuration, validated at start.

::

    [stripe]                                   # reconcile against Stripe's Events API
    service = "shop-webhook"                   # the service.name of the app that receives the webhooks
    api_key_env = "STRIPE_API_KEY"             # the variable holding a restricted key (rk_live_...)
    # api_key_file = "/run/secrets/stripe"     # or a file holding it
    mode = "live"                              # live | test: the key's mode must match
    event_types = ["checkout.session.completed", "invoice.paid"]
    accounts = ["acct_1", "acct_2"]            # Connect: each account's events, own cursor
    grace_s = 900                              # no receipt this long after Stripe created it: not_received
    grace_s_by_type = { "invoice.paid" = 3600 }
    poll_interval_s = 60
    backfill = "7d"                            # how far back a first start reads (at most 30 days)

    [plans."checkout.session.completed"]       # every event of this type needs these effects
    effects = ["unlock_access", "send_receipt_email"]

The key is read here, once, and held as a ``SecretStr``: it is never logged, never returned by
the API and never stored (``docs/SECURITY.md``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, PrivateAttr, SecretStr, field_validator, model_validator

from fulfillwatch.incident_engine.config import is_loopback

#: Stripe keeps events for 30 days; a cursor older than that has lost events.
STRIPE_RETENTION = timedelta(days=30)
_KEY = re.compile(r"^(rk|sk)_(live|test)_[A-Za-z0-9]{10,}$")
_ACCOUNT = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")
_EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: What people leave in a config file instead of a key.
_PLACEHOLDER = re.compile(r"(x{4,}|\.\.\.|changeme|placeholder|your_?key|<|>)", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` → a ``timedelta``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 30m or 90s")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def check_event_type(name: str) -> str:
    """A Stripe event type name (``checkout.session.completed``)."""
    if not _EVENT_TYPE.match(name):
        raise ValueError(f"{name!r} is not a Stripe event type (like checkout.session.completed)")
    return name


def check_backfill(text: str) -> str:
    """A backfill duration of at most Stripe's 30-day retention."""
    if parse_duration(text) > STRIPE_RETENTION:
        raise ValueError(f"backfill {text!r} is longer than the 30 days Stripe keeps events")
    return text


class StripeConfig(BaseModel):
    """How to reconcile against Stripe's Events API (``[stripe]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(
        min_length=1, max_length=256, description="service.name of the app that receives these webhooks"
    )
    api_key_env: str = Field("STRIPE_API_KEY", description="Environment variable holding the restricted key")
    api_key_file: Path | None = Field(None, description="A file holding the key (instead of api_key_env)")
    mode: Literal["live", "test"] = Field("live", description="The key's mode: live or test")
    event_types: list[str] = Field(
        default_factory=lambda: ["checkout.session.completed", "invoice.paid"],
        min_length=1,
        max_length=20,  # Stripe's limit for types[]
        description="Event types the app must receive",
    )
    accounts: list[str] = Field(default_factory=list, description="Connect accounts (acct_...); empty: the key's own")
    grace_s: float = Field(900.0, gt=0, description="No receipt this long after creation: not_received")
    grace_s_by_type: dict[str, float] = Field(default_factory=dict, description="grace_s per event type")
    poll_interval_s: float = Field(60.0, ge=1, description="Seconds between two reads of the Events API")
    overlap_s: float = Field(300.0, ge=0, description="Re-read this much before the cursor (the list lags)")
    backfill: str = Field("1d", description="How far back the first start reads (at most 30d)")
    check_interval_s: float = Field(15.0, gt=0, description="Seconds between two checks of grace deadlines")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per request on 429/5xx/network errors")
    api_base: HttpUrl | None = Field(None, description="Another address for Stripe's API (a test stand-in)")
    _key: SecretStr = PrivateAttr(default=SecretStr(""))

    @field_validator("event_types")
    @classmethod
    def _types(cls, types: list[str]) -> list[str]:
        for name in types:
            check_event_type(name)
        if len(set(types)) != len(types):
            raise ValueError("an event type is listed twice")
        return types

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, accounts: list[str]) -> list[str]:
        for account in accounts:
            if not _ACCOUNT.match(account):
                raise ValueError(f"{account!r} is not a Stripe account id (acct_...)")
        if len(set(accounts)) != len(accounts):
            raise ValueError("an account is listed twice")
        return accounts

    @field_validator("grace_s_by_type")
    @classmethod
    def _grace(cls, grace: dict[str, float]) -> dict[str, float]:
        for name, seconds in grace.items():
            if seconds <= 0:
                raise ValueError(f"grace_s_by_type.{name} must be > 0 seconds")
        return grace

    @field_validator("backfill")
    @classmethod
    def _backfill(cls, text: str) -> str:
        return check_backfill(text)

    @model_validator(mode="after")
    def _read_key(self) -> StripeConfig:
        if self.api_base is not None and self.api_base.scheme != "https" and not is_loopback(self.api_base.host):
            raise ValueError("api_base must use https (plain http only for a loopback stand-in)")
        unknown = sorted(set(self.grace_s_by_type) - set(self.event_types))
        if unknown:
            raise ValueError(f"grace_s_by_type names types not in event_types: {', '.join(unknown)}")
        self._key = SecretStr(check_key(self._load_key(), self.mode, self._key_setting()))
        return self

    def _key_setting(self) -> str:
        return f"the file {self.api_key_file}" if self.api_key_file is not None else f"${self.api_key_env}"

    def _load_key(self) -> str:
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"api_key_file {self.api_key_file} cannot be read: {exc.strerror}") from None
        value = os.environ.get(self.api_key_env, "").strip()
        if not value:
            raise ValueError(f"api_key_env: the variable {self.api_key_env} is not set (put a restricted key there)")
        return value

    def key(self) -> str:
        """The API key, revealed (only the Stripe client gets it)."""
        return self._key.get_secret_value()

    def grace(self, event_type: str) -> timedelta:
        """How long after Stripe created an event of this type its receipt may take."""
        return timedelta(seconds=self.grace_s_by_type.get(event_type, self.grace_s))

    def backfill_span(self) -> timedelta:
        """How far back a first start reads."""
        return parse_duration(self.backfill)


def check_key(key: str, mode: str, setting: str) -> str:
    """A Stripe API key of ``mode``; the message names where it came from, never the key."""
    if _PLACEHOLDER.search(key) or not _KEY.match(key):
        raise ValueError(
            f"the Stripe key in {setting} is not a Stripe API key (expected rk_{mode}_... , a restricted key "
            "with read access to Events)"
        )
    key_mode = key.split("_", 2)[1]
    if key_mode != mode:
        raise ValueError(
            f"the Stripe key in {setting} is a {key_mode}-mode key but stripe.mode is {mode!r}: a {key_mode} key "
            f"never sees {mode} events"
        )
    return key


class SilenceWatch(BaseModel):
    """Alert when a service stops recording receipts of some event types (``[silence."<service>"]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_types: list[str] = Field(min_length=1, max_length=50, description="Event types the service receives")
    quiet_after_s: float = Field(
        3600.0,
        ge=60,
        description="No receipt of a type for this long: signals_stopped (with [stripe]: only "
        "while Stripe shows newer events of the type)",
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, types: list[str]) -> list[str]:
        for name in types:
            check_event_type(name)
        return types


class Plan(BaseModel):
    """The effects every event of one type needs (``[plans."<event type>"]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effects: list[str] = Field(min_length=1, max_length=50, description="Effects each event needs")

    @field_validator("effects")
    @classmethod
    def _effects(cls, effects: list[str]) -> list[str]:
        for effect in effects:
            if not effect or len(effect) > 256 or effect != effect.strip():
                raise ValueError(f"{effect!r} is not an effect name (1-256 characters, no surrounding spaces)")
        if len(set(effects)) != len(effects):
            raise ValueError("an effect is listed twice")
        return effects
