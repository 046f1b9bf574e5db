"""The simulator's outbound-webhook operations (SPEC-2025 `createWebhook`, `getWebhooks`,
`getWebhookById`, `updateWebhook`, `deleteWebhook`), added to the simulator's OPERATIONS.

A webhook belongs to a project (`scope: {id: <project id>, type: "project"}`); answers show its
signing secret masked. Bodies are checked as CircleCI documents them: `url` https only,
`events` a subset of workflow-completed and job-completed. A project made with
`Dataset.deny_webhooks(slug)` answers 403 to every call on its webhooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.simulators.circleci_api import bad_request, forbidden, not_found
from service.simulators.circleci_data import WEBHOOK_EVENTS, Dataset, now

if TYPE_CHECKING:
    from service.simulators.circleci import Simulator

_REQUIRED = ("name", "events", "url", "verify-tls", "signing-secret", "scope")
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "events": (
        lambda v: isinstance(v, list) and bool(v) and all(e in WEBHOOK_EVENTS for e in v),
        f"a non-empty list of {', '.join(WEBHOOK_EVENTS)}",
    ),
    "url": (lambda v: isinstance(v, str) and v.startswith("https://"), "an https URL (only https is supported)"),
    "verify-tls": (lambda v: isinstance(v, bool), "true or false"),
    "signing-secret": (lambda v: isinstance(v, str), "a string"),
}


def _problem(body: Any, *, create: bool) -> str | None:
    """What is wrong with a create (every field required) or update (any of them) body."""
    if not isinstance(body, dict):
        return "a JSON object is required"
    missing = [key for key in _REQUIRED if create and key not in body]
    if missing:
        return f"missing required fields: {', '.join(missing)}"
    for key, (valid, expected) in _CHECKS.items():
        if key in body and not valid(body[key]):
            return f"{key} must be {expected}"
    return None


def _scoped(sim: Simulator, project_id: str) -> Response | None:
    """404 for an unknown project, 403 for one whose webhooks the user may not manage."""
    if sim.dataset.project_by_id(project_id) is None:
        return not_found("Project not found")
    if project_id in sim.dataset.webhooks_denied:
        return forbidden()
    return None


def _webhook(sim: Simulator, request: Request) -> dict[str, Any] | Response:
    webhook = sim.dataset.webhooks.get(request.path_params["webhook_id"])
    if webhook is None:
        return not_found("Webhook not found.")
    return _scoped(sim, webhook["scope"]["id"]) or webhook


def list_webhooks(sim: Simulator, request: Request, body: Any) -> Response:
    scope_id, scope_type = request.query_params.get("scope-id"), request.query_params.get("scope-type")
    if not scope_id or scope_type != "project":
        return bad_request("scope-id and scope-type=project are required")
    if (refused := _scoped(sim, scope_id)) is not None:
        return refused
    items = [Dataset.webhook_answer(w) for w in sim.dataset.webhooks.values() if w["scope"]["id"] == scope_id]
    return sim.page(request, items, f"webhooks {scope_id}")


def create_webhook(sim: Simulator, request: Request, body: Any) -> Response:
    if (problem := _problem(body, create=True)) is not None:
        return bad_request(problem)
    scope = body["scope"]
    if not isinstance(scope, dict) or scope.get("type") != "project" or not isinstance(scope.get("id"), str):
        return bad_request("scope must be {id: <project id>, type: project}")
    if (refused := _scoped(sim, scope["id"])) is not None:
        return refused
    webhook = sim.dataset.add_webhook(
        scope["id"],
        url=body["url"],
        signing_secret=body["signing-secret"],
        name=body["name"],
        events=body["events"],
        verify_tls=body["verify-tls"],
    )
    return JSONResponse(Dataset.webhook_answer(webhook), status_code=201)


def get_webhook(sim: Simulator, request: Request, body: Any) -> Response:
    found = _webhook(sim, request)
    return found if isinstance(found, Response) else JSONResponse(Dataset.webhook_answer(found))


def update_webhook(sim: Simulator, request: Request, body: Any) -> Response:
    found = _webhook(sim, request)
    if isinstance(found, Response):
        return found
    if (problem := _problem(body or {}, create=False)) is not None:
        return bad_request(problem)
    found.update({key: body[key] for key in _CHECKS if key in (body or {})})
    found["updated-at"] = now()
    return JSONResponse(Dataset.webhook_answer(found))


def delete_webhook(sim: Simulator, request: Request, body: Any) -> Response:
    found = _webhook(sim, request)
    if isinstance(found, Response):
        return found
    del sim.dataset.webhooks[found["id"]]
    return JSONResponse({"message": "Webhook deleted."})


OPERATIONS: list[tuple[str, str, Callable[[Simulator, Request, Any], Response]]] = [
    ("GET", "/webhook", list_webhooks),
    ("POST", "/webhook", create_webhook),
    ("GET", "/webhook/{webhook-id}", get_webhook),
    ("PUT", "/webhook/{webhook-id}", update_webhook),
    ("DELETE", "/webhook/{webhook-id}", delete_webhook),
]
