"""Delivery: what Fulfillwatch sends out, signed and retried.

* :mod:`.attempts` — one HTTP POST with retries and a record of every attempt;
* :mod:`.signing` — Standard Webhooks signatures;
* :mod:`.reprocess` — reprocess callbacks to the app's repair endpoint;
* :mod:`.alerts` — what an incident alert says, for webhooks, Slack and PagerDuty;
* :mod:`.alert_sender` — sending alerts from the incident log, resumable and never twice.
"""

__all__ = ["alert_sender", "alerts", "attempts", "reprocess", "signing"]
