"""API tokens as configured: name, SHA-256 digest, scopes (see :mod:`.auth` for their meaning)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from fulfillwatch.incident_engine.settings import ServerSettings

#: The name of the FULFILLWATCH_API_TOKEN token in the audit trail.
ENV_TOKEN_NAME = "api"  # noqa: S105 - a name, not a secret
_IMPLIED = {"admin": ("admin", "operate", "read"), "operate": ("operate", "read"), "read": ("read",)}
_ALL_SCOPES = frozenset({"read", "operate", "admin", "act_as"})


@dataclass(frozen=True)
class Token:
    """A configured API token."""

    name: str
    digest: str
    scopes: frozenset[str]


def expand_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The scopes a token has, with those its scopes include (``admin`` ⊃ ``operate`` ⊃ ``read``)."""
    return frozenset(implied for scope in scopes for implied in _IMPLIED.get(scope, (scope,)))


def token_index(settings: ServerSettings) -> Mapping[str, Token]:
    """SHA-256 digest → token, from the settings."""
    tokens = {
        config.sha256: Token(name, config.sha256, expand_scopes(list(config.scopes)))
        for name, config in settings.api_tokens.items()
    }
    if settings.token():
        digest = hashlib.sha256(settings.token().encode()).hexdigest()
        tokens[digest] = Token(ENV_TOKEN_NAME, digest, _ALL_SCOPES)
    return tokens
