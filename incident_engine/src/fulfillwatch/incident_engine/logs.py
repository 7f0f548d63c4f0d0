"""Server logging: one line per record, plain or JSON, and nothing secret.

* ``plain``: ``2026-12-02T10:00:00Z INFO fulfillwatch.engine: message``; ``json``: one JSON
  object per line (``time``, ``level``, ``logger``, ``message``, ``error``) for log shippers.
* Records of the HTTP server about a single request (an invalid request, a client that went
  away) carry their exception as one ``error`` field, never as a traceback: a client must not be
  able to make the server spend its time writing tracebacks.
* httpx and httpcore log every request URL at INFO — a Slack webhook URL is a credential — so
  they are held at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

LogFormat = Literal["plain", "json"]
#: Loggers whose records are about one request (their tracebacks become one field).
_REQUEST_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "fulfillwatch.ingest", "fulfillwatch.http")
_QUIET = ("httpx", "httpcore", "uvicorn.access")


def _error_of(record: logging.LogRecord) -> str:
    if not record.exc_info or record.exc_info[1] is None:
        return ""
    error = record.exc_info[1]
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


class _OneLineErrors(logging.Filter):
    """Replaces a request-path record's traceback by the exception's type and first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.fw_error = _error_of(record)
            record.exc_info = None
            record.exc_text = None
        return True


class _PlainFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        error = getattr(record, "fw_error", "")
        return f"{text} ({error})" if error else text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        error = getattr(record, "fw_error", "") or _error_of(record)
        if error:
            document["error"] = error
        if record.exc_info and record.levelno >= logging.ERROR:
            document["traceback"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def configure_logging(level: str = "info", log_format: LogFormat = "plain") -> None:
    """Install the handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _PlainFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLineErrors) for f in logger.filters):
            logger.addFilter(_OneLineErrors())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
