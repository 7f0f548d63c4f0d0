"""What the API's routes need, shared through ``app.state`` and FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import Depends, HTTPException, Request

from fulfillwatch.collector_processor.counters import IngestCounters
from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.detection.engine import Engine
from fulfillwatch.incident_engine.incidents.bulk import BulkReprocessor
from fulfillwatch.incident_engine.incidents.lifecycle import IncidentActions
from fulfillwatch.incident_engine.settings import ServerSettings


@dataclass
class ApiContext:
    """Process-wide objects of the API."""

    settings: ServerSettings
    store: Store
    counters: IngestCounters
    engine: Engine | None = None
    actions: IncidentActions | None = None
    bulk: BulkReprocessor | None = None


def get_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the running app."""
    context: ApiContext = request.app.state.context
    return context


def get_client(context: Annotated[ApiContext, Depends(get_context)]) -> Client:
    """The API's store client; 503 when the store is unreachable."""
    try:
        return context.store.client("api")
    except StoreUnavailable as exc:
        raise HTTPException(503, f"store unavailable: {exc}", headers={"Retry-After": "5"}) from exc


ContextDep = Annotated[ApiContext, Depends(get_context)]
ClientDep = Annotated[Client, Depends(get_client)]
#: Errors meaning "the store cannot be reached": 503 (see ``create_api_app``). Other query
#: errors are bugs: 500, logged, with no SQL in the response.
STORE_ERRORS = (StoreUnavailable, OperationalError, OSError)
