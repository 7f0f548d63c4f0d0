"""Dashboard settings: ``FULFILLWATCH_DASHBOARD_*`` variables (the API token may also come from
``FULFILLWATCH_API_TOKEN``, the server's own variable)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """How the dashboard reaches the API and who may use it."""

    model_config = SettingsConfigDict(env_prefix="FULFILLWATCH_DASHBOARD_", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Base URL of the Fulfillwatch API")
    api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FULFILLWATCH_DASHBOARD_API_TOKEN", "FULFILLWATCH_API_TOKEN")
    )
    password: SecretStr | None = Field(None, description="Shared login password (the API token also works)")
    demo: bool = Field(False, description="Demo mode: no login")
    trace_url_template: str | None = Field(
        None, description="Link to a trace, e.g. http://localhost:16686/trace/{trace_id} (Jaeger)"
    )
    refresh_s: int = Field(10, ge=2, description="Auto-refresh interval when enabled")
    page_size: int = Field(50, ge=10, le=500)


@lru_cache(maxsize=1)
def settings() -> DashboardSettings:
    """The settings of this process (read once)."""
    return DashboardSettings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    settings.cache_clear()
