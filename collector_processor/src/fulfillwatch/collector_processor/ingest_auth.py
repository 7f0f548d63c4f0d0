"""Who may write signals, and for which project: ingest keys and the projects that own services.

A **project** owns a set of ``service.name`` values (a web app and its workers usually have
different ones). An **ingest key** has a name, is known to the server only by its SHA-256, and is
granted one or several projects (a shared Collector forwarding for many apps holds one key
granted all of them). A span or REST signal counts for the project that owns its service, and a
key may write it only when that project is granted to it; otherwise the signal is rejected
(OTLP: ``partial_success`` with the reason; REST: 403). So one project's signals can never
resolve another project's incident or trigger its repair callback: expectations and incidents
are keyed by project.

Keys are required by default. With ingest authentication off (``--demo``, or
``ingest_auth = "off"`` on a loopback listener), a request without a key may write any service:
it counts for the project that owns the service, or :data:`DEFAULT_PROJECT`. A key that is sent
is always checked, and its grants apply.

The key is looked up by its SHA-256 digest: the digest of a guess reveals nothing about stored
digests, so the dictionary lookup leaks no timing an attacker can use; the final comparison
is ``hmac.compare_digest`` all the same.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

#: The project of signals whose service no project owns (ingest auth off), and of everything
#: stored before projects existed.
DEFAULT_PROJECT = "default"


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest the configuration holds instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IngestKey:
    """A named ingest key and the projects it may write for."""

    name: str
    #: SHA-256 hex digest of the key (:func:`hash_api_key`).
    digest: str
    projects: frozenset[str]


class IngestAuthError(Exception):
    """The request may not write signals at all; ``status`` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IngestAccess:
    """The ingest authentication policy of one process."""

    #: SHA-256 hex digest of each key → the key.
    keys: Mapping[str, IngestKey] = field(default_factory=dict)
    #: ``service.name`` → the project that owns it.
    service_projects: Mapping[str, str] = field(default_factory=dict)
    #: Whether a request must present a key.
    required: bool = True

    def authenticate(self, authorization: str | None) -> IngestKey | None:
        """The key named by an ``Authorization: Bearer <key>`` header; ``None`` for an anonymous
        request when keys are not required. Raises :class:`IngestAuthError` (401)."""
        if not authorization:
            if self.required:
                raise IngestAuthError(401, "missing ingest key: send 'Authorization: Bearer <key>'")
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise IngestAuthError(401, "the Authorization header must be 'Bearer <ingest key>'")
        digest = hash_api_key(token)
        found = self.keys.get(digest)
        if found is None or not hmac.compare_digest(found.digest, digest):
            raise IngestAuthError(401, "unknown ingest key")
        return found

    def project_for(self, key: IngestKey | None, service: str) -> tuple[str, str]:
        """``(project, "")`` when ``key`` may write signals of ``service``, else ``("", reason)``."""
        owner = self.service_projects.get(service)
        if key is None:
            return owner or DEFAULT_PROJECT, ""
        if owner is None:
            return "", (
                f"service {service!r} belongs to no project; add it to the services of a project "
                f"granted to ingest key {key.name!r}"
            )
        if owner not in key.projects:
            return "", f"service {service!r} is not in a project granted to ingest key {key.name!r}"
        return owner, ""

    def services_of(self, key: IngestKey | None) -> list[str]:
        """The services a key may write for (REST: the default when there is exactly one)."""
        return sorted(
            service for service, project in self.service_projects.items() if key is None or project in key.projects
        )
