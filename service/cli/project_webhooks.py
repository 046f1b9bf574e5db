"""Our webhook on CircleCI projects: the webhooks whose URL is ours, made to match, rotated, removed.

    ensure   none with our URL: create one. One: update it if it differs, else leave it. More than
             one: keep the first, delete the others (each would deliver every event again).
    rotate   set the signing secret on every webhook with our URL
    remove   delete every webhook with our URL
    listing  the project's webhooks, ours marked

Webhooks with another URL are never changed. Each project comes down to one `Outcome`. An API
error that concerns one project (403, 404, 400, a 429 or 5xx still failing after the client's
retries) fails that project only; a bad token (401) or an unreachable API stops the walk, since
every project would fail the same way. A project reached twice (`github/a/b` and `gh/a/b`) is
handled once.

CircleCI answers a webhook's signing secret masked (SPEC-2025: "Masked value of the secret"); its
project variables show `xxxx` and the last four characters. `ensure` takes a secret whose visible
tail does not end ours as different, and a mask that shows nothing as the same: it cannot tell,
and `rotate-secret` sets the secret whatever it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from config.errors import CircleCIAPIError, CircleCIForbidden, CircleCIUnauthorized, CircleCIUnreachable
from workers.circleci.client import CircleCIClient
from workers.circleci.models import Project, Webhook

EVENTS = ("workflow-completed", "job-completed")
DEFAULT_NAME = "circleci-events"
ORG_MAX_PAGES = 200  # GET /pipeline?org-slug= covers the 250 most recently built projects
RESULTS = ("created", "updated", "unchanged", "rotated", "removed", "absent", "skipped", "failed")
_MASK_CHARACTERS = "x*•"
# CircleCI's webhook docs (since 2026-05): org-admin permission is needed to add, update or delete
# a project's webhooks (../shared/reference/circleci-webhooks.md, Limits).
ADMIN_NEEDED = (
    "; only an organization admin may manage a project's webhooks: use a personal API token of an org admin "
    "as CIRCLE_TOKEN"
)
_WOULD = {"created": "would create", "updated": "would update", "rotated": "would rotate", "removed": "would remove"}


@dataclass(frozen=True)
class Desired:
    """What our webhook on every project must be."""

    url: str
    secret: str = field(repr=False)
    name: str = DEFAULT_NAME
    events: tuple[str, ...] = EVENTS
    verify_tls: bool = True

    def fields(self) -> dict[str, Any]:
        """The keyword arguments of CircleCIClient.create_webhook and update_webhook."""
        return {
            "name": self.name,
            "url": self.url,
            "events": self.events,
            "signing_secret": self.secret,
            "verify_tls": self.verify_tls,
        }


@dataclass(frozen=True)
class Outcome:
    """What happened to one project (`result`: one of RESULTS, or `listed`); with `dry_run`
    nothing changed and the line says what would have."""

    project: str
    result: str
    detail: str = ""
    dry_run: bool = False
    webhooks: tuple[Webhook, ...] = ()  # listing: the webhooks shown

    @property
    def failed(self) -> bool:
        return self.result == "failed"

    def line(self) -> str:
        result = result_word(self.result, self.dry_run)
        if self.failed:
            return f"{self.project}: failed: {self.detail}"
        return f"{self.project}: {result}" + (f" ({self.detail})" if self.detail else "")


def result_word(result: str, dry_run: bool) -> str:
    """`created`, or `would create` when nothing was changed."""
    return _WOULD.get(result, result) if dry_run else result


def same_org(given: str, known: str) -> bool:
    """Whether two org slugs name one organization: `github/acme` is `gh/acme`, names ignore case."""
    short = {"github": "gh", "bitbucket": "bb"}

    def norm(slug: str) -> str:
        vcs, _, name = slug.strip("/").partition("/")
        return f"{short.get(vcs.lower(), vcs.lower())}/{name.lower()}"

    return norm(given) == norm(known)


def secret_may_match(masked: str | None, secret: str) -> bool:
    """Whether a masked secret can be `secret`: what the mask leaves visible must end it."""
    if not masked:
        return False  # no secret set at all
    return secret.endswith(masked.lstrip(_MASK_CHARACTERS))


def differences(webhook: Webhook, desired: Desired) -> list[str]:
    """The fields of `webhook` that are not as desired, by their API names."""
    found = []
    if webhook.name != desired.name:
        found.append("name")
    if sorted(webhook.events) != sorted(desired.events):
        found.append("events")
    if webhook.verify_tls is not desired.verify_tls:
        found.append("verify-tls")
    if not secret_may_match(webhook.signing_secret, desired.secret):
        found.append("signing-secret")
    return found


def org_projects(client: CircleCIClient, org_slug: str) -> list[str]:
    """The slugs of the organization's projects with recent pipelines, every page, in order seen."""
    slugs: dict[str, None] = {}
    for pipeline in client.org_pipelines(org_slug, max_pages=ORG_MAX_PAGES):
        if pipeline.project_slug:
            slugs.setdefault(pipeline.project_slug)
    return list(slugs)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class ProjectWebhooks:
    """The webhooks pointing at `url` on each project, through one client."""

    def __init__(self, client: CircleCIClient, url: str, *, dry_run: bool = False) -> None:
        self.client = client
        self.url = url
        self.dry_run = dry_run

    def walk(self, slugs: Iterable[str], action: Callable[[str, Project], Outcome]) -> Iterator[Outcome]:
        """`action` on each project in turn; a project's own API error is its failed outcome."""
        seen: dict[str, str] = {}
        for slug in slugs:
            try:
                project = self.client.project(slug)
                if project.id in seen:
                    yield Outcome(slug, "skipped", f"the same project as {seen[project.id]}")
                    continue
                seen[str(project.id)] = slug
                yield action(slug, project)
            except (CircleCIUnauthorized, CircleCIUnreachable):
                raise
            except CircleCIForbidden as exc:
                admin = ADMIN_NEEDED if exc.path.startswith("/webhook") else ""
                yield Outcome(slug, "failed", exc.message + admin)
            except CircleCIAPIError as exc:
                yield Outcome(slug, "failed", exc.message)

    def _ours(self, project: Project) -> tuple[list[Webhook], list[Webhook]]:
        every = self.client.webhooks(str(project.id))
        return [w for w in every if w.url == self.url], every

    def _outcome(self, slug: str, result: str, detail: str = "") -> Outcome:
        return Outcome(slug, result, detail, dry_run=self.dry_run)

    def listing(self, slug: str, project: Project, *, every: bool = False) -> Outcome:
        ours, all_webhooks = self._ours(project)
        shown = all_webhooks if every else ours
        return Outcome(slug, "listed", webhooks=tuple(shown))

    def ensure(self, slug: str, project: Project, desired: Desired) -> Outcome:
        ours, _ = self._ours(project)
        if not ours:
            if not self.dry_run:
                self.client.create_webhook(str(project.id), **desired.fields())
            return self._outcome(slug, "created")
        kept, extra = ours[0], ours[1:]
        changed = differences(kept, desired)
        if changed and not self.dry_run:
            self.client.update_webhook(str(kept.id), **desired.fields())
        self._delete(extra)
        details = [", ".join(changed)] if changed else []
        if extra:
            details.append(f"{plural(len(extra), 'duplicate')} removed")
        return self._outcome(slug, "updated" if changed or extra else "unchanged", "; ".join(details))

    def rotate(self, slug: str, project: Project, secret: str) -> Outcome:
        ours, _ = self._ours(project)
        if not ours:
            return self._outcome(slug, "absent", f"no webhook points at {self.url}; `webhooks ensure` makes one")
        for webhook in ours:
            if not self.dry_run:
                self.client.update_webhook(str(webhook.id), signing_secret=secret)
        return self._outcome(slug, "rotated", plural(len(ours), "webhook") if len(ours) > 1 else "")

    def remove(self, slug: str, project: Project) -> Outcome:
        ours, _ = self._ours(project)
        if not ours:
            return self._outcome(slug, "absent", f"no webhook points at {self.url}")
        self._delete(ours)
        return self._outcome(slug, "removed", plural(len(ours), "webhook") if len(ours) > 1 else "")

    def _delete(self, webhooks: Iterable[Webhook]) -> None:
        for webhook in webhooks:
            if not self.dry_run:
                self.client.delete_webhook(str(webhook.id))
