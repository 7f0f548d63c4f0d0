"""Dashboard settings: ``FULFILLWATCH_DASHBOARD_*`` variables (the API token may also come from
``FULFILLWATCH_API_TOKEN``, the server's own variable).

How people sign in — any of these, in this order of precedence:

* **a trusted reverse proxy** (oauth2-proxy and the like): ``trusted_proxy_header`` names the
  header carrying the user (``X-Forwarded-Email``), honoured only on connections from an address
  in ``trusted_proxies``;
* **OpenID Connect** (Streamlit's ``st.login``): ``oidc_server_metadata_url``,
  ``oidc_client_id``, ``oidc_client_secret``, ``oidc_redirect_uri``, ``cookie_secret``;
* **per-user accounts**: ``users_file``, a TOML file of argon2 password hashes
  (``fulfillwatch-dashboard hash-password`` makes them);
* ``demo``: no sign-in at all.

The dashboard calls the API with its own token (which needs the ``act_as`` scope) and names the
signed-in person, so the audit trail records who did what.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """How the dashboard reaches the API and who may use it."""

    model_config = SettingsConfigDict(env_prefix="FULFILLWATCH_DASHBOARD_", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Base URL of the Fulfillwatch API")
    api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FULFILLWATCH_DASHBOARD_API_TOKEN", "FULFILLWATCH_API_TOKEN")
    )
    demo: bool = Field(False, description="Demo mode: no sign-in (actions are recorded as 'demo')")
    users_file: Path | None = Field(None, description="TOML file of [users.<name>] password = '<argon2 hash>'")
    trusted_proxy_header: str | None = Field(None, description="Header a trusted proxy puts the user in")
    trusted_proxies: list[str] = Field(default_factory=list, description="Addresses (or CIDRs) of that proxy")
    oidc_server_metadata_url: str | None = Field(None, description=".well-known/openid-configuration URL")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_uri: str | None = Field(None, description="This dashboard's /oauth2callback URL")
    cookie_secret: SecretStr | None = Field(None, description="Signs the OIDC session cookie")
    login_attempts_per_user: int = Field(5, ge=1, description="Failed sign-ins per user per window")
    login_attempts_per_address: int = Field(20, ge=1, description="Failed sign-ins per address per window")
    login_window_s: float = Field(900.0, gt=0, description="The rate-limit window, seconds")
    trace_url_template: str | None = Field(
        None, description="Link to a trace, e.g. http://localhost:16686/trace/{trace_id} (Jaeger)"
    )
    refresh_s: int = Field(10, ge=2, description="Auto-refresh interval when enabled")
    page_size: int = Field(50, ge=10, le=500)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values

    @property
    def oidc(self) -> bool:
        """Whether OpenID Connect sign-in is configured."""
        return bool(self.oidc_server_metadata_url and self.oidc_client_id)


@lru_cache(maxsize=1)
def settings() -> DashboardSettings:
    """The settings of this process (read once)."""
    return DashboardSettings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    settings.cache_clear()
