"""One incident: its story on a timeline, the audit trail, and what can be done about it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from fulfillwatch.dashboard import ui, views

st.title("Incident")
incident_id = st.text_input("Incident id", value=st.query_params.get("id", ""), key="incident_id").strip()
if not incident_id:
    st.info("Enter an incident id, or open one from the Incidents page.")
    st.stop()
st.query_params["id"] = incident_id

_ACTIONS = {
    "reprocess": ("Reprocess", "Send a signed reprocess callback to the app's repair endpoint?"),
    "acknowledge": ("Acknowledge", "Acknowledge: someone is on it?"),
    "ignore": ("Ignore", "Ignore this incident? A reason is required; a later failure reopens it."),
    "note": ("Note", "Add a note to the timeline:"),
}


def _do(action: str, text: str) -> None:
    client = ui.client()
    if action == "reprocess":
        done = ui.fetch(client.reprocess, incident_id, text)
        message = done and (
            f"Reprocess already running (replay {done['replay_id']})"
            if done["already_running"]
            else f"Reprocess started: replay {done['replay_id']}"
        )
    elif action == "acknowledge":
        message = ui.fetch(client.acknowledge, incident_id, text) and "Acknowledged."
    elif action == "ignore":
        message = ui.fetch(client.ignore, incident_id, text) and "Ignored."
    else:
        message = ui.fetch(client.note, incident_id, text) and "Note added."
    if message:
        st.session_state["last_action"] = message
        st.session_state["pending_action"] = None
        st.rerun()


def _header(detail: dict[str, Any]) -> None:
    md = views.md  # everything below that came from an app is shown literally
    st.subheader(f"{views.state_label(detail['state'])} · {detail['kind']}")
    st.markdown(f"**{md(detail['reason'])}**")
    opened = views.when(detail["opened_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")  # type: ignore[union-attr]
    st.markdown(
        f"Effect **{md(detail['effect'])}** · service **{md(detail['service'] or '—')}** · "
        f"project **{md(detail['project'])}** · opened **{opened}** · Stripe event **{md(detail['stripe_event_id'])}**"
    )
    explanation = views.KIND_EXPLANATIONS.get(detail["kind"])
    if explanation:
        st.info(explanation)
    reported = views.event_fields(detail["event"])
    if any(value != "—" for _, value in reported):  # nothing, when the app never reported the event
        st.markdown("Stripe event — " + " · ".join(f"{label}: **{md(value)}**" for label, value in reported))
    stripe_event = detail.get("stripe_event")
    if stripe_event:
        record = " · ".join(f"{label}: **{md(value)}**" for label, value in views.stripe_record_fields(stripe_event))
        st.markdown(f"Stripe's record — {record}")
        with st.expander("The event as Stripe's API returned it"):
            st.json(stripe_event["raw"], expanded=False)
    trace_ids = [e["details"].get("trace_id") for e in detail["timeline"] if e["type"] in ("receipt", "result")]
    link = views.trace_link(ui.config().trace_url_template, next((t for t in trace_ids if t), None))
    if link:
        st.link_button("Open the trace", link)


def _actions(detail: dict[str, Any]) -> None:
    if st.session_state.get("last_action"):
        st.success(st.session_state["last_action"])
    columns = st.columns(4)
    for column, (action, (label, _)) in zip(columns, _ACTIONS.items(), strict=True):
        disabled = detail["state"] == "resolved" and action != "note"
        if column.button(label, key=f"action_{action}", disabled=disabled):
            st.session_state["pending_action"] = action
            st.session_state["last_action"] = None
    pending = st.session_state.get("pending_action")
    if pending:
        st.warning(_ACTIONS[pending][1])
        text = st.text_input("Reason" if pending != "note" else "Note", key="action_text")
        confirm, cancel = st.columns(2)
        if confirm.button(f"Confirm {_ACTIONS[pending][0].lower()}", key="action_confirm", type="primary"):
            if pending in ("ignore", "note") and not text.strip():
                st.error("This needs a reason.")
            else:
                _do(pending, text)
        if cancel.button("Cancel", key="action_cancel"):
            st.session_state["pending_action"] = None
            st.rerun()


def _story(detail: dict[str, Any]) -> None:
    timeline = views.timeline_table(detail["timeline"])
    st.altair_chart(views.timeline_chart(timeline), width="stretch")
    audit, signals, everything = st.tabs(["Audit trail", "Signals", "Everything"])
    audit.dataframe(views.audit_table(detail["timeline"]), hide_index=True, width="stretch")
    signals.dataframe(timeline[timeline["type"].isin(["receipt", "result"])], hide_index=True, width="stretch")
    everything.dataframe(timeline, hide_index=True, width="stretch")


detail = ui.fetch(ui.client().incident, incident_id)
if detail is None:
    st.stop()


# While a reprocess runs, watch it finish.
@st.fragment(run_every=2 if detail["state"] == "reprocessing" else None)
def _body() -> None:
    current = ui.fetch(ui.client().incident, incident_id)
    if current is None:
        return
    _header(current)
    _actions(current)
    _story(current)


_body()
