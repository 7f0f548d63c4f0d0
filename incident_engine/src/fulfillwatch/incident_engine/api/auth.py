"""Bearer-token authentication of the API.

The token is compared in constant time. Every authenticated request has a :class:`Principal`;
its ``actor`` is what the incident log records for actions taken through the API.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .context import ContextDep

_bearer = HTTPBearer(auto_error=False, description="FULFILLWATCH_API_TOKEN")
_ACTOR_HEADER = "x-fulfillwatch-actor"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token holder, optionally naming the human behind it."""

    actor: str


def require_token(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Reject requests without the right bearer token (401)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <FULFILLWATCH_API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = context.settings.token().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    # A shared token cannot tell people apart; clients (the dashboard) name the user here.
    named = request.headers.get(_ACTOR_HEADER, "").strip()[:128]
    return Principal(actor=f"api:{named}" if named else "api")


PrincipalDep = Annotated[Principal, Depends(require_token)]
