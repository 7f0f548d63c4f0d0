"""Fulfillwatch dashboard (placeholder: the Streamlit app reads the HTTP API only)."""

from .version import __version__

__all__ = ["__version__"]
