"""The shop's settings, from environment variables (all have local-development defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShopConfig:
    """Where things are and how the shop behaves."""

    broker_url: str
    db_path: Path  # tenants, entitlements, the idempotency table
    inbox_path: Path  # every webhook event received (the repair endpoint reads it)
    stripe_webhook_secret: str
    repair_secrets: tuple[str, ...]
    task_expires_s: float  # a queued job older than this is dropped by the worker
    idempotency_bug: bool  # mark events "done" when a job starts instead of when it finishes

    @classmethod
    def from_environment(cls) -> ShopConfig:
        data = Path(os.environ.get("SHOP_DATA_DIR", ".shop"))
        return cls(
            broker_url=os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0"),
            db_path=Path(os.environ.get("SHOP_DB", data / "shop.sqlite")),
            inbox_path=Path(os.environ.get("SHOP_INBOX", data / "inbox.sqlite")),
            # The secret of Stripe's own SDK tests: fine for the example, never for production.
            stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_test_secret"),
            repair_secrets=tuple(
                s
                for s in os.environ.get("SHOP_REPAIR_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").split(",")
                if s
            ),
            task_expires_s=float(os.environ.get("SHOP_TASK_EXPIRES_S", "3600")),
            idempotency_bug=os.environ.get("SHOP_IDEMPOTENCY_BUG", "") == "1",
        )


CONFIG = ShopConfig.from_environment()
