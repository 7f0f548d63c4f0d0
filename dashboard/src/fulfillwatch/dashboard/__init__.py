"""Fulfillwatch dashboard: a Streamlit app over the Fulfillwatch HTTP API.

* :mod:`.settings` — where the API is, the token, the login, the trace link template;
* :mod:`.client` — the API client, with clear errors for "unreachable" and "bad token";
* :mod:`.views` — tables, charts and formatting, testable without Streamlit;
* :mod:`.app` and the ``screens`` folder — the thin Streamlit scripts.
"""

from .version import __version__

__all__ = ["__version__"]
