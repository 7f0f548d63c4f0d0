"""Incidents: filter, page through, open one, reprocess several."""

from __future__ import annotations

from datetime import datetime, time, timezone
from typing import Any

import streamlit as st

from fulfillwatch.dashboard import ui, views

st.title("Incidents")
current = ui.config()

words = ui.vocabulary()
with st.expander("Filters", expanded=True):
    first, second, third = st.columns(3)
    state = first.selectbox("State", ["any", *words["states"]], index=1 if words["states"] else 0, key="f_state")
    kind = second.selectbox("Kind", ["any", *words["kinds"]], key="f_kind")
    search = third.text_input("Stripe event id", key="f_event", placeholder="evt_...")
    fourth, fifth, sixth = st.columns(3)
    event_type = fourth.text_input("Event type", key="f_type", placeholder="invoice.paid")
    effect = fifth.text_input("Effect", key="f_effect")
    service = sixth.text_input("Service", key="f_service")
    since = st.date_input("Opened since", value=None, key="f_since")

filters: dict[str, Any] = {
    "state": None if state == "any" else state,
    "kind": None if kind == "any" else kind,
    "stripe_event_id": search.strip() or None,
    "event_type": event_type.strip() or None,
    "effect": effect.strip() or None,
    "service": service.strip() or None,
    "since": datetime.combine(since, time.min, timezone.utc).isoformat() if since else None,
}
page_number = int(st.session_state.get("incidents_page", 1))
page = ui.fetch(ui.client().incidents, filters, current.page_size, (page_number - 1) * current.page_size)
if page is None:
    st.stop()
if page["total"] == 0:
    st.info("No incidents match these filters.")
    st.stop()

pages = views.page_count(page["total"], current.page_size)
st.caption(f"{page['total']} incidents — page {page_number} of {pages}, most recently updated first")
table = views.incident_table(page["items"])
picked = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="incidents_table"
)
selected = [table.iloc[row]["id"] for row in picked.selection.rows] if picked is not None else []

left, middle, right = st.columns([2, 1, 1])
opened = left.selectbox(
    "Open an incident",
    table["id"].tolist(),
    key="open_id",
    format_func=lambda i: f"{i} — {table.set_index('id').loc[i, 'Stripe event']}",
)
if left.button("Open", key="open_incident"):
    st.switch_page("screens/incident.py", query_params={"id": opened})
new_page = middle.number_input("Page", min_value=1, max_value=pages, value=page_number, step=1)
if new_page != page_number:
    st.session_state["incidents_page"] = int(new_page)
    st.rerun()

if selected:
    st.divider()
    st.write(f"**{len(selected)} selected.**")
    if right.button(f"Reprocess {len(selected)} selected", key="bulk_start"):
        st.session_state["bulk_ids"] = selected
bulk_ids = st.session_state.get("bulk_ids") or []
if bulk_ids:
    preview = ui.fetch(ui.client().bulk_reprocess, bulk_ids, "", dry_run=True)
    if preview is not None:
        st.warning(
            f"Send signed reprocess callbacks for **{preview['count']}** active incident(s)? "
            "Resolved and reprocessing ones are left alone."
        )
        reason = st.text_input("Reason (recorded)", key="bulk_reason")
        confirm, cancel = st.columns(2)
        if confirm.button("Confirm bulk reprocess", key="bulk_confirm", type="primary"):
            job = ui.fetch(ui.client().bulk_reprocess, bulk_ids, reason, dry_run=False)
            st.session_state["bulk_ids"] = []
            if job is not None:
                st.session_state["bulk_job"] = job["id"]
            st.rerun()
        if cancel.button("Cancel", key="bulk_cancel"):
            st.session_state["bulk_ids"] = []
            st.rerun()
job_id = st.session_state.get("bulk_job")
if job_id:
    job = ui.fetch(ui.client().bulk_job, job_id)
    if job is not None:
        st.success(
            f"Bulk job {job['id']}: {job['state']}, {job['processed']}/{job['total']} processed "
            f"({job['requested']} requested, {job['already_running']} already running, {job['failed']} failed)"
        )
