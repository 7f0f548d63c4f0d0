"""What the pages show, computed from API documents — no Streamlit here, so it is unit-testable.

Tables are pandas DataFrames, charts Altair charts; the Streamlit scripts only place them.
Text that came from an app (reasons, error messages, services, effects) is never rendered as
markdown: :func:`md` escapes it where it must sit inside markdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import altair as alt
import pandas as pd

#: Icons of the states the API declares (its schema is the list; an unknown state shows bare).
STATE_ICONS = {"open": "🔴", "acknowledged": "🟠", "reprocessing": "🔵", "resolved": "🟢", "ignored": "⚪"}
#: Characters with a meaning in Streamlit markdown: CommonMark's, ``:`` (emoji and colour
#: directives), ``$`` (LaTeX) and ``~``.
_MARKDOWN = set("\\`*_{}[]()<>#+-.!|:$~&")


def state_label(state: str) -> str:
    """``🔴 open``."""
    icon = STATE_ICONS.get(state)
    return f"{icon} {state}" if icon else state


def md(text: object) -> str:
    """Text shown literally inside markdown (every markdown character escaped)."""
    return "".join(f"\\{char}" if char in _MARKDOWN else char for char in str(text)).replace("\n", " ")


#: Timeline entries, by the lane they are drawn in.
_LANES = {
    "receipt": "signals",
    "result": "signals",
    "callback_attempt": "callbacks",
    "alert_attempt": "alerts",
    "stripe_event_created": "stripe",
    "stripe_event_read": "stripe",
    "grace_deadline": "stripe",
}


def when(value: str | datetime | None) -> datetime | None:
    """A datetime from the API's RFC 3339 strings."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_duration(seconds: float | None) -> str:
    """``"4 min 12 s"``, ``"2 h 5 min"``, ``"—"`` for nothing."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def format_amount(amount: int | None, currency: str | None) -> str:
    """Stripe amounts are in the currency's smallest unit."""
    if amount is None:
        return "—"
    return f"{amount / 100:,.2f} {(currency or '').upper()}".strip()


def trace_link(template: str | None, trace_id: str | None) -> str | None:
    """The tracing backend's URL of a trace, from a template with ``{trace_id}``."""
    if not template or not trace_id:
        return None
    return template.replace("{trace_id}", quote(trace_id))


def engine_status(engine: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the engine is alive, and a sentence saying how it is."""
    age = engine.get("heartbeat_age_s")
    if age is None:
        return False, "the engine has never evaluated (no heartbeat yet)"
    lag = engine.get("evaluation_lag_s")
    text = f"heartbeat {format_duration(age)} ago, evaluation lag {format_duration(lag)}"
    if engine.get("stale"):
        return False, f"stale: {text}"
    return True, text


def incident_table(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The incidents list as a table (most recently updated first, as the API returns it)."""
    rows = [
        {
            "id": item["id"],
            "state": state_label(item["state"]),
            "kind": item["kind"],
            "event type": item["event_type"],
            "effect": item["effect"],
            "service": item["service"],
            "Stripe event": item["stripe_event_id"],
            "opened": when(item["opened_at"]),
            "updated": when(item["updated_at"]),
            "reason": item["reason"],
        }
        for item in items
    ]
    columns = ["id", "state", "kind", "event type", "effect", "service", "Stripe event", "opened", "updated", "reason"]
    return pd.DataFrame(rows, columns=columns)


def _label(entry: Mapping[str, Any]) -> str:
    details = entry.get("details") or {}
    kind = entry["type"]
    if kind == "result":
        label = f"result: {details.get('outcome', '')}"
        if details.get("error_type"):
            label += f" ({details['error_type'].rsplit('.', 1)[-1]})"
        return label
    if kind == "callback_attempt":
        status = details.get("status")
        return (
            f"callback #{details.get('attempt', '?')}: {f'HTTP {status}' if status else details.get('error', 'error')}"
        )
    if kind == "alert_attempt":
        return f"alert {details.get('destination', '')}: {details.get('outcome', '')}"
    return str(kind).replace("_", " ")


def timeline_table(timeline: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Every receipt, result, transition and attempt, in time order, one row each."""
    rows = []
    for entry in timeline:
        details = entry.get("details") or {}
        rows.append(
            {
                "at": when(entry["at"]),
                "lane": _LANES.get(entry["type"], "incident"),
                "what": _label(entry),
                "type": entry["type"],
                "actor": entry.get("actor") or "",
                "state": entry.get("state") or "",
                "reason": entry.get("reason") or details.get("error_message") or "",
                "replay id": details.get("replay_id", ""),
            }
        )
    return pd.DataFrame(rows, columns=["at", "lane", "what", "type", "actor", "state", "reason", "replay id"])


def audit_table(timeline: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The incident log: who did what, when, and why."""
    table = timeline_table(timeline)
    return table[~table["type"].isin(["receipt", "result"])][["at", "what", "actor", "state", "reason"]]


def timeline_chart(table: pd.DataFrame) -> alt.Chart:
    """The incident's story on one time axis: signals, the incident, callbacks, alerts."""
    chart: alt.Chart = (
        alt.Chart(table)
        .mark_circle(size=140, opacity=0.85)
        .encode(
            # Whole seconds on the axis: a story spans seconds to days, and Vega's default
            # labels for sub-minute ranges are bare milliseconds (".500").
            x=alt.X("at:T", title=None, axis=alt.Axis(format="%H:%M:%S", labelOverlap=True)),
            y=alt.Y("lane:N", title=None, sort=["signals", "incident", "callbacks", "alerts"]),
            color=alt.Color("type:N", legend=alt.Legend(orient="bottom", title=None)),
            tooltip=[
                alt.Tooltip("at:T", format="%Y-%m-%d %H:%M:%S.%L"),
                "what:N",
                "actor:N",
                "state:N",
                "reason:N",
            ],
        )
        .properties(height=220)
    )
    return chart


def counts_table(counts: Mapping[str, int], label: str) -> pd.DataFrame:
    """``{"result_failed": 3}`` → a two-column table, biggest first."""
    rows = sorted(counts.items(), key=lambda item: -item[1])
    return pd.DataFrame(rows, columns=[label, "open incidents"])


def latency_table(latency: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Receipt → success latency per hour and event type, one row per percentile."""
    rows = [
        {"hour": when(row["hour"]), "event type": row["event_type"], "percentile": name, "seconds": row[key]}
        for row in latency
        for name, key in (("p50", "p50_s"), ("p95", "p95_s"), ("p99", "p99_s"))
    ]
    return pd.DataFrame(rows, columns=["hour", "event type", "percentile", "seconds"])


def latency_chart(table: pd.DataFrame) -> alt.Chart:
    """Latency percentiles over time, a line per event type and percentile."""
    chart: alt.Chart = (
        alt.Chart(table)
        .mark_line(point=True)
        .encode(
            x=alt.X("hour:T", title=None),
            y=alt.Y("seconds:Q", title="receipt → success (s)"),
            color=alt.Color("event type:N"),
            strokeDash=alt.StrokeDash("percentile:N"),
            tooltip=["hour:T", "event type:N", "percentile:N", alt.Tooltip("seconds:Q", format=".2f")],
        )
        .properties(height=280)
    )
    return chart


def event_fields(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The Stripe event's key fields, labelled."""
    livemode = event.get("livemode")
    return [
        ("type", str(event.get("event_type") or "—")),
        ("customer", str(event.get("customer") or "—")),
        ("amount", format_amount(event.get("amount"), event.get("currency"))),
        ("mode", "live" if livemode else ("test" if livemode is False else "—")),
    ]


#: What each kind that does not start from an app's own signal means, for the incident page.
KIND_EXPLANATIONS = {
    "not_received": (
        "Not received by the app: Stripe has this event, but the app never recorded a receipt for it within "
        "the grace period. Either Stripe could not deliver it (the webhook endpoint was down or rejected the "
        "signature) or the handler lost it before accepting it. Reprocess sends the Stripe event to the app's "
        "repair endpoint, which can run the original handler."
    ),
    "effect_missing": (
        "A planned effect is missing: the event's fulfillment plan requires this effect, and it got no receipt "
        "or result of its own while the event's other effects did."
    ),
    "signals_stopped": (
        "Signals stopped: this service recorded no receipt of this event type for longer than its quiet period. "
        "Check the webhook endpoint (deploys, signing secret, Stripe's endpoint status); once receipts resume "
        "the incident resolves. `fulfillwatch reconcile` lists the events it missed."
    ),
}


def stripe_record_fields(stripe_event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Stripe's own record of the event (as the reconciler read it), labelled."""
    created = when(stripe_event.get("created"))
    return [
        ("created", created.strftime("%Y-%m-%d %H:%M:%S UTC") if created else "—"),
        ("account", str(stripe_event.get("account") or "own")),
        ("object", str(stripe_event.get("object_id") or "—")),
        ("customer", str(stripe_event.get("customer") or "—")),
        ("amount", format_amount(stripe_event.get("amount"), stripe_event.get("currency"))),
        ("delivery", "Stripe reports it failed" if stripe_event.get("delivery_failed") else "no failure reported"),
    ]


def signals_table(signals: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Receipts and results of an event."""
    rows = [
        {
            "at": when(signal["at"]),
            "signal": signal["signal"],
            "effect": signal["effect"],
            "outcome": signal["outcome"],
            "attempt": signal["attempt"],
            "error": f"{signal['error_type']}: {signal['error_message']}" if signal.get("error_type") else "",
            "replay id": signal["replay_id"],
            "service": signal["service"],
            "trace id": signal["trace_id"],
        }
        for signal in signals
    ]
    columns = ["at", "signal", "effect", "outcome", "attempt", "error", "replay id", "service", "trace id"]
    return pd.DataFrame(rows, columns=columns)


def page_count(total: int, page_size: int) -> int:
    """Pages needed for ``total`` rows (at least one)."""
    return max(1, -(-total // page_size))
