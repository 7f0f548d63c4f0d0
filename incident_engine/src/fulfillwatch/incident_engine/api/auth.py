"""API tokens: who is calling, what they may do, and whose name the audit trail records.

Every token has a name and scopes (``[api_tokens.<name>]``, only its SHA-256 configured;
``FULFILLWATCH_API_TOKEN`` is the all-scopes token named ``api``):

* ``read`` — every ``GET``;
* ``operate`` — acknowledge, ignore, note, reprocess one incident (includes ``read``);
* ``admin`` — bulk reprocess (includes ``operate``);
* ``act_as`` — the token may name the person it acts for in ``X-Fulfillwatch-User`` (the
  dashboard, which signs its users in). The log then records that person, with the token as
  ``via``.

The actor recorded is always the token's name or the person its ``act_as`` token names: a header
a caller chooses (the old ``X-Fulfillwatch-Actor``) is ignored. Tokens are compared by their
SHA-256 digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fulfillwatch.incident_engine.api.context import ContextDep
from fulfillwatch.incident_engine.incidents.lifecycle import Actor

_bearer = HTTPBearer(auto_error=False, description="An API token (FULFILLWATCH_API_TOKEN or [api_tokens])")
USER_HEADER = "x-fulfillwatch-user"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token, what it may do, and the actor the log records."""

    token: str
    scopes: frozenset[str]
    actor: Actor


def _person(value: str) -> str:
    name = value.strip()
    if not name or len(name) > 128 or not name.isprintable():
        raise HTTPException(400, "X-Fulfillwatch-User must be a printable name of at most 128 characters")
    return name


def authenticate(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a request (401 without a valid token)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <API token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
    token = context.tokens.get(digest)
    if token is None or not hmac.compare_digest(token.digest, digest):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    person = request.headers.get(USER_HEADER)
    if person is None:
        return Principal(token.name, token.scopes, Actor(token.name))
    if "act_as" not in token.scopes:
        raise HTTPException(403, f"token {token.name!r} may not act for a person (it lacks the act_as scope)")
    return Principal(token.name, token.scopes, Actor(_person(person), via=token.name))


def require(scope: str) -> Callable[..., Principal]:
    """A dependency admitting callers whose token has ``scope`` (403 otherwise)."""

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if scope not in principal.scopes:
            raise HTTPException(403, f"token {principal.token!r} lacks the {scope!r} scope")
        return principal

    return check


ReadDep = Annotated[Principal, Depends(require("read"))]
OperateDep = Annotated[Principal, Depends(require("operate"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
