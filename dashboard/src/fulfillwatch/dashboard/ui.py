"""Streamlit glue shared by the pages: the API client, problems shown as problems, login."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from .client import ApiClient, ApiProblem, ApiUnreachable, BadToken
from .settings import DashboardSettings, settings

_T = TypeVar("_T")


def config() -> DashboardSettings:
    """The dashboard's settings."""
    return settings()


@st.cache_resource
def _client(base_url: str, token: str, actor: str) -> ApiClient:
    return ApiClient(base_url, token, actor=actor)


def client() -> ApiClient:
    """The API client of this session (the logged-in user is the actor of its actions)."""
    current = config()
    token = current.api_token.get_secret_value() if current.api_token else ""
    actor = str(st.session_state.get("user") or "dashboard")
    return _client(current.api_url, token, actor)


def show_problem(problem: ApiProblem) -> None:
    """An API problem as the page's message, with what to do about it."""
    if isinstance(problem, ApiUnreachable):
        st.error(f"**The Fulfillwatch API is unreachable.** {problem}")
    elif isinstance(problem, BadToken):
        st.error(f"**The API token was refused.** {problem}")
    else:
        st.error(str(problem))
    if problem.hint:
        st.caption(problem.hint)


def fetch(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
    """Call the API; on a problem, show it and return ``None`` (the page stops there)."""
    try:
        return call(*args, **kwargs)
    except ApiProblem as problem:
        show_problem(problem)
        return None


def logged_in() -> bool:
    """Demo mode, or a session that entered the shared password (or the API token)."""
    current = config()
    if current.demo or st.session_state.get("authenticated"):
        return True
    st.title("Fulfillwatch")
    with st.form("login"):
        user = st.text_input("Your name (recorded with your actions)")
        secret = st.text_input("Password or API token", type="password")
        if st.form_submit_button("Log in"):
            accepted = [s.get_secret_value() for s in (current.password, current.api_token) if s is not None]
            if any(hmac.compare_digest(secret.encode(), value.encode()) for value in accepted if value):
                st.session_state["authenticated"] = True
                st.session_state["user"] = user.strip() or "dashboard"
                st.rerun()
            st.error("Wrong password or token.")
    return False
