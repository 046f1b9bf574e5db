"""The in-memory CircleCI the simulator serves, kept consistent with webhook payloads.

`Dataset.add_workflow_from_webhook(payload, jobs=[...])` makes a workflow-completed payload's
workflow, pipeline, jobs (build and approval), job details, tests and artifacts servable.
Objects are stored in the API's own shapes (SPEC-2025 and tests/fixtures/api/*.synth.json).
Outbound webhooks are stored with their signing secret, which answers show only masked;
`deny_webhooks(slug)` makes a project whose webhooks the token's user may not manage (403).
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# webhook samples shipped with the package (copies of tests/fixtures/), for the example dataset and the demo
SAMPLES = Path(__file__).parent / "samples"
_IDS = uuid.UUID("9c7d8a3e-3f0e-4c55-9a57-5b1f1e0c2d11")  # namespace for stable ids
_SHORT = {"github": "gh", "bitbucket": "bb"}
_TRIGGERS = {"schedule": "scheduled_pipeline", "scheduled_pipeline": "scheduled_pipeline", "api": "api"}
_PROVIDERS = {"gh": "GitHub", "bb": "Bitbucket", "circleci": "CircleCI"}
WEBHOOK_EVENTS = ("workflow-completed", "job-completed")
JobSpec = Mapping[str, Any]


def short_slug(slug: str) -> str:
    """API responses use gh/ and bb/ where webhooks say github/ and bitbucket/."""
    vcs, _, rest = slug.partition("/")
    return f"{_SHORT.get(vcs, vcs)}/{rest}"


def stable_id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(map(str, parts))))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def after(earlier: str) -> str:
    """Now, or a millisecond after `earlier` when now is not later: pipelines made in one
    millisecond still have an order, newest first, as CircleCI lists them."""
    stamp = now()
    if not earlier or stamp > earlier:
        return stamp
    moment = datetime.fromisoformat(earlier.replace("Z", "+00:00")) + timedelta(milliseconds=1)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mask(secret: str) -> str:
    """How answers show a secret. CircleCI documents `xxxx` + the last four characters for
    project variables; for webhooks it says only "masked", so the simulator masks the same way."""
    return "xxxx" + secret[-4:]


def default_output(name: str, failed: bool) -> str:
    """A step's output as CircleCI records it: ANSI colours, `\r\n`, a progress bar redrawn with `\r`."""
    lines = [f"\x1b[1m$ make {name}\x1b[0m", "Downloading dependencies 10%\r" + "Downloading dependencies 100%"]
    lines += [f"step {i}: ok" for i in range(1, 4)]
    if failed:
        lines += [f"\x1b[31mERROR: {name} failed\x1b[0m", "make: *** [Makefile:12: build] Error 1"]
    return "\r\n".join(lines) + "\r\n"


def output_body(output: str | bytes | Sequence[str]) -> bytes:
    """What an output URL serves: raw bytes as given, else a JSON array of {message, time, type}."""
    if isinstance(output, bytes):
        return output
    messages = [output] if isinstance(output, str) else list(output)
    stamp = now()  # one moment for the whole output: a million lines are read in one breath
    items = [{"message": m, "time": stamp, "type": "out"} for m in messages]
    return json.dumps(items).encode()


def _default_jobs(status: str) -> list[dict[str, Any]]:
    last = status if status in {"success", "failed", "canceled"} else "failed"
    return [{"name": "build", "status": "success"}, {"name": "test", "status": last}]


def _default_tests(name: str, status: str) -> list[dict[str, Any]]:
    if status == "success":
        return [{"name": f"{name} passes", "result": "success"}]
    if status == "failed":
        return [
            {"name": f"{name} passes", "result": "success"},
            {"name": f"{name} fails", "result": "failure", "message": "AssertionError: 1 != 2"},
        ]
    return []


class Dataset:
    """Everything the simulator knows; every access goes through `lock`."""

    def __init__(self, *, user: Mapping[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.user = dict(user or {"id": stable_id("user"), "login": "octocat", "name": "Octo Cat"})
        self.projects: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, list[dict[str, Any]]] = {}
        self.job_details: dict[tuple[str, int], dict[str, Any]] = {}
        self.tests: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.artifacts: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.artifact_files: dict[str, bytes] = {}
        self.contexts: dict[str, dict[str, Any]] = {}
        self.context_vars: dict[str, dict[str, dict[str, Any]]] = {}
        self.project_env: dict[str, dict[str, dict[str, Any]]] = {}
        self.checkout_keys: dict[str, list[dict[str, Any]]] = {}
        self.flaky: dict[str, list[dict[str, Any]]] = {}
        # Insights answers in the spec's kebab-case; "snake" answers as the live API does
        # (mcp-server-circleci PR #23): clients must take both
        self.flaky_casing = "kebab"
        # API v1.1's steps of each job, and the bodies their actions' output URLs serve
        self.steps: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.outputs: dict[str, bytes] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}  # id -> webhook, with its signing secret
        self.webhooks_denied: set[str] = set()  # project ids whose webhooks answer 403
        self.run_skip_message: str | None = None  # set to make pipeline/run answer "skipped"
        self._job_numbers = itertools.count(1000)

    # -- building ---------------------------------------------------------------------

    def add_project(
        self, slug: str, *, id: str | None = None, name: str | None = None, org: str = "", org_id: str | None = None
    ) -> dict[str, Any]:
        key = short_slug(slug)
        with self.lock:
            return self.projects.setdefault(
                key,
                {
                    "id": id or stable_id("project", key),
                    "slug": key,
                    "name": name or key.rsplit("/", 1)[-1],
                    "org": org or key.split("/")[1],
                    "org_id": org_id or stable_id("org", key.rsplit("/", 1)[0]),
                    "external_url": f"https://github.com/{key.split('/', 1)[1]}",
                },
            )

    def project_answer(self, slug: str) -> dict[str, Any] | None:
        """`GET /project/{slug}`'s answer, or None for a project the simulator does not know."""
        with self.lock:
            project = self.projects.get(short_slug(slug))
        if project is None:
            return None
        vcs = project["slug"].split("/")[0]
        return {
            "slug": project["slug"],
            "name": project["name"],
            "id": project["id"],
            "organization_name": project["org"],
            "organization_slug": project["slug"].rsplit("/", 1)[0],
            "organization_id": project["org_id"],
            "vcs_info": {
                "vcs_url": project["external_url"],
                "provider": _PROVIDERS.get(vcs, "GitHub"),
                "default_branch": "main",
            },
        }

    def add_pipeline(
        self, slug: str, *, branch: str | None = None, tag: str | None = None, trigger: str = "api"
    ) -> dict[str, Any]:
        """A new pipeline of a project (made if need be), numbered after its others."""
        with self.lock:
            key = self.add_project(slug)["slug"]
            mine = [p for p in self.pipelines.values() if p["project_slug"] == key]
            created = after(max((p["created_at"] for p in self.pipelines.values()), default=""))
            pipeline: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "state": "created",
                "number": max((p["number"] for p in mine), default=0) + 1,
                "created_at": created,
                "errors": [],
                "project_slug": key,
                "updated_at": created,
                "trigger": {
                    "type": trigger,
                    "received_at": created,
                    "actor": {"login": self.user["login"], "avatar_url": None},
                },
            }
            latest = max(mine, key=lambda p: p["number"], default=None)
            if latest and "vcs" in latest:
                vcs = {k: v for k, v in latest["vcs"].items() if k not in ("branch", "tag", "commit")}
                pipeline["vcs"] = vcs | ({"tag": tag} if tag else {"branch": branch or "main"})
            self.pipelines[pipeline["id"]] = pipeline
            return pipeline

    def add_webhook(
        self,
        project_id: str,
        *,
        url: str,
        signing_secret: str,
        name: str = "webhook",
        events: Sequence[str] = WEBHOOK_EVENTS,
        verify_tls: bool = True,
    ) -> dict[str, Any]:
        """Store a webhook (secret in the clear); `webhook_answer` is what the API shows of it."""
        created, webhook_id = now(), str(uuid.uuid4())
        webhook: dict[str, Any] = {
            "id": webhook_id,
            "scope": {"id": project_id, "type": "project"},
            "name": name,
            "events": list(events),
            "url": url,
            "verify-tls": verify_tls,
            "signing-secret": signing_secret,
            "created-at": created,
            "updated-at": created,
        }
        with self.lock:
            self.webhooks[webhook_id] = webhook
        return webhook

    def project_by_id(self, project_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((p for p in self.projects.values() if p["id"] == project_id), None)

    def deny_webhooks(self, slug: str) -> None:
        """The token's user sees the project but may not manage its webhooks: those calls answer 403."""
        with self.lock:
            self.webhooks_denied.add(self.add_project(slug)["id"])

    @staticmethod
    def webhook_answer(webhook: Mapping[str, Any]) -> dict[str, Any]:
        return dict(webhook) | {"signing-secret": mask(webhook["signing-secret"])}

    def add_workflow_from_webhook(
        self,
        payload: Mapping[str, Any],
        jobs: Sequence[JobSpec] | None = None,
        *,
        vcs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Serve the payload's workflow, pipeline and jobs; returns their ids and job numbers.

        A job spec is a dict: name, and optionally type (build|approval), status, number, id,
        tests (list of partial test dicts), artifacts (paths or {path, content, node_index}).
        `vcs` is what the API knows beyond the webhook, merged over the pipeline's `vcs`: a
        GitHub OAuth tag build's webhook says `branch: null` and no tag or commit, while
        `GET /pipeline/{id}` answers them, e.g. `{"tag": "v1.4.0", "commit": {"subject": ...}}`.
        """
        wf, pl = payload["workflow"], payload["pipeline"]
        project = self.add_project(
            payload["project"]["slug"],
            id=payload["project"].get("id"),
            name=payload["project"].get("name"),
            org=payload.get("organization", {}).get("name", ""),
        )
        slug = project["slug"]
        sent = pl.get("vcs") or {}  # the webhook's
        pipeline: dict[str, Any] = {
            "id": pl["id"],
            "errors": [],
            "project_slug": slug,
            "updated_at": wf.get("stopped_at") or pl["created_at"],
            "number": pl["number"],
            "state": "created",
            "created_at": pl["created_at"],
            "trigger": {
                "type": _TRIGGERS.get((pl.get("trigger") or {}).get("type", ""), "webhook"),
                "received_at": pl["created_at"],
                "actor": {"login": self.user["login"], "avatar_url": None},
            },
        }
        if isinstance(pl.get("trigger_parameters"), dict):
            pipeline["trigger_parameters"] = pl["trigger_parameters"]
        if sent:
            pipeline["vcs"] = {
                k: sent[k] for k in ("provider_name", "origin_repository_url", "target_repository_url") if k in sent
            } | {"revision": sent.get("revision", "")}
            pipeline["vcs"].update({k: sent[k] for k in ("branch", "tag") if sent.get(k)})
            if isinstance(sent.get("commit"), dict):
                commit = sent["commit"]
                pipeline["vcs"]["commit"] = {"subject": commit.get("subject"), "body": commit.get("body")}
        if vcs:
            answered = pipeline.setdefault("vcs", {})
            commit = {**answered.get("commit", {}), **vcs.get("commit", {})}
            answered.update(vcs)
            if commit:
                answered["commit"] = commit
        workflow = {
            "pipeline_id": pl["id"],
            "id": wf["id"],
            "name": wf["name"],
            "project_slug": slug,
            "tag": None,
            "status": wf["status"],
            "started_by": self.user["id"],
            "pipeline_number": pl["number"],
            "created_at": wf["created_at"],
            "stopped_at": wf.get("stopped_at"),
        }
        if wf["status"] == "canceled":
            workflow["canceled_by"] = self.user["id"]
        with self.lock:
            self.pipelines[pl["id"]] = pipeline
            self.workflows[wf["id"]] = workflow
            self.jobs[wf["id"]] = []
            for spec in jobs if jobs is not None else _default_jobs(wf["status"]):
                self._add_job(workflow, project, payload, spec)
            made = [dict(j) for j in self.jobs[wf["id"]]]
        return {"workflow_id": wf["id"], "pipeline_id": pl["id"], "project_slug": slug, "jobs": made}

    def _add_job(
        self,
        workflow: dict[str, Any],
        project: dict[str, Any],
        payload: Mapping[str, Any],
        spec: JobSpec,
    ) -> None:
        siblings = self.jobs[workflow["id"]]
        kind = spec.get("type", "build")
        job_id = spec.get("id") or stable_id(workflow["id"], spec["name"])
        item: dict[str, Any] = {
            "dependencies": [siblings[-1]["id"]] if siblings else [],
            "id": job_id,
            "name": spec["name"],
            "project_slug": workflow["project_slug"],
            "type": kind,
        }
        if kind == "approval":
            item |= {"status": spec.get("status", "on_hold"), "started_at": None, "stopped_at": None}
            item["approval_request_id"] = job_id
            siblings.append(item)
            return
        status = spec.get("status", "success")
        number = int(spec.get("number") or next(self._job_numbers))
        started = spec.get("started_at", workflow["created_at"])
        stopped = spec.get("stopped_at", workflow["stopped_at"])
        item |= {"job_number": number, "status": status, "started_at": started, "stopped_at": stopped}
        siblings.append(item)
        slug = project["slug"]
        long_slug = payload["project"]["slug"]
        self.job_details[(slug, number)] = {
            "web_url": f"https://app.circleci.com/pipelines/{long_slug}/{workflow['pipeline_number']}"
            f"/workflows/{workflow['id']}/jobs/{number}",
            "project": {k: project[k] for k in ("id", "slug", "name", "external_url")},
            "parallel_runs": [{"index": 0, "status": status}],
            "started_at": started,
            "latest_workflow": {"id": workflow["id"], "name": workflow["name"]},
            "name": spec["name"],
            "executor": {"resource_class": "medium", "type": "docker"},
            "parallelism": 1,
            "status": status,
            "number": number,
            "pipeline": {"id": workflow["pipeline_id"]},
            "duration": spec.get("duration", 5329),
            "created_at": workflow["created_at"],
            "messages": [],
            "contexts": [{"name": c} for c in spec.get("contexts", ["org-global"])],
            "organization": {"name": project["org"]},
            "queued_at": workflow["created_at"],
            "stopped_at": stopped,
        }
        tests = spec.get("tests", _default_tests(spec["name"], status))
        self.tests[(slug, number)] = [
            {
                "message": "",
                "source": "pytest",
                "run_time": 0.05,
                "file": f"tests/test_{spec['name'].replace('/', '_')}.py",
                "result": "success",
                "name": f"test {n}",
                "classname": spec["name"],
            }
            | dict(t)
            for n, t in enumerate(tests)
        ]
        self.steps[(slug, number)] = self._steps(slug, number, spec, status)
        default_artifacts = ["test-results/junit.xml"] if tests else []
        self.artifacts[(slug, number)] = []
        for art in spec.get("artifacts", default_artifacts):
            art = {"path": art} if isinstance(art, str) else dict(art)
            node = int(art.get("node_index", 0))
            self.artifacts[(slug, number)].append({"path": art["path"], "node_index": node})
            content = art.get("content", f"artifact {art['path']} of job {number}\n")
            key = f"{slug}/{number}/{node}/{art['path']}"
            self.artifact_files[key] = content.encode() if isinstance(content, str) else content

    def _steps(self, slug: str, number: int, spec: JobSpec, status: str) -> list[dict[str, Any]]:
        """v1.1 steps: the spec's `steps` (each {name, status, exit_code, output, background,
        insignificant, index, has_output}; `output` a str, a list of messages or raw bytes), else
        checkout, a background database and the job's own step, failing when the job failed."""
        failed = status not in ("success", "running", "canceled")
        specs = spec.get("steps") or [
            {"name": "Spin up environment", "output": "Starting container cimg/python:3.12\r\n"},
            {"name": "Checkout code", "output": "\x1b[32mCloning git repository\x1b[0m\r\n"},
            {"name": "postgres", "background": True, "status": "canceled" if failed else "success"},
            {
                "name": f"Run {spec['name']}",
                "status": "failed" if failed else "success",
                "exit_code": 1 if failed else 0,
                "output": default_output(spec["name"], failed),
            },
        ]
        steps = []
        for position, step in enumerate(specs):
            key = f"{slug}/{number}/{position}/{step.get('index', 0)}"
            output = step.get("output")
            if output is not None:
                self.outputs[key] = output_body(output)
            action = {
                "index": step.get("index", 0),
                "step": position,
                "name": step["name"],
                "status": step.get("status", "success"),
                "failed": True if step.get("status") == "failed" else None,
                "exit_code": step.get("exit_code", 0 if step.get("status", "success") == "success" else None),
                "timedout": True if step.get("status") == "timedout" else None,
                "infrastructure_fail": None,
                "background": bool(step.get("background", False)),
                "insignificant": bool(step.get("insignificant", False)),
                "has_output": step.get("has_output", output is not None),
                "truncated": bool(step.get("truncated", False)),
                "output_key": key if output is not None and step.get("has_output", True) else None,
            }
            steps.append({"name": step["name"], "actions": [action]})
        return steps

    def add_context(self, name: str, *, owner_id: str, variables: Sequence[str] = ()) -> dict[str, Any]:
        context = {"id": stable_id("context", owner_id, name), "name": name, "created_at": now()}
        with self.lock:
            self.contexts[context["id"]] = context | {"owner_id": owner_id}
            self.context_vars[context["id"]] = {}
            for variable in variables:
                self.set_context_var(context["id"], variable)
        return context

    def set_context_var(self, context_id: str, name: str) -> dict[str, Any]:
        with self.lock:
            known = self.context_vars[context_id].get(name)
            created = known["created_at"] if known else now()
            item = {"variable": name, "created_at": created, "updated_at": now(), "context_id": context_id}
            self.context_vars[context_id][name] = item
            return item

    def set_project_env_var(self, slug: str, name: str, value: str) -> dict[str, Any]:
        with self.lock:
            self.add_project(slug)
            item = {"name": name, "value": "xxxx" + value[-4:], "created-at": now()}
            self.project_env.setdefault(short_slug(slug), {})[name] = item
            return item

    def add_checkout_key(self, slug: str, *, kind: str = "deploy-key") -> dict[str, Any]:
        key = short_slug(slug)
        fingerprint = ":".join(stable_id("key", key, kind).replace("-", "")[i : i + 2] for i in range(0, 32, 2))
        item = {
            "public-key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{stable_id(key)[:8]} sim",
            "type": kind,
            "fingerprint": fingerprint,
            "preferred": True,
            "created-at": now(),
        }
        with self.lock:
            self.add_project(key)
            self.checkout_keys.setdefault(key, []).append(item)
        return item

    def add_flaky_test(self, slug: str, **fields: Any) -> dict[str, Any]:
        item = {
            "time-wasted": 120,
            "workflow-created-at": now(),
            "workflow-id": stable_id("flaky-workflow", slug),
            "classname": "API",
            "pipeline-number": 130,
            "workflow-name": "build-test-deploy",
            "test-name": "GET /health returns 200",
            "job-name": "test",
            "job-number": 136,
            "times-flaked": 3,
            "source": "jest",
            "file": "src/api.test.js",
        } | {k.replace("_", "-"): v for k, v in fields.items()}
        with self.lock:
            self.add_project(slug)
            self.flaky.setdefault(short_slug(slug), []).append(item)
        return item

    @classmethod
    def example(cls) -> Dataset:
        """A failed workflow from the samples (build, test with a failure, an approval job),
        an org context with two variables, project variables, a checkout key and a flaky test."""
        data = cls()
        payload = json.loads((SAMPLES / "workflow-completed.failed.github-oauth.derived.json").read_text())
        data.add_workflow_from_webhook(
            payload,
            jobs=[
                {"name": "build", "status": "success"},
                {"name": "test", "status": "failed", "artifacts": ["test-results/junit.xml", "coverage/index.html"]},
                {"name": "hold-for-deploy", "type": "approval"},
            ],
        )
        slug = payload["project"]["slug"]
        data.add_context("org-global", owner_id=payload["organization"]["id"], variables=["API_KEY", "NPM_TOKEN"])
        data.set_project_env_var(slug, "AWS_REGION", "eu-west-1")
        data.set_project_env_var(slug, "SENTRY_DSN", "https://sentry.example/1234")
        data.add_checkout_key(slug)
        data.add_flaky_test(slug)
        return data
