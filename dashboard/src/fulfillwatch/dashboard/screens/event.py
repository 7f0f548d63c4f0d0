"""Event lookup: everything Fulfillwatch knows about one Stripe event."""

from __future__ import annotations

import streamlit as st

from fulfillwatch.dashboard import ui, views

st.title("Event lookup")
event_id = st.text_input("Stripe event id", value=st.query_params.get("id", ""), placeholder="evt_...").strip()
if not event_id:
    st.info("Enter a Stripe event id (evt_...).")
    st.stop()
st.query_params["id"] = event_id
found = ui.fetch(ui.client().event, event_id)
if found is None:
    st.stop()
if not found["expectations"] and not found["signals"]:
    st.info(f"Nothing is known about {views.md(event_id)}: no receipt or result was received for it.")
    st.stop()

st.subheader("Expectations")
for expectation in found["expectations"]:
    health = expectation["health"]
    icon = {"healthy": "🟢", "pending": "⏳", "failing": "🔴"}.get(health, "")
    md = views.md  # what came from an app is shown literally
    text = f"{icon} **{md(expectation['effect'])}** ({md(expectation['service'] or 'unknown service')}): {health}"
    if expectation["kind"]:
        text += f" — {expectation['kind']}: {md(expectation['reason'])}"
    st.markdown(text)
if found["incidents"]:
    st.subheader("Incidents")
    for incident in found["incidents"]:
        st.page_link(
            "screens/incident.py",
            label=f"{incident['id']} · {incident['state']} · {incident['kind']}",
            query_params={"id": incident["id"]},
        )
st.subheader("Signals")
st.dataframe(views.signals_table(found["signals"]), hide_index=True, width="stretch")
