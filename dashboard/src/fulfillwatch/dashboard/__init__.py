"""Fulfillwatch dashboard: a Streamlit app over the Fulfillwatch HTTP API.

* :mod:`.settings` — where the API is, the token, the sign-in, the trace link template;
* :mod:`.auth` — who is signed in: OpenID Connect, password accounts or a trusted proxy;
* :mod:`.client` — the API client, with clear errors for "unreachable" and "bad token";
* :mod:`.views` — tables, charts and formatting, testable without Streamlit;
* :mod:`.app`, :mod:`.ui` and the ``screens`` folder — the thin Streamlit scripts;
* :mod:`.cli` — ``fulfillwatch-dashboard`` (run, and hash a password).
"""

from .version import __version__

__all__ = ["__version__"]
