"""Standard Webhooks signing of what Fulfillwatch sends (reprocess callbacks, webhook alerts).

The ``standardwebhooks`` library signs: ``webhook-id`` (the receiver's idempotency key),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``, one
entry per secret, space-separated, so that receivers keep verifying during a rotation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from standardwebhooks import Webhook


def signed_request(
    replay_id: str, payload: Mapping[str, Any], secrets: list[str], now: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body bytes and Standard Webhooks headers, signed with every secret (rotation)."""
    moment = now or datetime.now(timezone.utc)
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    signatures = " ".join(Webhook(secret).sign(replay_id, moment, text) for secret in secrets)
    headers = {
        "content-type": "application/json",
        "user-agent": "fulfillwatch-dispatcher",
        "webhook-id": replay_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
    }
    return text.encode(), headers
