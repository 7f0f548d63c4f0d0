"""Fulfillwatch server: detection, the incident log, the HTTP API and the CLI."""

from .version import __version__

__all__ = ["__version__"]
