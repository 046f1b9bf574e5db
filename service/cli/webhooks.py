"""`circleci-events webhooks …`: this service's webhook on many CircleCI projects at once.

The projects are SLUG arguments, `--org ORG-SLUG` (the organization's projects with recent
pipelines) and `--from-file FILE` (a slug per line, `#` comments), together. Each project gets
one line; the exit code is 1 when any project failed. Secrets are never printed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import IO, Any

import click

from config.errors import CircleCINotFound, CircleCIPaginationError
from config.suggestion import did_you_mean
from service.cli import receiver_check
from service.cli.api import client_from
from service.cli.common import EXIT_FAILURE, EXIT_USAGE, clear_errors, echo, emit, fail, load_settings, printable
from service.cli.project_webhooks import (
    DEFAULT_NAME,
    ORG_MAX_PAGES,
    RESULTS,
    Desired,
    Outcome,
    ProjectWebhooks,
    org_projects,
    plural,
    result_word,
    same_org,
)
from service.cli.send_test_event import webhook_url
from workers.circleci.client import CircleCIClient

# A batch command may wait out a longer Retry-After than a worker's job would.
TRANSPORT_OPTIONS: dict[str, Any] = {"max_wait": 60.0, "deadline": 120.0}


def read_secret(value: str | None, file: IO[str] | None = None) -> str | None:
    """A secret from standard input (`--secret -`) or a file (`--secret-file`), never the command
    line itself, where ps and shell history show it: a value there is refused and not shown."""
    if value is not None and value != "-":
        fail(
            "the signing secret is read from standard input (--secret -) or a file (--secret-file FILE), never "
            "from the command line (ps and shell history show it); the value given is not used or shown",
            EXIT_USAGE,
        )
    if value is not None and file is not None:
        fail("give the signing secret once: --secret - (standard input) or --secret-file FILE", EXIT_USAGE)
    if value is None and file is None:
        return None
    return secret_from(sys.stdin if file is None else file)


def secret_from(stream: IO[str], what: str = "the signing secret") -> str:
    """The secret a stream holds, without its line ending; an empty one is refused."""
    secret = stream.read().rstrip("\r\n")
    if not secret.strip():
        fail(f"{what} is empty", EXIT_USAGE)
    return secret


def parse_targets(lines: Iterable[str]) -> list[str]:
    """Slugs from a file: one a line; blank lines and everything after `#` ignored."""
    return [slug for line in lines if (slug := line.split("#", 1)[0].strip())]


def projects_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """SLUG..., --org and --from-file; `resolve` turns them into the list of projects."""
    command = click.option("--from-file", type=click.File("r"), help="One project slug per line; # starts a comment.")(
        command
    )
    command = click.option(
        "--org",
        "orgs",
        multiple=True,
        metavar="ORG-SLUG",
        help="e.g. gh/acme: its projects with recent pipelines; repeatable.",
    )(command)
    return click.argument("slugs", nargs=-1, metavar="[SLUG]...")(command)


def resolve(
    slugs: tuple[str, ...], orgs: tuple[str, ...], from_file: IO[str] | None
) -> tuple[CircleCIClient, list[str]]:
    """The client and the projects named, in order, each once."""
    if not (slugs or orgs or from_file):
        raise click.UsageError("name the projects: SLUG..., --org ORG-SLUG or --from-file FILE")
    client = client_from(load_settings(quiet=True), **TRANSPORT_OPTIONS)
    targets = [*slugs, *(parse_targets(from_file) if from_file else [])]
    for org in orgs:
        found = _org_projects(client, org)
        click.echo(f"{org}: {plural(len(found), 'project')} with recent pipelines", err=True)
        targets += found
    return client, list(dict.fromkeys(targets))


def _org_projects(client: CircleCIClient, org: str) -> list[str]:
    """The org's projects with recent pipelines; exit 2 for an org CircleCI does not know."""
    try:
        found = org_projects(client, org)
    except CircleCIPaginationError:
        fail(f"{org} has more than {ORG_MAX_PAGES} pages of recent pipelines: list its projects with --from-file")
    except CircleCINotFound:
        found = []
    if not found:  # none, or an org that does not exist (CircleCI may answer either way): ask which it is
        known = client.organization_slugs()
        if not any(same_org(org, slug) for slug in known):
            fail(
                f"--org {org}: CircleCI knows no such organization for CIRCLE_TOKEN's user (theirs: "
                f"{', '.join(known) or 'none'}){did_you_mean(org, known)}; an org slug is vcs/name, e.g. gh/acme",
                EXIT_USAGE,
            )
    return found


URL = click.option("--url", required=True, help="This service: its base URL or the full /webhooks/circleci URL.")
DRY_RUN = click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")


def report(outcomes: Iterator[Outcome], *, as_json: bool, dry_run: bool = False) -> None:
    """A line per project as it is done, the totals, and exit 1 if any failed."""
    done = []
    for outcome in outcomes:
        done.append(outcome)
        if not as_json:
            echo(outcome.line())
    if as_json:
        rows = [{k: v for k, v in asdict(o).items() if k != "webhooks"} for o in done]
        click.echo(json.dumps(rows, indent=2))
    else:
        counts = Counter(o.result for o in done)
        totals = ", ".join(f"{counts[result]} {result_word(result, dry_run)}" for result in RESULTS if counts[result])
        click.echo(f"{plural(len(done), 'project')}: {totals or 'none named'}", err=True)
    if any(o.failed for o in done):
        sys.exit(EXIT_FAILURE)


@click.group()
def webhooks() -> None:
    """This service's webhook on CircleCI projects.

    CircleCI lets only an organization admin add, change or remove a project's webhooks:
    CIRCLE_TOKEN must be a personal API token of an org admin (a 403 on a project says so).
    """


@webhooks.command("list")
@projects_option
@URL
@click.option("--all", "every", is_flag=True, help="Every webhook of the projects, ours marked.")
@JSON
@clear_errors
def list_webhooks(
    slugs: tuple[str, ...], orgs: tuple[str, ...], from_file: IO[str] | None, url: str, every: bool, as_json: bool
) -> None:
    """The webhooks of each project that point at URL (all of them with --all)."""
    target = webhook_url(url)
    client, projects = resolve(slugs, orgs, from_file)
    registry = ProjectWebhooks(client, target)
    rows: list[dict[str, Any]] = []
    failed = []
    for outcome in registry.walk(projects, lambda slug, project: registry.listing(slug, project, every=every)):
        if outcome.failed:
            failed.append(outcome)
        elif not outcome.webhooks:
            rows.append({"project": outcome.project, "ours": None, "name": "(none)"})
        for w in outcome.webhooks:
            row = {"project": outcome.project, "ours": w.url == target, "name": w.name, "events": ",".join(w.events)}
            rows.append(row | {"verify_tls": w.verify_tls, "url": w.url, "id": w.id})
    emit(rows, ["project", *(["ours"] if every else []), "name", "events", "verify_tls", "url", "id"], as_json=as_json)
    for outcome in failed:
        click.echo(printable(outcome.line(), newlines=False), err=True)
    if failed:
        sys.exit(EXIT_FAILURE)


@webhooks.command()
@projects_option
@URL
@click.option(
    "--secret", metavar="-", help="Read the signing secret from standard input (default: the first of "
    "CIRCLECI_WEBHOOK_SECRETS); a value here is refused: ps and shell history show it."
)  # fmt: skip
@click.option("--secret-file", type=click.File("r"), help="Read the signing secret from FILE.")
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="The webhook's name in CircleCI.")
@DRY_RUN
@JSON
@clear_errors
def ensure(
    slugs: tuple[str, ...],
    orgs: tuple[str, ...],
    from_file: IO[str] | None,
    url: str,
    secret: str | None,
    secret_file: IO[str] | None,
    name: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """One webhook on each project pointing at URL (https): workflow-completed and job-completed
    events, TLS verified, the signing secret; made where missing, updated where it differs."""
    target = webhook_url(url)
    if not target.startswith("https://"):
        fail(f"--url must be https: CircleCI delivers webhooks over https only, got {url!r}", EXIT_USAGE)
    secret = read_secret(secret, secret_file)
    if secret is None:
        secrets = load_settings(quiet=True).webhook_secrets
        if not secrets:
            fail("no signing secret: set CIRCLECI_WEBHOOK_SECRETS, or give --secret - or --secret-file", EXIT_USAGE)
        secret = str(secrets[0])
    desired = Desired(url=target, secret=secret, name=name)
    client, projects = resolve(slugs, orgs, from_file)
    registry = ProjectWebhooks(client, target, dry_run=dry_run)
    outcomes = registry.walk(projects, lambda slug, project: registry.ensure(slug, project, desired))
    report(outcomes, as_json=as_json, dry_run=dry_run)


@webhooks.command("rotate-secret")
@projects_option
@URL
@click.option(
    "--secret-file",
    type=click.File("r"),
    help="A file holding the new signing secret (- for standard input).",
)
@DRY_RUN
@JSON
@clear_errors
def rotate_secret(
    slugs: tuple[str, ...],
    orgs: tuple[str, ...],
    from_file: IO[str] | None,
    url: str,
    secret_file: IO[str] | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Set a new signing secret on each project's webhook pointing at URL, once the receiver there
    accepts it.

    The secret is read from standard input (`rotate-secret - SLUG...`) or from --secret-file FILE,
    never from the command line, where `ps` and shell history show it. Before CircleCI gets it, a
    ping signed with it goes to URL: unless the receiver answers it (deployed with
    CIRCLECI_WEBHOOK_SECRETS=NEW,OLD), nothing is changed.
    """
    slugs, secret = _new_secret(slugs, secret_file)
    target = webhook_url(url)
    problem = receiver_check.refusal(target, secret)
    if problem is not None:
        fail(f"not rotating: {problem}")
    client, projects = resolve(slugs, orgs, from_file)
    registry = ProjectWebhooks(client, target, dry_run=dry_run)
    outcomes = registry.walk(projects, lambda slug, project: registry.rotate(slug, project, secret))
    report(outcomes, as_json=as_json, dry_run=dry_run)


def _new_secret(slugs: tuple[str, ...], secret_file: IO[str] | None) -> tuple[tuple[str, ...], str]:
    """The projects and the new secret: a first argument `-` reads standard input, else --secret-file
    is read. An argument that is not a slug may be the secret given by mistake: it is never shown."""
    stdin = bool(slugs) and slugs[0] == "-"
    if stdin and secret_file is not None:
        fail("give the new secret once: - (standard input) or --secret-file FILE", EXIT_USAGE)
    if not stdin and secret_file is None:
        fail(
            "the new secret is read from standard input or a file, never from the command line (ps and shell "
            "history show it): circleci-events webhooks rotate-secret - --url URL SLUG... < new-secret.txt, or "
            "--secret-file FILE",
            EXIT_USAGE,
        )
    slugs = slugs[1:] if stdin else slugs
    if any(slug.count("/") != 2 for slug in slugs):
        fail("a project is a slug vcs/org/repo, e.g. gh/acme/api; one argument is not (not shown)", EXIT_USAGE)
    return slugs, secret_from(sys.stdin if stdin else secret_file, "the new signing secret")  # type: ignore[arg-type]


@webhooks.command()
@projects_option
@URL
@DRY_RUN
@JSON
@clear_errors
def remove(
    slugs: tuple[str, ...], orgs: tuple[str, ...], from_file: IO[str] | None, url: str, dry_run: bool, as_json: bool
) -> None:
    """Delete each project's webhooks pointing at URL; other webhooks are left alone."""
    target = webhook_url(url)
    client, projects = resolve(slugs, orgs, from_file)
    registry = ProjectWebhooks(client, target, dry_run=dry_run)
    report(registry.walk(projects, registry.remove), as_json=as_json, dry_run=dry_run)


__all__ = ["webhooks"]
