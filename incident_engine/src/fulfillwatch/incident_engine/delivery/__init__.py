"""Delivery: what Fulfillwatch sends out, signed and retried.

* :mod:`.attempts` — one HTTP POST with retries and a record of every attempt;
* :mod:`.signing` — Standard Webhooks signatures;
* :mod:`.reprocess` — reprocess callbacks to the app's repair endpoint;
* :mod:`.alerts` — incident alerts to webhooks, Slack and PagerDuty.
"""
