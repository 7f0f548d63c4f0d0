"""Version of the fulfillwatch-incident-engine distribution."""

__version__ = "0.1.0"
