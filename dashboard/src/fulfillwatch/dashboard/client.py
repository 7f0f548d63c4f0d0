"""The dashboard's only way to data: the Fulfillwatch HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class ApiProblem(Exception):
    """Something the dashboard shows instead of data; ``hint`` says what to do."""

    hint = ""


class ApiUnreachable(ApiProblem):
    """No answer from the API (down, wrong URL, network)."""

    hint = "Is `fulfillwatch serve` running, and is FULFILLWATCH_DASHBOARD_API_URL right?"


class BadToken(ApiProblem):
    """The API refused the token (401)."""

    hint = "Set FULFILLWATCH_API_TOKEN (or FULFILLWATCH_DASHBOARD_API_TOKEN) to the server's token."


class ApiError(ApiProblem):
    """The API answered with an error; ``status`` and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """A small typed wrapper around the endpoints the dashboard uses.

    It acts for ``user`` (``X-Fulfillwatch-User``): the dashboard's token must have the
    ``act_as`` scope, and the audit trail then records that person, not the token."""

    def __init__(self, base_url: str, token: str, *, user: str, timeout: float = 15) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "X-Fulfillwatch-User": user},
            timeout=timeout,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnreachable(f"cannot reach the Fulfillwatch API at {self.base_url}: {exc}") from None
        if response.status_code == 401:
            raise BadToken("the Fulfillwatch API refused the token")
        if response.status_code == 403:
            raise ApiError(403, "the dashboard's API token may not do this (it needs the operate scope and act_as)")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, f"HTTP {response.status_code}: {detail}")
        return response.json()

    def vocabulary(self) -> dict[str, list[str]]:
        """Incident states and kinds, as the API's schema declares them."""
        schemas = self._call("GET", "/openapi.json")["components"]["schemas"]
        return {"states": list(schemas["State"]["enum"]), "kinds": list(schemas["Kind"]["enum"])}

    def stats(self, window_hours: float = 24) -> dict[str, Any]:
        return dict(self._call("GET", "/api/stats", params={"window_hours": window_hours}))

    def incidents(self, filters: Mapping[str, Any], limit: int, offset: int) -> dict[str, Any]:
        params = {key: value for key, value in filters.items() if value not in (None, "", [])}
        return dict(self._call("GET", "/api/incidents", params={**params, "limit": limit, "offset": offset}))

    def incident(self, incident_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/incidents/{incident_id}"))

    def event(self, stripe_event_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/events/{stripe_event_id}"))

    def reprocess(self, incident_id: str, reason: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/incidents/{incident_id}/reprocess", json={"reason": reason}))

    def acknowledge(self, incident_id: str, reason: str = "") -> dict[str, Any]:
        return dict(self._call("POST", f"/api/incidents/{incident_id}/acknowledge", json={"reason": reason}))

    def ignore(self, incident_id: str, reason: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/incidents/{incident_id}/ignore", json={"reason": reason}))

    def note(self, incident_id: str, text: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/incidents/{incident_id}/notes", json={"text": text}))

    def bulk_reprocess(self, incident_ids: list[str], reason: str, *, dry_run: bool) -> dict[str, Any]:
        body = {"filter": {"incident_ids": incident_ids}, "dry_run": dry_run, "reason": reason}
        return dict(self._call("POST", "/api/reprocess", json=body))

    def bulk_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/reprocess/{job_id}"))
