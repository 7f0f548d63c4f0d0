"""What the API's routes need, shared through ``app.state`` and FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import Depends, Request

from fulfillwatch.collector_processor.counters import IngestCounters
from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.api.tokens import Token, token_index
from fulfillwatch.incident_engine.detection.engine import Engine
from fulfillwatch.incident_engine.incidents.bulk import BulkReprocessor
from fulfillwatch.incident_engine.incidents.lifecycle import IncidentActions
from fulfillwatch.incident_engine.readiness import Readiness
from fulfillwatch.incident_engine.settings import ServerSettings


@dataclass
class ApiContext:
    """Process-wide objects of the API."""

    settings: ServerSettings
    store: Store
    counters: IngestCounters
    readiness: Readiness
    engine: Engine | None = None
    actions: IncidentActions | None = None
    bulk: BulkReprocessor | None = None
    #: SHA-256 digest → API token (from the settings).
    tokens: Mapping[str, Token] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tokens:
            self.tokens = token_index(self.settings)


def get_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the running app."""
    context: ApiContext = request.app.state.context
    return context


def get_client(context: Annotated[ApiContext, Depends(get_context)]) -> Client:
    """The API's store client (:class:`StoreUnavailable` becomes 503, see ``api/errors.py``)."""
    return context.store.client("api")


ContextDep = Annotated[ApiContext, Depends(get_context)]
ClientDep = Annotated[Client, Depends(get_client)]
#: Errors meaning "the store cannot be reached": 503 (see ``api/errors.py``). Other query
#: errors are bugs: a logged 500 without SQL in the response.
STORE_ERRORS = (StoreUnavailable, OperationalError, OSError)
