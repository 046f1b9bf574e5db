"""The simulator's API v2 operations: `(method, spec path template, handler)` in OPERATIONS.

Handlers run with the dataset lock held and answer in SPEC-2025's shapes and status codes
(201 for triggers and project variables, 202 for workflow actions, 200 for the rest).
Error bodies are `{"message": ...}` with CircleCI's own wording where it is documented.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service.simulators.circleci_data import now, short_slug, stable_id

if TYPE_CHECKING:
    from service.simulators.circleci import Simulator

PROVIDERS = {"github", "gh", "bitbucket", "bb", "circleci"}


def not_found(message: str) -> Response:
    return JSONResponse({"message": message}, status_code=404)


def bad_request(message: str) -> Response:
    return JSONResponse({"message": message}, status_code=400)


def forbidden(message: str = "Permission denied.") -> Response:
    return JSONResponse({"message": message}, status_code=403)


def _slug(request: Request) -> str:
    return short_slug(request.path_params["project_slug"])


def me(sim: Simulator, request: Request, body: Any) -> Response:
    return JSONResponse(sim.dataset.user)


def collaborations(sim: Simulator, request: Request, body: Any) -> Response:
    """The organizations of the projects the simulator knows."""
    with sim.dataset.lock:
        projects = list(sim.dataset.projects.values())
    orgs: dict[str, dict[str, Any]] = {}
    for project in projects:
        slug = project["slug"].rsplit("/", 1)[0]
        vcs = {"gh": "github", "bb": "bitbucket"}.get(slug.split("/")[0], slug.split("/")[0])
        orgs.setdefault(slug, {"id": project["org_id"], "vcs-type": vcs, "name": project["org"],
                               "avatar_url": "https://avatars.example.com/u/1", "slug": slug})  # fmt: skip
    return JSONResponse(list(orgs.values()))


def _create_pipeline(sim: Simulator, slug: str, branch: str | None, tag: str | None) -> Response:
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    pipeline = sim.dataset.add_pipeline(slug, branch=branch, tag=tag)
    return JSONResponse({k: pipeline[k] for k in ("id", "state", "number", "created_at")}, status_code=201)


def trigger_pipeline(sim: Simulator, request: Request, body: Any) -> Response:
    body = body or {}
    if body.get("branch") and body.get("tag"):
        return bad_request("branch and tag are mutually exclusive")
    return _create_pipeline(sim, _slug(request), body.get("branch"), body.get("tag"))


def run_pipeline(sim: Simulator, request: Request, body: Any) -> Response:
    # One %2F-escaped slug segment is a 404 upstream (circleci-cli pipeline_definition.go).
    if b"%2f" in request.scope.get("raw_path", b"").lower():
        return not_found("Entity not found.")
    params = request.path_params
    if params["provider"] not in PROVIDERS:
        return not_found("Entity not found.")
    if sim.dataset.run_skip_message:
        return JSONResponse({"message": sim.dataset.run_skip_message})
    ref = {**((body or {}).get("config") or {}), **((body or {}).get("checkout") or {})}
    slug = short_slug(f"{params['provider']}/{params['organization']}/{params['project']}")
    return _create_pipeline(sim, slug, ref.get("branch"), ref.get("tag"))


def list_pipelines(sim: Simulator, request: Request, body: Any) -> Response:
    slug, branch = _slug(request), request.query_params.get("branch")
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    items = [
        p
        for p in sim.dataset.pipelines.values()
        if p["project_slug"] == slug and (not branch or p.get("vcs", {}).get("branch") == branch)
    ]
    items.sort(key=lambda p: p["number"], reverse=True)
    return sim.page(request, items, f"pipelines {slug} {branch}")


def list_org_pipelines(sim: Simulator, request: Request, body: Any) -> Response:
    """The org's pipelines, newest first (CircleCI: of the most recently built projects you follow)."""
    org = request.query_params.get("org-slug")
    prefix = short_slug(org).rstrip("/") + "/" if org else ""
    items = [p for p in sim.dataset.pipelines.values() if p["project_slug"].startswith(prefix)]
    items.sort(key=lambda p: p["created_at"], reverse=True)
    return sim.page(request, items, f"org-pipelines {org}")


def get_project(sim: Simulator, request: Request, body: Any) -> Response:
    project = sim.dataset.project_answer(_slug(request))
    return JSONResponse(project) if project else not_found("Project not found")


def get_pipeline(sim: Simulator, request: Request, body: Any) -> Response:
    pipeline = sim.dataset.pipelines.get(request.path_params["pipeline_id"])
    return JSONResponse(pipeline) if pipeline else not_found("Pipeline not found.")


def pipeline_workflows(sim: Simulator, request: Request, body: Any) -> Response:
    pipeline_id = request.path_params["pipeline_id"]
    if pipeline_id not in sim.dataset.pipelines:
        return not_found("Pipeline not found.")
    items = [w for w in sim.dataset.workflows.values() if w["pipeline_id"] == pipeline_id]
    return sim.page(request, sorted(items, key=lambda w: w["created_at"]), f"workflows {pipeline_id}")


def get_workflow(sim: Simulator, request: Request, body: Any) -> Response:
    workflow = sim.dataset.workflows.get(request.path_params["id"])
    return JSONResponse(workflow) if workflow else not_found("Workflow not found.")


def workflow_jobs(sim: Simulator, request: Request, body: Any) -> Response:
    workflow_id = request.path_params["id"]
    if workflow_id not in sim.dataset.workflows:
        return not_found("Workflow not found.")
    return sim.page(request, sim.dataset.jobs.get(workflow_id, []), f"jobs {workflow_id}")


def cancel_workflow(sim: Simulator, request: Request, body: Any) -> Response:
    workflow = sim.dataset.workflows.get(request.path_params["id"])
    if not workflow:
        return not_found("Workflow not found.")
    if workflow["status"] in ("running", "on_hold", "failing"):
        workflow |= {"status": "canceled", "canceled_by": sim.dataset.user["id"], "stopped_at": now()}
        for job in sim.dataset.jobs.get(workflow["id"], []):
            if job["status"] in ("on_hold", "queued", "running", "blocked"):
                job |= {"status": "canceled", "canceled_by": sim.dataset.user["id"]}
    return JSONResponse({"message": "Accepted."}, status_code=202)


# A rerun from_failed of a workflow with nothing failed, and an approval of a job no longer on
# hold: CircleCI's answers are not documented; these 400s are the simulator's stand-ins.
NOTHING_FAILED = "Workflow has no failed jobs to rerun."
NOT_ON_HOLD = "Job is not on hold."


def rerun_workflow(sim: Simulator, request: Request, body: Any) -> Response:
    """A new workflow in the same pipeline, running; it completes (success) `sim.completion_seconds` later."""
    body = body or {}
    old = sim.dataset.workflows.get(request.path_params["id"])
    if not old:
        return not_found("Workflow not found.")
    if body.get("from_failed") and body.get("jobs"):
        return bad_request("from_failed and jobs are mutually exclusive")
    if body.get("from_failed") and old["status"] not in ("failed", "error", "failing"):
        return bad_request(NOTHING_FAILED)
    new_id = str(uuid.uuid4())
    sim.dataset.workflows[new_id] = old | {
        "id": new_id,
        "status": "running",
        "created_at": now(),
        "stopped_at": None,
    }
    sim.dataset.jobs[new_id] = [
        job | {"id": stable_id(new_id, job["name"]), "status": "queued", "stopped_at": None}
        for job in sim.dataset.jobs.get(old["id"], [])
        if job.get("type") != "approval"
    ]
    sim.complete_later(new_id)
    return JSONResponse({"workflow_id": new_id}, status_code=202)


def approve_job(sim: Simulator, request: Request, body: Any) -> Response:
    """The approval job succeeds; its workflow runs on and completes `sim.completion_seconds` later."""
    params = request.path_params
    jobs = sim.dataset.jobs.get(params["id"], [])
    job = next((j for j in jobs if j.get("approval_request_id") == params["approval_request_id"]), None)
    if job is None:
        return not_found("Approval request not found.")
    if job["status"] != "on_hold":
        return bad_request(NOT_ON_HOLD)
    job |= {"status": "success", "approved_by": sim.dataset.user["id"]}
    workflow = sim.dataset.workflows.get(params["id"])
    if workflow is not None and not any(j["status"] == "on_hold" for j in jobs):
        workflow["status"] = "running"
        sim.complete_later(workflow["id"])
    return JSONResponse({"message": "Accepted."}, status_code=202)


def _job_data(sim: Simulator, request: Request, table: dict[tuple[str, int], Any]) -> Any:
    slug = _slug(request)
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    found = table.get((slug, request.path_params["job_number"]))
    return found if found is not None else not_found("Job not found.")


def job_details(sim: Simulator, request: Request, body: Any) -> Response:
    found = _job_data(sim, request, sim.dataset.job_details)
    return found if isinstance(found, Response) else JSONResponse(found)


def job_tests(sim: Simulator, request: Request, body: Any) -> Response:
    found = _job_data(sim, request, sim.dataset.tests)
    return found if isinstance(found, Response) else sim.page(request, found, f"tests {request.url.path}")


def job_artifacts(sim: Simulator, request: Request, body: Any) -> Response:
    found = _job_data(sim, request, sim.dataset.artifacts)
    if isinstance(found, Response):
        return found
    prefix = f"{_slug(request)}/{request.path_params['job_number']}"
    items = [
        a | {"url": str(request.url.replace(path=f"/_sim/artifacts/{prefix}/{a['node_index']}/{a['path']}", query=""))}
        for a in found
    ]
    return sim.page(request, items, f"artifacts {prefix}")


def artifact_redirect(sim: Simulator, request: Request, body: Any) -> Response:
    """Artifact URLs need the token and may redirect (pitfalls B4); the blob URL does not."""
    if request.path_params["key"] not in sim.dataset.artifact_files:
        return not_found("Not found")
    return RedirectResponse(f"/_sim/artifact-blobs/{request.path_params['key']}", status_code=302)


async def artifact_blob(request: Request) -> Response:
    sim: Simulator = request.app.state.simulator
    with sim.dataset.lock:
        content = sim.dataset.artifact_files.get(request.path_params["key"])
    if content is None:
        return not_found("Not found")
    return Response(content, media_type="application/octet-stream")


def list_contexts(sim: Simulator, request: Request, body: Any) -> Response:
    owner_id = request.query_params.get("owner-id")
    owner_slug = request.query_params.get("owner-slug")
    if not owner_id and not owner_slug:
        return bad_request("Must provide either owner-id or owner-slug.")
    items = [
        {k: c[k] for k in ("id", "name", "created_at")}
        for c in sim.dataset.contexts.values()
        if c.get("owner_id") == owner_id or (owner_slug and c.get("owner_slug") == owner_slug)
    ]
    return sim.page(request, items, f"contexts {owner_id} {owner_slug}")


def create_context(sim: Simulator, request: Request, body: Any) -> Response:
    owner = (body or {}).get("owner") or {}
    if not (body or {}).get("name") or not (owner.get("id") or owner.get("slug")):
        return bad_request("name and owner (id or slug) are required")
    context = sim.dataset.add_context(body["name"], owner_id=owner.get("id") or owner["slug"])
    sim.dataset.contexts[context["id"]]["owner_slug"] = owner.get("slug")
    return JSONResponse(context)


def delete_context(sim: Simulator, request: Request, body: Any) -> Response:
    if sim.dataset.contexts.pop(request.path_params["context_id"], None) is None:
        return not_found("Context not found.")
    sim.dataset.context_vars.pop(request.path_params["context_id"], None)
    return JSONResponse({"message": "Context deleted."})


def context_env_vars(sim: Simulator, request: Request, body: Any) -> Response:
    context_id = request.path_params["context_id"]
    if context_id not in sim.dataset.contexts:
        return not_found("Context not found.")
    items = list(sim.dataset.context_vars[context_id].values())
    return sim.page(request, items, f"context-vars {context_id}")


def put_context_env_var(sim: Simulator, request: Request, body: Any) -> Response:
    context_id = request.path_params["context_id"]
    if context_id not in sim.dataset.contexts:
        return not_found("Context not found.")
    if not isinstance((body or {}).get("value"), str):
        return bad_request("value is required")
    return JSONResponse(sim.dataset.set_context_var(context_id, request.path_params["env_var_name"]))


def delete_context_env_var(sim: Simulator, request: Request, body: Any) -> Response:
    variables = sim.dataset.context_vars.get(request.path_params["context_id"], {})
    if variables.pop(request.path_params["env_var_name"], None) is None:
        return not_found("Environment variable not found.")
    return JSONResponse({"message": "Environment variable deleted."})


def project_env_vars(sim: Simulator, request: Request, body: Any) -> Response:
    slug = _slug(request)
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    return sim.page(request, list(sim.dataset.project_env.get(slug, {}).values()), f"envvars {slug}")


def create_project_env_var(sim: Simulator, request: Request, body: Any) -> Response:
    slug = _slug(request)
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    if not isinstance((body or {}).get("name"), str) or not isinstance(body.get("value"), str):
        return bad_request("name and value are required")
    return JSONResponse(sim.dataset.set_project_env_var(slug, body["name"], body["value"]), status_code=201)


def delete_project_env_var(sim: Simulator, request: Request, body: Any) -> Response:
    variables = sim.dataset.project_env.get(_slug(request), {})
    if variables.pop(request.path_params["name"], None) is None:
        return not_found("Environment variable not found.")
    return JSONResponse({"message": "Environment variable deleted."})


def checkout_keys(sim: Simulator, request: Request, body: Any) -> Response:
    slug = _slug(request)
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    return sim.page(request, sim.dataset.checkout_keys.get(slug, []), f"keys {slug}")


def flaky_tests(sim: Simulator, request: Request, body: Any) -> Response:
    slug = _slug(request)
    if slug not in sim.dataset.projects:
        return not_found("Project not found")
    items = sim.dataset.flaky.get(slug, [])
    if sim.dataset.flaky_casing == "snake":
        snake = [{k.replace("-", "_"): v for k, v in item.items()} for item in items]
        return JSONResponse({"flaky_tests": snake, "total_flaky_tests": len(items)})
    return JSONResponse({"flaky-tests": items, "total-flaky-tests": len(items)})


OPERATIONS: list[tuple[str, str, Callable[[Simulator, Request, Any], Response]]] = [
    ("GET", "/me", me),
    ("GET", "/me/collaborations", collaborations),
    ("POST", "/project/{provider}/{organization}/{project}/pipeline/run", run_pipeline),
    ("POST", "/project/{project-slug}/pipeline", trigger_pipeline),
    ("GET", "/project/{project-slug}/pipeline", list_pipelines),
    ("GET", "/pipeline", list_org_pipelines),
    ("GET", "/pipeline/{pipeline-id}", get_pipeline),
    ("GET", "/pipeline/{pipeline-id}/workflow", pipeline_workflows),
    ("GET", "/workflow/{id}", get_workflow),
    ("GET", "/workflow/{id}/job", workflow_jobs),
    ("POST", "/workflow/{id}/cancel", cancel_workflow),
    ("POST", "/workflow/{id}/rerun", rerun_workflow),
    ("POST", "/workflow/{id}/approve/{approval_request_id}", approve_job),
    ("GET", "/project/{project-slug}/job/{job-number}", job_details),
    ("GET", "/project/{project-slug}/{job-number}/tests", job_tests),
    ("GET", "/project/{project-slug}/{job-number}/artifacts", job_artifacts),
    ("GET", "/context", list_contexts),
    ("POST", "/context", create_context),
    ("DELETE", "/context/{context-id}", delete_context),
    ("GET", "/context/{context-id}/environment-variable", context_env_vars),
    ("PUT", "/context/{context-id}/environment-variable/{env-var-name}", put_context_env_var),
    ("DELETE", "/context/{context-id}/environment-variable/{env-var-name}", delete_context_env_var),
    ("GET", "/project/{project-slug}/envvar", project_env_vars),
    ("POST", "/project/{project-slug}/envvar", create_project_env_var),
    ("DELETE", "/project/{project-slug}/envvar/{name}", delete_project_env_var),
    ("GET", "/project/{project-slug}/checkout-key", checkout_keys),
    ("GET", "/insights/{project-slug}/flaky-tests", flaky_tests),
    # last: its {project-slug} is a path converter, which would swallow /project/<slug>/anything
    ("GET", "/project/{project-slug}", get_project),
]
