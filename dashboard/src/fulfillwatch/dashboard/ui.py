"""Streamlit glue shared by the pages: sign-in, the API client, problems shown as problems.

Sign-in (see :mod:`.settings`): a trusted proxy's header, OpenID Connect (``st.login``), or
per-user accounts — never a name the user types. Whoever is signed in is the actor of what the
dashboard does: its API token (``act_as`` scope) names them in every request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from fulfillwatch.dashboard.auth import AccountsError, LoginThrottle, UserAccounts, peer_address, proxy_user
from fulfillwatch.dashboard.client import ApiClient, ApiProblem, ApiUnreachable, BadToken
from fulfillwatch.dashboard.settings import DashboardSettings, settings

_T = TypeVar("_T")
DEMO_USER = "demo"


def config() -> DashboardSettings:
    """The dashboard's settings."""
    return settings()


@st.cache_resource
def _client(base_url: str, token: str, user: str) -> ApiClient:
    return ApiClient(base_url, token, user=user)


def client() -> ApiClient:
    """The API client of this session, acting for the signed-in person."""
    current = config()
    token = current.api_token.get_secret_value() if current.api_token else ""
    return _client(current.api_url, token, str(st.session_state.get("user") or DEMO_USER))


def show_problem(problem: ApiProblem) -> None:
    """An API problem as the page's message, with what to do about it (as plain text)."""
    if isinstance(problem, ApiUnreachable):
        st.error("The Fulfillwatch API is unreachable.")
    elif isinstance(problem, BadToken):
        st.error("The API token was refused.")
    st.text(str(problem))
    if problem.hint:
        st.caption(problem.hint)


def fetch(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
    """Call the API; on a problem, show it and return ``None`` (the page stops there)."""
    try:
        return call(*args, **kwargs)
    except ApiProblem as problem:
        show_problem(problem)
        return None


@st.cache_data(ttl=300)
def _vocabulary(base_url: str, token: str) -> dict[str, list[str]]:
    return ApiClient(base_url, token, user=DEMO_USER).vocabulary()


def vocabulary() -> dict[str, list[str]]:
    """Incident states and kinds as the API declares them (``{"states": [...], "kinds": [...]}``)."""
    current = config()
    token = current.api_token.get_secret_value() if current.api_token else ""
    try:
        return _vocabulary(current.api_url, token)
    except ApiProblem as problem:
        show_problem(problem)
        return {"states": [], "kinds": []}


@st.cache_resource
def _throttle(per_user: int, per_address: int, window_s: float) -> LoginThrottle:
    return LoginThrottle(per_user, per_address, window_s)


@st.cache_resource
def _accounts(path: str) -> UserAccounts:
    return UserAccounts.from_file(Path(path))


def _oidc_user() -> str | None:
    user = st.user
    if not user.is_logged_in:
        return None
    for claim in ("email", "preferred_username", "sub"):
        value = user.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:128]
    return None


def _password_form(current: DashboardSettings) -> None:
    assert current.users_file is not None
    try:
        accounts = _accounts(str(current.users_file))
    except AccountsError as exc:
        st.error("Sign-in is misconfigured.")
        st.text(str(exc))
        return
    throttle = _throttle(current.login_attempts_per_user, current.login_attempts_per_address, current.login_window_s)
    address = peer_address(st.context.ip_address)
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        if not st.form_submit_button("Sign in"):
            return
    name = name.strip()
    wait = throttle.wait_s(name, address)
    if wait > 0:
        st.error(f"Too many failed sign-ins: try again in {wait / 60:.0f} min.")
        return
    if name and accounts.verify(name, password):
        throttle.succeeded(name)
        st.session_state["user"] = name
        st.rerun()
    throttle.failed(name, address)
    st.error("Wrong user name or password.")


def logged_in() -> bool:
    """Whether someone is signed in (and who: ``st.session_state["user"]``); else the sign-in."""
    current = config()
    if current.demo:
        st.session_state["user"] = DEMO_USER
        return True
    proxied = proxy_user(
        dict(st.context.headers),
        peer_address(st.context.ip_address),
        current.trusted_proxy_header,
        current.trusted_proxies,
    )
    if proxied:
        st.session_state["user"] = proxied
        return True
    if current.oidc:
        user = _oidc_user()
        if user:
            st.session_state["user"] = user
            return True
    if st.session_state.get("user") and current.users_file is not None:
        return True
    st.title("Fulfillwatch")
    if current.oidc:
        st.button("Sign in with your identity provider", on_click=st.login, type="primary")
    if current.users_file is not None:
        _password_form(current)
    if not current.oidc and current.users_file is None:
        st.error(
            "No sign-in is configured: set FULFILLWATCH_DASHBOARD_USERS_FILE, the OIDC settings, or a "
            "trusted proxy header (or FULFILLWATCH_DASHBOARD_DEMO=1 for a demo)."
        )
    return False


def sign_out() -> None:
    """End the session (and the OIDC login, if any)."""
    st.session_state.pop("user", None)
    if config().oidc and st.user.is_logged_in:
        st.logout()
