"""`circleci-events api …`: the everyday CircleCI API operations, with the service's own client."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from config.errors import ConfigurationError
from config.settings import Settings
from service.cli.common import EXIT_FAILURE, clear_errors, emit, emit_one, fail, load_settings, require_redis
from service.cli.pipeline_wait import TERMINAL, PipelineOutcome, wait_for_pipeline
from workers.circleci.client import CircleCIClient

JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
SECRET_VALUE = click.option(
    "--value",
    prompt=True,
    hide_input=True,
    callback=lambda ctx, param, value: sys.stdin.read().rstrip("\n") if value == "-" else value,
    help="Prompted (hidden) when not given; - reads stdin.",
)


def client_from(settings: Settings, **transport_options: Any) -> CircleCIClient:
    if settings.circle_token is None:
        raise ConfigurationError(
            "CIRCLE_TOKEN is not set: create a personal API token in CircleCI (User Settings → Personal API Tokens)"
        )
    return CircleCIClient.from_settings(settings, **transport_options)


def _client() -> CircleCIClient:
    return client_from(load_settings(quiet=True))


def parse_param(text: str) -> tuple[str, Any]:
    """`k=v` into a pipeline parameter: true/false become booleans, digits integers."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint="--param")
    if value in ("true", "false"):
        return name, value == "true"
    if value.lstrip("-").isdigit():
        return name, int(value)
    return name, value


@click.group()
def api() -> None:
    """CircleCI API v2 operations (needs CIRCLE_TOKEN; CIRCLECI_API_URL for Server)."""


@api.command()
@JSON
@clear_errors
def me(as_json: bool) -> None:
    """Who the token belongs to (the way to check a token)."""
    emit_one(_client().me().to_dict(), as_json=as_json)


@api.command()
@click.argument("slug")
@click.option("--branch")
@click.option("--tag")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter; repeatable.")
@click.option("--wait", is_flag=True, help="Wait for the pipeline's workflows; exit 1 unless all succeed.")
@click.option("--timeout", type=click.FloatRange(min=1), default=1800, show_default=True, help="Seconds to wait.")
@JSON
@clear_errors
def trigger(
    slug: str, branch: str | None, tag: str | None, params: tuple[str, ...], wait: bool, timeout: float, as_json: bool
) -> None:
    """Trigger a pipeline on SLUG (e.g. gh/acme/api) for a branch or a tag."""
    if bool(branch) == bool(tag):
        raise click.UsageError("give exactly one of --branch or --tag")
    parameters = dict(parse_param(p) for p in params)
    settings = load_settings(quiet=True)
    client = client_from(settings)
    created = client.trigger_pipeline(slug, branch=branch, tag=tag, parameters=parameters or None)
    if not wait:
        emit_one(created.to_dict(), as_json=as_json)
        return
    if created.id is None:
        fail("CircleCI created no pipeline id to wait for")
    click.echo(f"pipeline {created.number} ({created.id}) created; waiting for its workflows…", err=True)
    redis_client = require_redis(settings) if settings.redis_url else None
    if redis_client is None:
        click.echo("REDIS_URL is not set: no webhook events to listen to, polling every 15 s", err=True)
    outcome = wait_for_pipeline(client, redis_client, created.id, timeout=timeout, on_change=_progress)
    rows = [{"workflow": name, "status": status, "id": wid} for wid, (name, status) in outcome.workflows.items()]
    emit(rows, ["workflow", "status", "id"], as_json=as_json)
    if outcome.timed_out:
        fail(
            f"timed out after {timeout:.0f} s; not finished: " + (", ".join(_unfinished(outcome)) or "no workflow yet")
        )
    if not outcome.succeeded:
        sys.exit(EXIT_FAILURE)


def _progress(outcome: PipelineOutcome) -> None:
    states = ", ".join(f"{name}: {status}" for name, status in outcome.workflows.values())
    click.echo(f"  {states}", err=True)


def _unfinished(outcome: PipelineOutcome) -> list[str]:
    return [f"{name} ({status})" for name, status in outcome.workflows.values() if status not in TERMINAL]


@api.command()
@click.argument("pipeline_id")
@JSON
@clear_errors
def pipeline(pipeline_id: str, as_json: bool) -> None:
    """One pipeline."""
    emit_one(_client().pipeline(pipeline_id).to_dict(), as_json=as_json)


@api.command()
@click.argument("pipeline_id")
@JSON
@clear_errors
def workflows(pipeline_id: str, as_json: bool) -> None:
    """The workflows of a pipeline."""
    rows = [w.to_dict() for w in _client().pipeline_workflows(pipeline_id)]
    emit(rows, ["name", "status", "id", "created_at", "stopped_at"], as_json=as_json)


@api.command()
@click.argument("workflow_id")
@JSON
@clear_errors
def jobs(workflow_id: str, as_json: bool) -> None:
    """The jobs of a workflow (every page)."""
    rows = [j.to_dict() for j in _client().workflow_jobs(workflow_id)]
    emit(rows, ["name", "type", "status", "job_number", "id"], as_json=as_json)


@api.command()
@click.argument("slug")
@click.argument("job_number", type=int)
@click.option("--failed", is_flag=True, help="Only failed tests.")
@JSON
@clear_errors
def tests(slug: str, job_number: int, failed: bool, as_json: bool) -> None:
    """Test results of a job (stored with store_test_results)."""
    rows = [t.to_dict() for t in _client().job_tests(slug, job_number) if t.failed or not failed]
    emit(rows, ["result", "classname", "name", "file"], as_json=as_json)


@api.command()
@click.argument("slug")
@click.argument("job_number", type=int)
@click.option("--download", type=click.Path(file_okay=False, path_type=Path), help="Save every artifact here.")
@JSON
@clear_errors
def artifacts(slug: str, job_number: int, download: Path | None, as_json: bool) -> None:
    """Artifacts of a job; --download DIR saves them (the token only to the API and CIRCLECI_ARTIFACT_HOSTS)."""
    client = _client()
    found = client.job_artifacts(slug, job_number)
    rows = [a.to_dict() for a in found]
    if download is not None:
        for artifact in found:
            target = download / (artifact.path or "artifact").lstrip("/")
            if download.resolve() not in target.resolve().parents:
                fail(f"refusing to write outside {download}: artifact path {artifact.path!r}")
            client.download_artifact(artifact, target)
            click.echo(f"saved {target}", err=True)
    emit(rows, ["path", "node_index", "url"], as_json=as_json)


@api.group()
def contexts() -> None:
    """Contexts and their environment variables."""


@contexts.command("list")
@click.option("--owner-id", required=True, help="The organization id (webhook payloads carry it).")
@JSON
@clear_errors
def contexts_list(owner_id: str, as_json: bool) -> None:
    """The contexts of an organization."""
    emit([c.to_dict() for c in _client().contexts(owner_id=owner_id)], ["name", "id", "created_at"], as_json=as_json)


@contexts.command("create")
@click.argument("name")
@click.option("--owner-id", required=True)
@JSON
@clear_errors
def contexts_create(name: str, owner_id: str, as_json: bool) -> None:
    """Create a context."""
    emit_one(_client().create_context(name, owner_id=owner_id).to_dict(), as_json=as_json)


@contexts.command("delete")
@click.argument("context_id")
@clear_errors
def contexts_delete(context_id: str) -> None:
    """Delete a context."""
    click.echo(_client().delete_context(context_id))


@contexts.command("vars")
@click.argument("context_id")
@JSON
@clear_errors
def contexts_vars(context_id: str, as_json: bool) -> None:
    """The variables of a context (names only: CircleCI never returns values)."""
    rows = [v.to_dict() for v in _client().context_env_vars(context_id)]
    emit(rows, ["variable", "created_at", "updated_at"], as_json=as_json)


@contexts.command("set-var")
@click.argument("context_id")
@click.argument("name")
@SECRET_VALUE
@clear_errors
def contexts_set_var(context_id: str, name: str, value: str) -> None:
    """Add or replace a context variable."""
    _client().set_context_env_var(context_id, name, value)
    click.echo(f"set {name}")


@contexts.command("unset-var")
@click.argument("context_id")
@click.argument("name")
@clear_errors
def contexts_unset_var(context_id: str, name: str) -> None:
    """Remove a context variable."""
    click.echo(_client().delete_context_env_var(context_id, name))


@api.group("env-vars")
def env_vars() -> None:
    """Project environment variables."""


@env_vars.command("list")
@click.argument("slug")
@JSON
@clear_errors
def env_vars_list(slug: str, as_json: bool) -> None:
    """A project's variables (values come back masked)."""
    emit([v.to_dict() for v in _client().project_env_vars(slug)], ["name", "value", "created_at"], as_json=as_json)


@env_vars.command("set")
@click.argument("slug")
@click.argument("name")
@SECRET_VALUE
@clear_errors
def env_vars_set(slug: str, name: str, value: str) -> None:
    """Create or replace a project variable."""
    _client().create_project_env_var(slug, name, value)
    click.echo(f"set {name}")


@env_vars.command("unset")
@click.argument("slug")
@click.argument("name")
@clear_errors
def env_vars_unset(slug: str, name: str) -> None:
    """Delete a project variable."""
    click.echo(_client().delete_project_env_var(slug, name))


__all__ = ["api"]
