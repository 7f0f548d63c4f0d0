"""The last line of defence of an ASGI app: an unexpected error becomes one answer and one line.

Starlette's own server-error handler re-raises after answering, so that the server logs a full
traceback; on a request path that costs time and floods the log. This middleware answers
``500`` with a problem-details document (``application/problem+json``) naming a reference, logs
one line with that reference, and keeps the traceback for the debug level.
"""

from __future__ import annotations

import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_logger = logging.getLogger("fulfillwatch.http")


class CatchAll:
    """ASGI middleware: no exception leaves the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # this is the catch-all
            reference = uuid.uuid4().hex[:12]
            first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
            _logger.error(
                "internal error %s on %s %s: %s: %s",
                reference,
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                first_line,
            )
            _logger.debug("internal error %s", reference, exc_info=exc)
            if started:
                return  # the answer is under way; nothing more can be said
            body = json.dumps(
                {
                    "type": "about:blank",
                    "title": "Internal Server Error",
                    "status": 500,
                    "detail": f"an internal error occurred (reference {reference}); it is in the server log",
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/problem+json"), (b"content-length", b"%d" % len(body))],
                }
            )
            await send({"type": "http.response.body", "body": body})
