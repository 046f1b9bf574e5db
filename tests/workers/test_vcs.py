"""VCS facts from every payload shape: `pipeline.vcs` or `pipeline.trigger_parameters`."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, load_fixture
from workers.vcs import VcsFacts, vcs_facts

DOCS_SHA = "1dc6aa69429bff4806ad6afe58d3d8f57e25973e"
DERIVED_SHA = "5e3c1f0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e"
DAVIDS_SHA = "71eb8857ea7e13f36021af32f3b7cc9304b491dd"
GITLAB_SHA = "850a1519f25d14e968649cc420d1bd381715c05c"
BITBUCKET_SHA = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
GITHUB_APP_SHA = "9e2e4bed59d2e6c51d00e0e0b49f1b79ff146ab1"
TAG_SHA = "5e7a9c1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c"

DOCS_AUTHOR = {"author_name": "Author Name", "author_email": "author.email@example.com"}
WEBHOOK_SERVICE = "https://github.com/circleci/webhook-service"
DOCS_COMMIT = {"commit_subject": "Description of change", "commit_body": "More details about the change"}
DERIVED = VcsFacts(
    "github", "feature/new-endpoint", None, DERIVED_SHA, "Add new endpoint", None, **DOCS_AUTHOR,
    repository_url=WEBHOOK_SERVICE,
)  # fmt: skip
DOCS = VcsFacts("github", "main", None, DOCS_SHA, **DOCS_COMMIT, **DOCS_AUTHOR, repository_url=WEBHOOK_SERVICE)
DAVIDS = VcsFacts(
    "github", "main", None, DAVIDS_SHA, "chore: implement basic event debugging and the PingEvent", None,
    "David Schmitt", "david@black.co.at", "https://github.com/DavidS/circleci-hook",
)  # fmt: skip
# GitLab's repo_url is "git@gitlab.com:circleci/hello-world.git"; the browsable web_url wins.
GITLAB = VcsFacts(
    "gitlab", "main", None, GITLAB_SHA, "Update README.md", None, "Commit Author", "committer.email@example.com",
    "https://gitlab.com/circleci/hello-world",
)  # fmt: skip
BITBUCKET = {
    "revision": BITBUCKET_SHA,
    "commit_subject": "Bump dependencies",
    "author_name": "Jane Dev",
    "author_email": "jane.dev@example.com",
    "repository_url": "https://bitbucket.org/acme/payments-api",
}

# One row per sample in tests/fixtures; test_every_sample_has_a_row keeps it that way.
EXPECTED = {
    "job-completed.failed.github-oauth.derived.json": DERIVED,
    "job-completed.github-oauth.docs.json": DOCS,
    "job-completed.github-oauth.observed.json": DAVIDS,
    "job-completed.gitlab.docs.json": GITLAB,
    "job-completed.gitlab.with-workflow.derived.json": GITLAB,
    "job-completed.tag.bitbucket-cloud.derived.json": VcsFacts("bitbucket", tag="v2.4.0", **BITBUCKET),
    "workflow-completed.canceled.bitbucket-cloud.derived.json": VcsFacts("bitbucket", branch="main", **BITBUCKET),
    "workflow-completed.error.scheduled.github-oauth.derived.json": DOCS,
    "workflow-completed.failed.github-oauth.derived.json": DERIVED,
    # CAP-PIPEDREAM blanked the author and repository strings: blank means unknown.
    "workflow-completed.github-app.observed.json": VcsFacts(
        "github_app", "circleci-project-setup", revision=GITHUB_APP_SHA, commit_subject="CircleCI Commit"
    ),
    "workflow-completed.github-oauth.docs.json": DOCS,
    "workflow-completed.github-oauth.observed.json": DAVIDS,
    "workflow-completed.gitlab.docs.json": GITLAB,
    # A GitHub OAuth tag build as real deliveries show it: `branch: null`, no tag, null commit
    # fields; enrichment asks the pipeline (tests/workers/test_enrichment.py).
    "workflow-completed.tag.github-oauth.derived.json": VcsFacts(
        "github", revision=TAG_SHA, repository_url="https://github.com/acme/payments-api"
    ),
}


def test_every_sample_has_a_row() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*-completed.*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_vcs_facts_of_each_sample(name: str, expected: VcsFacts) -> None:
    assert vcs_facts(load_fixture(name)) == expected


@pytest.mark.parametrize(
    ("name", "ref_kind", "ref"),
    [
        ("job-completed.tag.bitbucket-cloud.derived.json", "tag", "v2.4.0"),
        ("workflow-completed.gitlab.docs.json", "branch", "main"),
        ("ping.observed.raw-body.json", None, None),
    ],
)
def test_ref_kind_says_tag_or_branch(name: str, ref_kind: str | None, ref: str | None) -> None:
    facts = vcs_facts(load_fixture(name))
    assert (facts.ref_kind, facts.ref) == (ref_kind, ref)
    assert facts.to_dict()["ref_kind"] == ref_kind


def trigger_parameters(**maps: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": {"number": 1, "trigger_parameters": maps}}


@pytest.mark.parametrize(
    ("payload", "branch", "tag"),
    [
        # git.tag is "" on branch builds (DOCS-REF GitLab sample)
        (trigger_parameters(git={"branch": "main", "tag": ""}), "main", None),
        (trigger_parameters(git={"branch": "", "tag": "v1.2.0"}), None, "v1.2.0"),
        (trigger_parameters(git={"ref": "refs/heads/feature/x"}), "feature/x", None),
        (trigger_parameters(git={"ref": "refs/tags/v1"}), None, "v1"),
        (trigger_parameters(git={"branch": " ", "tag": "", "ref": "refs/tags/v1"}), None, "v1"),
        (trigger_parameters(github_app={"full_ref": "refs/heads/dev", "ref": "dev"}), "dev", None),
        (trigger_parameters(gitlab={"ref": "refs/tags/release-3"}), None, "release-3"),
        # a short ref cannot say whether it names a branch or a tag
        (trigger_parameters(github_app={"ref": "dev"}), None, None),
        (trigger_parameters(git={"ref": "refs/heads/"}, gitlab={"ref": "refs/heads/main"}), "main", None),
        (trigger_parameters(git={"ref": "refs/pull/7/head"}), None, None),
        # the first map that names a branch or tag decides, so a tag never mixes with a branch
        ({"pipeline": {"vcs": {"tag": "v9"}, "trigger_parameters": {"git": {"branch": "main"}}}}, None, "v9"),
    ],
)
def test_branch_and_tag_fall_back_to_refs(payload: dict[str, Any], branch: str | None, tag: str | None) -> None:
    facts = vcs_facts(payload)
    assert (facts.branch, facts.tag) == (branch, tag)


@pytest.mark.parametrize(
    ("message", "subject", "body"),
    [
        ("Fix the build\n\nThe cache key was wrong.\nSee #12.", "Fix the build", "The cache key was wrong.\nSee #12."),
        ("Fix the build\r\n\r\nBody", "Fix the build", "Body"),
        ("\n\n  Leading blank lines\nrest", "Leading blank lines", "rest"),
        ("One line", "One line", None),
    ],
)
def test_commit_subject_is_the_first_line_of_the_message(message: str, subject: str, body: str | None) -> None:
    facts = vcs_facts(trigger_parameters(git={"commit_message": message}))
    assert (facts.commit_subject, facts.commit_body) == (subject, body)


def test_vcs_commit_body_wins_over_the_rest_of_a_multiline_subject() -> None:
    payload = {"pipeline": {"vcs": {"commit": {"subject": "Title\nsecond", "body": "The body"}}}}
    assert (vcs_facts(payload).commit_subject, vcs_facts(payload).commit_body) == ("Title", "The body")


def test_each_fact_falls_back_from_vcs_to_git_to_github_app_or_gitlab() -> None:
    payload = {
        "pipeline": {
            "vcs": {"provider_name": "github", "revision": "", "commit": {"author": {"name": "From vcs"}}},
            "trigger_parameters": {
                "git": {"checkout_sha": "abc123", "commit_author_name": "From git", "commit_author_email": ""},
                "github_app": {"commit_author_email": "app@example.com", "commit_sha": "ignored"},
            },
        }
    }
    facts = vcs_facts(payload)
    assert (facts.revision, facts.author_name, facts.author_email) == ("abc123", "From vcs", "app@example.com")


@pytest.mark.parametrize(
    ("pipeline", "provider"),
    [
        ({"vcs": {"provider_name": "github"}}, "github"),
        ({"vcs": {"provider_name": "GitHub"}}, "github"),  # the API's spelling
        ({"vcs": {"provider_name": "bitbucket"}}, "bitbucket"),
        ({"vcs": {"provider_name": "gitea"}}, "unknown"),
        ({"vcs": {"provider_name": 7}}, "unknown"),
        ({"trigger_parameters": {"circleci": {"trigger_type": "gitlab"}}}, "gitlab"),
        ({"trigger_parameters": {"circleci": {"trigger_type": "github_app"}, "gitlab": {}}}, "github_app"),
        # the undocumented github_app map, should the deprecated circleci map go (DOCS-PV)
        ({"trigger_parameters": {"github_app": {"branch": "main"}, "git": {}}}, "github_app"),
        ({"trigger_parameters": {"gitlab": {"branch": "main"}}}, "gitlab"),
        ({"trigger_parameters": {"git": {"branch": "main"}}}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_provider_is_one_lowercase_name(pipeline: dict[str, Any], provider: str) -> None:
    assert vcs_facts({"pipeline": pipeline}).provider == provider


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"pipeline": None},
        {"pipeline": "github"},
        {"pipeline": {"vcs": [], "trigger_parameters": "x"}},
        {"pipeline": {"vcs": {"branch": 3, "tag": ["v1"], "revision": {"sha": "x"}, "commit": "msg"}}},
        {"pipeline": {"vcs": {"commit": {"subject": None, "author": "Jane"}}}},
        {"pipeline": {"trigger_parameters": {"git": {"ref": 5, "commit_message": False}, "gitlab": None}}},
        {"pipeline": {"vcs": {"branch": "", "tag": "  ", "target_repository_url": "", "unknown_key": {"a": 1}}}},
    ],
)
def test_blank_and_wrongly_typed_values_are_unknown(payload: dict[str, Any]) -> None:
    assert vcs_facts(payload) == VcsFacts()


def test_vcs_facts_leaves_the_payload_alone() -> None:
    payload = load_fixture("workflow-completed.gitlab.docs.json")
    before = copy.deepcopy(payload)
    vcs_facts(payload)
    assert payload == before


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_dict_and_from_dict_round_trip(name: str) -> None:
    facts = vcs_facts(load_fixture(name))
    assert VcsFacts.from_dict(facts.to_dict()) == facts


def test_from_dict_drops_unknown_keys_and_bad_values() -> None:
    data = {"provider": "svn", "branch": "main", "tag": "", "revision": 42, "ref_kind": "tag", "extra": 1}
    assert VcsFacts.from_dict(data) == VcsFacts(provider="unknown", branch="main")


def test_filled_from_takes_only_what_the_webhook_left_unknown() -> None:
    webhook = vcs_facts(load_fixture("workflow-completed.tag.github-oauth.derived.json"))
    api = VcsFacts("github", tag="v1.4.0", revision="0" * 40, commit_subject="Release 1.4.0", author_name="Jane")

    filled = webhook.filled_from(api)

    assert filled == VcsFacts(
        "github", tag="v1.4.0", revision=TAG_SHA, commit_subject="Release 1.4.0", author_name="Jane",
        repository_url="https://github.com/acme/payments-api",
    )  # fmt: skip
    assert filled.ref_kind == "tag" and VcsFacts().filled_from(api).provider == "github"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["pipeline", "vcs", "trigger_parameters", "git", "gitlab", "github_app", "circleci", "commit", "author",
     "branch", "tag", "ref", "full_ref", "revision", "subject", "body", "commit_message", "commit_title",
     "provider_name", "trigger_type", "repo_url", "web_url", "checkout_sha", "name", "email"]
)  # fmt: skip
# Known keys at any depth, so the generator reaches the paths vcs_facts reads.
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from(["", " ", "refs/heads/", "refs/tags/x"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), JSON, max_size=5) | st.dictionaries(KEYS, SHAPED, max_size=4))
def test_vcs_facts_never_raises_on_any_dict(payload: dict[str, Any]) -> None:
    facts = vcs_facts(payload)
    assert VcsFacts.from_dict(facts.to_dict()) == facts
    assert all(value is None or (isinstance(value, str) and value.strip()) for value in facts.to_dict().values())
