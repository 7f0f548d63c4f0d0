"""Showing URLs and DSNs without the secrets they may carry.

A webhook URL is often itself a credential (Slack's ``/services/T…/B…/…``), a repair URL may
hold ``user:password@`` or ``?token=``. Whatever Fulfillwatch logs, prints or returns shows only
where a URL points: scheme, host and port, and ``/…`` when there is a path or a query.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…`` from ``https://hooks.slack.com/services/T0/B0/secret``."""
    try:
        parts = urlsplit(str(url))
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    hidden = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"
