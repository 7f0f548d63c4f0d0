"""Why an action on incidents cannot be taken — domain errors, mapped to HTTP once, in the API.

Business code raises these and knows nothing of HTTP; ``api/errors.py`` says which status each
one is.
"""

from __future__ import annotations


class ActionError(Exception):
    """An action that cannot be taken; ``message`` says why, for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ActionError):
    """No such incident (or bulk job)."""


class Conflict(ActionError):
    """The incident's state does not allow it (already resolved, no repair target, ...)."""


class Invalid(ActionError):
    """The request itself is not acceptable (a reason is missing, a filter is too wide)."""


class Unavailable(ActionError):
    """This process cannot do it now (no dispatcher here, the store is down)."""
