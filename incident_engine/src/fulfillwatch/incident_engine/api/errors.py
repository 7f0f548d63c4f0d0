"""The one map from errors to HTTP answers, installed on the API app.

* domain errors of the lifecycle (:mod:`~fulfillwatch.incident_engine.incidents.errors`):
  not found → 404, conflict → 409, invalid → 422, unavailable → 503;
* the store cannot be reached → 503 with ``Retry-After``;
* anything else is a bug: :class:`~fulfillwatch.collector_processor.catch_all.CatchAll` answers
  a ``application/problem+json`` 500 without details (no SQL, no paths) and logs one line.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fulfillwatch.collector_processor.catch_all import CatchAll
from fulfillwatch.incident_engine.api.context import STORE_ERRORS, ApiContext
from fulfillwatch.incident_engine.incidents.errors import ActionError, Conflict, Invalid, NotFound, Unavailable

_logger = logging.getLogger("fulfillwatch.api")
_STATUS = {NotFound: 404, Conflict: 409, Invalid: 422, Unavailable: 503}


def install_error_handlers(app: FastAPI, context: ApiContext) -> None:
    """Register the handlers on ``app``."""

    async def action_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ActionError)
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 409)
        return JSONResponse({"detail": exc.message}, status_code=status)

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        context.store.discard("api")
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        _logger.warning("store unavailable answering %s %s: %s", request.method, request.url.path, message)
        return JSONResponse(
            {"detail": "the store is unavailable; retry later"}, status_code=503, headers={"Retry-After": "5"}
        )

    app.add_exception_handler(ActionError, action_error)
    for error in STORE_ERRORS:
        app.add_exception_handler(error, store_unavailable)
    app.add_middleware(CatchAll)
