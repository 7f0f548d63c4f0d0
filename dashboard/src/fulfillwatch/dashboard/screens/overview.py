"""Overview: what is broken now, how well fulfillment works, is the engine alive."""

from __future__ import annotations

import streamlit as st

from fulfillwatch.dashboard import ui, views

st.title("Overview")
window = st.sidebar.selectbox("Window", [1, 6, 24, 72, 168], index=2, format_func=lambda h: f"last {h} h")
auto = st.sidebar.toggle("Auto-refresh", value=False, key="overview_refresh")


@st.fragment(run_every=ui.config().refresh_s if auto else None)
def _body() -> None:
    stats = ui.fetch(ui.client().stats, window)
    if stats is None:
        return
    healthy, text = views.engine_status(stats["engine"])
    (st.success if healthy else st.error)(f"Engine: {text}")
    outcomes = stats["expectations"]
    rate = stats["success_rate"]
    first, second, third, fourth = st.columns(4)
    first.metric("Open incidents", sum(stats["open_by_kind"].values()))
    second.metric("Fulfillment success rate", "—" if rate is None else f"{rate:.2%}")
    third.metric("Mean time to resolve", views.format_duration(stats["mean_time_to_resolve_s"]))
    fourth.metric(f"Fulfilled (last {window} h)", outcomes["fulfilled"], help=f"pending: {outcomes['pending']}")

    st.subheader("Open incidents")
    if not stats["open_by_kind"]:
        st.info("No open incidents.")
    else:
        by_kind, by_type, by_effect = st.columns(3)
        by_kind.dataframe(views.counts_table(stats["open_by_kind"], "kind"), hide_index=True, width="stretch")
        by_type.dataframe(
            views.counts_table(stats["open_by_event_type"], "event type"), hide_index=True, width="stretch"
        )
        by_effect.dataframe(views.counts_table(stats["open_by_effect"], "effect"), hide_index=True, width="stretch")

    st.subheader("Receipt → success latency")
    latency = views.latency_table(stats["latency"])
    if latency.empty:
        st.info("No fulfilled events in the window yet.")
    else:
        st.altair_chart(views.latency_chart(latency), width="stretch")


_body()
