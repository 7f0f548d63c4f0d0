"""``fulfillwatch-dashboard``: run the Streamlit app (headless, no usage statistics)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main() -> None:
    """Start ``streamlit run`` on the dashboard app."""
    parser = argparse.ArgumentParser(description="The Fulfillwatch dashboard")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FULFILLWATCH_DASHBOARD_PORT", "8501")))
    parser.add_argument("--host", default=os.environ.get("FULFILLWATCH_DASHBOARD_HOST", "127.0.0.1"))
    args = parser.parse_args()
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
    sys.exit(streamlit_cli.main())


if __name__ == "__main__":
    main()
