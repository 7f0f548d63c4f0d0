"""Version of the fulfillwatch-instrumentation distribution."""

__version__ = "0.1.0"
