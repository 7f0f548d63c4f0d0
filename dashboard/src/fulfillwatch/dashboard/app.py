"""The Fulfillwatch dashboard (Streamlit entry point): ``fulfillwatch-dashboard``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fulfillwatch.dashboard import ui

st.set_page_config(page_title="Fulfillwatch", page_icon="🧾", layout="wide")
# Not "pages": Streamlit would also serve a folder of that name as pages of their own, reachable
# by URL without passing through this script — and so without the sign-in below.
_PAGES = Path(__file__).parent / "screens"

if ui.logged_in():
    with st.sidebar:
        st.caption("Signed in as")
        st.text(str(st.session_state.get("user")))
        if not ui.config().demo and st.button("Sign out", key="sign_out"):
            ui.sign_out()
            st.rerun()
    navigation = st.navigation(
        [
            st.Page(_PAGES / "overview.py", title="Overview", icon="📊", url_path="overview", default=True),
            st.Page(_PAGES / "incidents.py", title="Incidents", icon="🚨", url_path="incidents"),
            st.Page(_PAGES / "incident.py", title="Incident", icon="🧾", url_path="incident"),
            st.Page(_PAGES / "event.py", title="Event lookup", icon="🔎", url_path="event"),
        ]
    )
    navigation.run()
