"""`GET /cc.xml`: the transition state as a cctray feed, for CCMenu, BuildNotify, Nevergreen and build lights.

Exists only when FEED_TOKEN is set, a read-only token of its own so a radiator never holds the
admin token. It takes `Authorization: Bearer <FEED_TOKEN>`, or Basic with FEED_TOKEN as the
password (any user name), compared in constant time; anything else is a 401 with
`WWW-Authenticate` naming both schemes, no cookie and no redirect (https://cctray.org/notes/).
`?project=<slug>&branch=<name>` narrows the feed.

One `<Project>` per (project, ref, workflow), from the state the worker keeps
(workers/ref_states.py), per https://cctray.org/v1:

    name             "<project slug> :: <ref> :: <workflow>"
    activity         Sleeping (we hear of a workflow when it has completed, never while it runs)
    lastBuildStatus  success -> Success; failed, failing, timedout -> Failure;
                     error, infrastructure_fail -> Exception; anything else -> Unknown
    lastBuildLabel   the pipeline number
    lastBuildTime    the workflow's happened_at, in UTC with a Z
    webUrl           the workflow's page on CircleCI (the project's when not known)
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import UTC
from typing import Any
from xml.etree import ElementTree

from starlette.requests import Request
from starlette.responses import Response

from config.settings import Settings
from service.errors import error_response
from service.store_call import store_call
from workers import operations
from workers.timestamps import parse_time

STATUSES = {
    "success": "Success",
    "failed": "Failure",
    "failing": "Failure",
    "timedout": "Failure",
    "error": "Exception",
    "infrastructure_fail": "Exception",
}
CHALLENGE = 'Bearer realm="cctray", Basic realm="cctray", charset="UTF-8"'
EPOCH_Z = "1970-01-01T00:00:00Z"
PROJECT_PAGE = "https://app.circleci.com/pipelines/{}"


def feed_authorised(header: str, token: bytes) -> bool:
    """True for `Bearer <token>` or Basic with `token` as the password."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(given.strip().encode(), token)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _, _, password = decoded.partition(b":")
        return hmac.compare_digest(password, token)
    return False


async def cc_xml(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    token = str(settings.feed_token).encode()
    if not feed_authorised(request.headers.get("authorization", ""), token):
        message = "expected 'Authorization: Bearer <FEED_TOKEN>' or Basic with FEED_TOKEN as the password"
        return error_response(request, 401, "unauthorized", message, headers={"WWW-Authenticate": CHALLENGE})
    project = request.query_params.get("project") or None
    branch = request.query_params.get("branch") or None
    states = await store_call(request, operations.branch_health, project=project, ref=branch)
    return Response(feed(states), media_type="application/xml; charset=utf-8")


def feed(states: list[dict[str, Any]]) -> bytes:
    """The cctray document for `states` (branch_health's rows)."""
    root = ElementTree.Element("Projects")
    for state in states:
        attributes = {
            "name": f"{state['project']} :: {state['ref']} :: {state['workflow']}",
            "activity": "Sleeping",
            "lastBuildStatus": STATUSES.get(state["status"], "Unknown"),
            "lastBuildTime": utc_z(state.get("happened_at")),
            "webUrl": state.get("web_url") or PROJECT_PAGE.format(state["project"]),
        }
        if state.get("pipeline_number") is not None:
            attributes["lastBuildLabel"] = str(state["pipeline_number"])
        ElementTree.SubElement(root, "Project", attributes)
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True))


def utc_z(value: str | None) -> str:
    """An ISO 8601 time in UTC with a Z (cctray's notes ask for a zone); the epoch when unreadable."""
    moment = parse_time(value)
    if moment is None:
        return EPOCH_Z
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
