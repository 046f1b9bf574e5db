"""The VCS facts of a pipeline, normalised from whichever map the integration sends.

GitHub OAuth and Bitbucket Cloud send `pipeline.vcs`; GitLab, GitHub App and Bitbucket Data
Center send `pipeline.trigger_parameters` instead (circleci-webhooks.md 5.6-5.8, pitfalls A8).
Each fact is read with the fallbacks `vcs` -> `git` -> `github_app`/`gitlab`, since the
`github_app` map is undocumented and deprecated as a pipeline value (DOCS-PV). Payloads are
open maps with blank strings and odd types (pitfalls A9): nothing here raises on a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

PROVIDERS = ("github", "bitbucket", "gitlab", "github_app", "unknown")

# `vcs.provider_name` in webhooks ("github", "bitbucket"); the API spells it "GitHub", and
# `circleci.trigger_type` uses the pipeline-values vocabulary of DOCS-PV.
_PROVIDER_NAMES = {
    "github": "github",
    "github_oauth": "github",
    "bitbucket": "bitbucket",
    "bitbucket_cloud": "bitbucket",
    "gitlab": "gitlab",
    "github_app": "github_app",
}


# The two spellings of a project slug's VCS part: `github/acme/api` and `gh/acme/api` are one project.
_SLUG_FORMS = {"github": "gh", "gh": "github", "bitbucket": "bb", "bb": "bitbucket"}


def slug_forms(slug: str) -> tuple[str, ...]:
    """The slug as sent and its other form: `github/acme/api` ↔ `gh/acme/api`, `bitbucket/` ↔ `bb/`."""
    vcs, sep, rest = slug.partition("/")
    other = _SLUG_FORMS.get(vcs)
    return (slug, f"{other}/{rest}") if other and sep else (slug,)


@dataclass(frozen=True)
class VcsFacts:
    """Where a pipeline's code came from. Every fact but `provider` may be unknown (None)."""

    provider: str = "unknown"
    branch: str | None = None
    tag: str | None = None
    revision: str | None = None
    commit_subject: str | None = None
    commit_body: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    repository_url: str | None = None

    @property
    def ref_kind(self) -> str | None:
        """ "tag" for a tag build, "branch" for a branch build, None when neither is known."""
        if self.tag is not None:
            return "tag"
        return "branch" if self.branch is not None else None

    @property
    def ref(self) -> str | None:
        """The tag of a tag build, else the branch."""
        return self.tag if self.tag is not None else self.branch

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref_kind": self.ref_kind}

    def filled_from(self, other: VcsFacts) -> VcsFacts:
        """These facts, each unknown one taken from `other` (the API's answer about the pipeline)."""
        known = asdict(self)
        unknown = {k for k, v in known.items() if v is None or (k == "provider" and v == "unknown")}
        return replace(self, **{k: v for k, v in asdict(other).items() if k in unknown})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VcsFacts:
        """Rebuild from `to_dict()` output; unknown keys, `ref_kind` and bad values are dropped."""
        values = {f.name: _text(data.get(f.name)) for f in fields(cls) if f.name != "provider"}
        provider = _text(data.get("provider"))
        return cls(provider=provider if provider in PROVIDERS else "unknown", **values)


def vcs_facts(payload: Mapping[str, Any]) -> VcsFacts:
    """Read the VCS facts of a workflow-completed or job-completed payload."""
    pipeline = _map(payload, "pipeline")
    vcs = _map(pipeline, "vcs")
    params = _map(pipeline, "trigger_parameters")
    git, github_app, gitlab = _map(params, "git"), _map(params, "github_app"), _map(params, "gitlab")
    commit = _map(vcs, "commit")
    author = _map(commit, "author")

    branch, tag = _ref(vcs, git, github_app, gitlab)
    # `vcs.commit.subject` is already the first line; the others are whole messages or titles.
    message = _first(
        commit.get("subject"),
        git.get("commit_message"),
        github_app.get("commit_title"),
        gitlab.get("commit_message"),
        gitlab.get("commit_title"),
    )
    subject, rest = _split_message(message)
    return VcsFacts(
        provider=_provider(vcs, params, github_app, gitlab),
        branch=branch,
        tag=tag,
        revision=_first(
            vcs.get("revision"), git.get("checkout_sha"), github_app.get("commit_sha"), gitlab.get("checkout_sha")
        ),
        commit_subject=subject,
        commit_body=_first(commit.get("body"), rest),
        author_name=_first(
            author.get("name"),
            git.get("commit_author_name"),
            github_app.get("commit_author_name"),
            gitlab.get("commit_author_name"),
        ),
        author_email=_first(
            author.get("email"),
            git.get("commit_author_email"),
            github_app.get("commit_author_email"),
            gitlab.get("commit_author_email"),
        ),
        # Browsable URLs first: GitLab's `repo_url` and `checkout_url` are `git@host:path.git`.
        repository_url=_first(
            vcs.get("target_repository_url"),
            vcs.get("origin_repository_url"),
            git.get("repo_url"),
            github_app.get("repo_url"),
            gitlab.get("web_url"),
            gitlab.get("repo_url"),
            git.get("checkout_url"),
        ),
    )


def _provider(
    vcs: Mapping[str, Any], params: Mapping[str, Any], github_app: Mapping[str, Any], gitlab: Mapping[str, Any]
) -> str:
    for name in (vcs.get("provider_name"), _map(params, "circleci").get("trigger_type")):
        provider = _PROVIDER_NAMES.get((_text(name) or "").lower())
        if provider is not None:
            return provider
    if github_app:
        return "github_app"
    # The reference says Bitbucket DC also sends a `gitlab` map; with no trigger_type naming
    # it, GitLab is the best guess.
    return "gitlab" if gitlab else "unknown"


def _ref(
    vcs: Mapping[str, Any], git: Mapping[str, Any], github_app: Mapping[str, Any], gitlab: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """Return (branch, tag) from the first map naming either, else from a full `refs/...` ref."""
    for source in (vcs, git, github_app, gitlab):
        # `git.tag` is "" on branch builds (DOCS-REF GitLab sample), so blank means "no tag".
        branch, tag = _text(source.get("branch")), _text(source.get("tag"))
        if branch is not None or tag is not None:
            return branch, tag
    # `github_app.ref` is the short name ("circleci-project-setup"), so only `full_ref` helps.
    for ref in (git.get("ref"), github_app.get("full_ref"), gitlab.get("ref")):
        if (branch := _strip_prefix(ref, "refs/heads/")) is not None:
            return branch, None
        if (tag := _strip_prefix(ref, "refs/tags/")) is not None:
            return None, tag
    return None, None


def _strip_prefix(ref: object, prefix: str) -> str | None:
    name = _text(ref)
    return _text(name.removeprefix(prefix)) if name is not None and name.startswith(prefix) else None


def _split_message(message: str | None) -> tuple[str | None, str | None]:
    if message is None:
        return None, None
    subject, _, rest = message.partition("\n")
    return _text(subject), _text(rest)


def _map(data: object, key: str) -> Mapping[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _first(*values: object) -> str | None:
    for value in values:
        text = _text(value)
        if text is not None:
            return text
    return None


def _text(value: object) -> str | None:
    """A non-blank string, stripped; anything else (None, "", numbers, maps) is None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
