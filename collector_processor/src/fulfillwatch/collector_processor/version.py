"""Version of the fulfillwatch-collector-processor distribution."""

__version__ = "0.1.0"
