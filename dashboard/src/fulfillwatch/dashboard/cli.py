"""``fulfillwatch-dashboard``: run the Streamlit app (headless, no usage statistics).

``fulfillwatch-dashboard hash-password`` prints an argon2 hash for the users file.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path

from fulfillwatch.dashboard.settings import DashboardSettings


def _oidc_secrets(config: DashboardSettings) -> Path | None:
    """Streamlit reads OIDC settings from a secrets file: write one, readable only by us."""
    if not config.oidc:
        return None
    missing = [
        name
        for name, value in (
            ("FULFILLWATCH_DASHBOARD_OIDC_CLIENT_SECRET", config.oidc_client_secret),
            ("FULFILLWATCH_DASHBOARD_OIDC_REDIRECT_URI", config.oidc_redirect_uri),
            ("FULFILLWATCH_DASHBOARD_COOKIE_SECRET", config.cookie_secret),
        )
        if not value
    ]
    if missing:
        sys.exit(f"fulfillwatch-dashboard: OpenID Connect sign-in also needs {', '.join(missing)}")
    assert config.oidc_client_secret is not None and config.cookie_secret is not None

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    directory = Path(tempfile.mkdtemp(prefix="fulfillwatch-dashboard-"))
    path = directory / "secrets.toml"
    path.touch(mode=0o600)
    path.write_text(
        "[auth]\n"
        f"redirect_uri = {quoted(str(config.oidc_redirect_uri))}\n"
        f"cookie_secret = {quoted(config.cookie_secret.get_secret_value())}\n"
        f"client_id = {quoted(str(config.oidc_client_id))}\n"
        f"client_secret = {quoted(config.oidc_client_secret.get_secret_value())}\n"
        f"server_metadata_url = {quoted(str(config.oidc_server_metadata_url))}\n"
    )
    return path


def _hash_password() -> None:
    from fulfillwatch.dashboard.auth import hash_password

    name = input("User name: ").strip()
    password = getpass.getpass("Password: ")
    if len(password) < 10 or getpass.getpass("Again: ") != password:
        sys.exit("fulfillwatch-dashboard: the passwords differ, or the password is shorter than 10 characters")
    print(f'\n[users."{name}"]\npassword = "{hash_password(password)}"')


def main() -> None:
    """Start ``streamlit run`` on the dashboard app (or hash a password)."""
    parser = argparse.ArgumentParser(description="The Fulfillwatch dashboard")
    parser.add_argument("command", nargs="?", choices=["run", "hash-password"], default="run")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FULFILLWATCH_DASHBOARD_PORT", "8501")))
    parser.add_argument("--host", default=os.environ.get("FULFILLWATCH_DASHBOARD_HOST", "127.0.0.1"))
    args = parser.parse_args()
    if args.command == "hash-password":
        _hash_password()
        return
    config = DashboardSettings()
    secrets_file = _oidc_secrets(config)
    # The sign-in trusts a proxy's header only from the proxy's own address: the server must
    # report the real peer, not an X-Forwarded-For it was sent (uvicorn rewrites it by default
    # for connections from 127.0.0.1).
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    from streamlit.web import cli as streamlit_cli

    sys.argv = [
        "streamlit",
        "run",
        str(Path(__file__).with_name("app.py")),
        "--server.headless=true",
        f"--server.port={args.port}",
        f"--server.address={args.host}",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",
    ]
    if secrets_file is not None:
        sys.argv.append(f"--secrets.files={secrets_file}")
    sys.exit(streamlit_cli.main())


if __name__ == "__main__":
    main()
