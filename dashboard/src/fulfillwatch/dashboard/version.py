"""Version of the fulfillwatch-dashboard distribution."""

__version__ = "0.1.0"
