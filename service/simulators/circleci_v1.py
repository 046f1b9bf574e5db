"""The simulator's API v1.1 job, and the storage its step output URLs point to.

    GET /api/v1.1/project/{vcs}/{org}/{repo}/{n}   the job with `steps[].actions[]` (status,
                                                   exit_code, index, output_url…); the token,
                                                   latency, faults and call counts as for v2
    GET /_sim/storage/output/{key}?X-Amz-…         a presigned "storage" URL: it needs no token
                                                   and refuses one (403), since CircleCI's token
                                                   must never reach the storage host; it honours
                                                   `Range: bytes=-N` and `bytes=a-` (206), as S3 does

Faults apply to both (`"path": "/_sim/storage/*"` makes output URLs answer 403 as an expired
presigned URL does). Facts: /work/shared/reference/next-features.md, section 1.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.simulators.circleci_api import not_found
from service.simulators.circleci_data import short_slug, stable_id

if TYPE_CHECKING:
    from service.simulators.circleci import Simulator

V1_JOB = "/api/v1.1/project/{vcs}/{org}/{repo}/{job-number}"
STORAGE = "/_sim/storage/output/{key}"
_VCS = {"github": "github", "bitbucket": "bitbucket", "circleci": "circleci"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def job_v1(sim: Simulator, request: Request, body: Any) -> Response:
    params = request.path_params
    if params["vcs"] not in _VCS:
        return not_found("Project not found")
    slug = short_slug(f"{params['vcs']}/{params['org']}/{params['repo']}")
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    number = params["job_number"]
    steps = sim.dataset.steps.get((slug, number))
    if steps is None:
        return not_found("Build not found")
    details = sim.dataset.job_details.get((slug, number), {})
    answer_steps = []
    for step in steps:
        actions = []
        for action in step["actions"]:
            key = action["output_key"]
            shown = {k: v for k, v in action.items() if k != "output_key"}
            shown["output_url"] = storage_url(request, key) if key else None
            actions.append(shown)
        answer_steps.append({"name": step["name"], "actions": actions})
    return JSONResponse(
        {
            "build_num": number,
            "status": details.get("status"),
            "vcs_type": params["vcs"],
            "username": params["org"],
            "reponame": params["repo"],
            "build_url": details.get("web_url"),
            "parallel": details.get("parallelism", 1),
            "steps": answer_steps,
        }
    )


def storage_url(request: Request, key: str) -> str:
    """A presigned-looking URL on the storage route (S3's query, ~5 days, a fake signature)."""
    query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=431999&X-Amz-Signature={stable_id('sig', key)}"
    return str(request.url.replace(path=f"/_sim/storage/output/{key}", query=query))


async def storage_output(request: Request) -> Response:
    """An output URL's body; 403 if a CircleCI token came with it."""
    sim: Simulator = request.app.state.simulator
    if (faulted := await sim.delay_or_fault("GET", request.url.path, STORAGE)) is not None:
        return faulted
    if "circle-token" in request.headers or "authorization" in request.headers:
        sim.note_token_at_storage()
        return Response(
            "<Error><Code>AccessDenied</Code><Message>a CircleCI token was sent to the storage host</Message></Error>",
            status_code=403,
            media_type="application/xml",
        )
    with sim.dataset.lock:
        content = sim.dataset.outputs.get(request.path_params["key"])
    if content is None:
        return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml")
    return _ranged(content, request.headers.get("range"))


def _ranged(content: bytes, header: str | None) -> Response:
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or not (match[1] or match[2]):
        return Response(content, media_type="application/json")
    size = len(content)
    if match[1]:
        start, end = int(match[1]), (int(match[2]) if match[2] else size - 1)
    else:  # a suffix: the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    end = min(end, size - 1)
    if size == 0 or start > end:
        return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
    return Response(
        content[start : end + 1],
        status_code=206,
        media_type="application/json",
        headers={"content-range": f"bytes {start}-{end}/{size}"},
    )
