"""`circleci-events api …` through the real entry point against the CircleCI simulator."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_fixture
from tests.service.cli.conftest import assert_one_clear_line, run_cli

PAYLOAD = load_fixture("workflow-completed.failed.github-oauth.derived.json")
SLUG = PAYLOAD["project"]["slug"]
ORG = PAYLOAD["organization"]["id"]


def test_me_names_the_tokens_user(api_env) -> None:
    result = run_cli("api", "me", "--json", env=api_env)
    assert result.code == 0, result.err
    assert json.loads(result.out)["login"]


def test_workflows_and_jobs_list_every_page_as_json(api_env) -> None:
    workflows = json.loads(run_cli("api", "workflows", PAYLOAD["pipeline"]["id"], "--json", env=api_env).out)
    assert [w["id"] for w in workflows] == [PAYLOAD["workflow"]["id"]]
    jobs = run_cli("api", "jobs", PAYLOAD["workflow"]["id"], "--json", env=api_env)
    assert [j["name"] for j in json.loads(jobs.out)] == ["build", "test", "hold-for-deploy"]  # page size 2


def test_jobs_print_a_table_by_default(api_env) -> None:
    out = run_cli("api", "jobs", PAYLOAD["workflow"]["id"], env=api_env).out.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "STATUS", "JOB_NUMBER", "ID"]
    assert out[3].split()[:3] == ["hold-for-deploy", "approval", "on_hold"]


def test_tests_failed_and_artifacts_download(api_env, tmp_path) -> None:
    jobs = json.loads(run_cli("api", "jobs", PAYLOAD["workflow"]["id"], "--json", env=api_env).out)
    number = str(next(j["job_number"] for j in jobs if j["name"] == "test"))
    failed = json.loads(run_cli("api", "tests", SLUG, number, "--failed", "--json", env=api_env).out)
    assert [t["result"] for t in failed] == ["failure"]
    result = run_cli("api", "artifacts", SLUG, number, "--download", str(tmp_path), "--json", env=api_env)
    assert result.code == 0, result.err
    assert (tmp_path / "coverage" / "index.html").read_text().startswith("artifact coverage/index.html")


def test_trigger_prints_the_new_pipeline(api_env) -> None:
    result = run_cli("api", "trigger", SLUG, "--branch", "main", "--param", "deploy=true", "--json", env=api_env)
    assert result.code == 0, result.err
    created = json.loads(result.out)
    assert created["state"] == "created" and created["number"] > PAYLOAD["pipeline"]["number"]


def test_contexts_and_their_variables(api_env) -> None:
    listed = json.loads(run_cli("api", "contexts", "list", "--owner-id", ORG, "--json", env=api_env).out)
    assert [c["name"] for c in listed] == ["org-global"]
    created = json.loads(run_cli("api", "contexts", "create", "deploy", "--owner-id", ORG, "--json", env=api_env).out)
    assert (
        run_cli(
            "api", "contexts", "set-var", created["id"], "TOKEN", "--value", "-", input="s3cret\n", env=api_env
        ).code
        == 0
    )
    names = json.loads(run_cli("api", "contexts", "vars", created["id"], "--json", env=api_env).out)
    assert [v["variable"] for v in names] == ["TOKEN"]
    assert run_cli("api", "contexts", "unset-var", created["id"], "TOKEN", env=api_env).code == 0
    assert run_cli("api", "contexts", "delete", created["id"], env=api_env).code == 0


def test_project_env_vars_are_masked(api_env) -> None:
    assert run_cli("api", "env-vars", "set", SLUG, "NEW_VAR", "--value", "abcdefgh1234", env=api_env).code == 0
    listed = json.loads(run_cli("api", "env-vars", "list", SLUG, "--json", env=api_env).out)
    new = next(v for v in listed if v["name"] == "NEW_VAR")
    assert "abcdefgh1234" not in json.dumps(listed) and new["value"].endswith("1234")
    assert run_cli("api", "env-vars", "unset", SLUG, "NEW_VAR", env=api_env).code == 0


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        (("api", "me"), {"CIRCLE_TOKEN": "wrong"}, 1, "401"),
        (("api", "me"), {"CIRCLE_TOKEN": ""}, 2, "CIRCLE_TOKEN is not set"),
        (("api", "me"), {"CIRCLECI_API_URL": "http://127.0.0.1:1/api/v2"}, 1, "unreachable"),
        (("api", "pipeline", "no-such-pipeline"), {}, 1, "404"),
        (("api", "trigger", SLUG), {}, 2, "exactly one of --branch or --tag"),
        (("api", "trigger", SLUG, "--branch", "b", "--param", "novalue"), {}, 2, "NAME=VALUE"),
        (("api", "me"), {"CIRCLECI_API_URL": "ftp://x"}, 2, "CIRCLECI_API_URL"),
    ],
)
def test_bad_input_gets_one_clear_line_and_the_right_exit_code(api_env, args, env, code, says) -> None:
    result = run_cli(*args, env={**api_env, **env})
    assert_one_clear_line(result, code)
    assert says in result.err
    assert "sim-token" not in result.err + result.out
