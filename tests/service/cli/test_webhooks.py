"""`circleci-events webhooks …` through the real entry point against the CircleCI simulator over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.simulators.circleci import Simulator, create_simulator
from service.simulators.circleci_data import Dataset
from tests.conftest import free_port
from tests.e2e.processes import Service, cli, stop_all
from tests.server import running
from tests.service.cli.conftest import SIM_TOKEN, assert_one_clear_line, run_cli

URL = "https://events.example.com/webhooks/circleci"
SECRET = "current-secret-A1"  # the first of CIRCLECI_WEBHOOK_SECRETS
NEW = "rotated-secret-B2"
OTHER = "https://other-tool.example.com/hook"
API, WEB, LOCKED, GONE = "gh/acme/api", "gh/acme/web", "gh/acme/locked", "gh/acme/gone"
WRITES = ("POST /webhook", "PUT /webhook/{webhook-id}", "DELETE /webhook/{webhook-id}")


@pytest.fixture
def sim() -> Iterator[tuple[Simulator, dict[str, str]]]:
    """Org gh/acme: api and web, and locked, whose webhooks the token may not manage; five
    pipelines over three pages."""
    data = Dataset.example()
    for slug in (API, WEB, API, LOCKED, WEB):
        data.add_pipeline(slug)
    data.deny_webhooks(LOCKED)
    app = create_simulator(data, page_size=2)
    with running(app) as base:
        env = {
            "CIRCLE_TOKEN": SIM_TOKEN,
            "CIRCLECI_API_URL": base + "/api/v2",
            "CIRCLECI_WEBHOOK_SECRETS": f"{SECRET},older-secret-C3-old",
        }
        yield app.state.simulator, env


def hooks(sim: Simulator, slug: str, url: str | None = URL) -> list[dict[str, Any]]:
    """The webhooks the simulator holds for a project (secrets in the clear), of `url` if given."""
    project_id = sim.dataset.projects[slug]["id"]
    with sim.dataset.lock:
        found = [dict(w) for w in sim.dataset.webhooks.values() if w["scope"]["id"] == project_id]
    return [w for w in found if url is None or w["url"] == url]


def writes(sim: Simulator) -> int:
    with sim.lock:
        return sum(sim.calls[w] for w in WRITES)


def lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_ensure_on_an_org_makes_one_webhook_per_project_and_a_rerun_changes_nothing(sim) -> None:
    simulator, env = sim

    first = run_cli("webhooks", "ensure", "--url", URL, "--org", "gh/acme", env=env)
    writes_after_first = writes(simulator)
    again = run_cli("webhooks", "ensure", "--url", URL, "--org", "gh/acme", env=env)

    assert first.code == again.code == 1  # gh/acme/locked failed both times
    # in the order the org's pipelines name them, newest first: web, locked, api
    assert lines(first.out)[0::2] == [f"{WEB}: created", f"{API}: created"]
    assert lines(first.out)[1].startswith(f"{LOCKED}: failed: CircleCI API answered 403")
    assert "3 projects: 2 created, 1 failed" in first.err
    assert lines(again.out)[0::2] == [f"{WEB}: unchanged", f"{API}: unchanged"]
    assert writes(simulator) == writes_after_first == 2
    assert simulator.call_count("GET", "/pipeline") == 2 * 3  # every page, each run
    for slug in (API, WEB):
        [hook] = hooks(simulator, slug, url=None)
        assert (hook["events"], hook["verify-tls"], hook["signing-secret"]) == (
            ["workflow-completed", "job-completed"],
            True,
            SECRET,
        )
    assert SECRET not in first.out + first.err + again.out + again.err


@pytest.mark.parametrize("source", ["stdin", "file"])
def test_ensure_reads_a_secret_given_to_it_from_stdin_or_a_file_never_argv(sim, tmp_path, source) -> None:
    simulator, env = sim
    given = "given-secret-$(rm -rf ~)'\"`x`"  # shell characters are the secret's own
    (tmp_path / "secret.txt").write_text(given + "\n")
    how = ["--secret", "-"] if source == "stdin" else ["--secret-file", str(tmp_path / "secret.txt")]

    result = run_cli("webhooks", "ensure", "--url", URL, API, *how, env=env, input=given + "\n")

    assert result.code == 0, result.err
    [hook] = hooks(simulator, API, url=None)
    assert hook["signing-secret"] == given
    assert given not in result.out + result.err


def test_ensure_takes_a_base_url_and_projects_from_a_file_and_arguments(sim, tmp_path) -> None:
    simulator, env = sim
    listed = tmp_path / "projects.txt"
    listed.write_text(f"# our services\n{API}\n\n{WEB}   # the front end\n{API}\n")

    result = run_cli(
        "webhooks", "ensure", "--url", "https://events.example.com", "--from-file", str(listed), WEB, env=env
    )

    assert result.code == 0, result.err
    assert lines(result.out) == [f"{WEB}: created", f"{API}: created"]  # each once, arguments first
    assert len(hooks(simulator, API)) == len(hooks(simulator, WEB)) == 1


def test_ensure_updates_only_what_differs_and_never_touches_other_webhooks(sim) -> None:
    simulator, env = sim
    project_id = simulator.dataset.projects[API]["id"]
    simulator.dataset.add_webhook(
        project_id, url=URL, signing_secret="stale-secret-Z9", name="old", events=["job-completed"], verify_tls=False
    )
    simulator.dataset.add_webhook(project_id, url=OTHER, signing_secret="theirs-Q7", events=["job-completed"])

    result = run_cli("webhooks", "ensure", "--url", URL, API, env=env)

    assert result.code == 0, result.err
    assert lines(result.out) == [f"{API}: updated (name, events, verify-tls, signing-secret)"]
    [ours] = hooks(simulator, API)
    assert (ours["name"], ours["events"], ours["verify-tls"], ours["signing-secret"]) == (
        "circleci-events",
        ["workflow-completed", "job-completed"],
        True,
        SECRET,
    )
    [theirs] = hooks(simulator, API, url=OTHER)
    assert (theirs["events"], theirs["signing-secret"]) == (["job-completed"], "theirs-Q7")


def test_ensure_keeps_one_of_several_webhooks_pointing_at_us(sim) -> None:
    simulator, env = sim
    project_id = simulator.dataset.projects[API]["id"]
    for _ in range(3):
        simulator.dataset.add_webhook(project_id, url=URL, signing_secret=SECRET, name="circleci-events")

    result = run_cli("webhooks", "ensure", "--url", URL, API, env=env)

    assert lines(result.out) == [f"{API}: updated (2 duplicates removed)"]
    assert len(hooks(simulator, API)) == 1


def test_ensure_dry_run_says_what_it_would_do_and_changes_nothing(sim) -> None:
    simulator, env = sim
    simulator.dataset.add_webhook(simulator.dataset.projects[WEB]["id"], url=URL, signing_secret=SECRET, name="x")

    result = run_cli("webhooks", "ensure", "--url", URL, API, WEB, "--dry-run", env=env)

    assert result.code == 0, result.err
    assert lines(result.out) == [f"{API}: would create", f"{WEB}: would update (name)"]
    assert lines(result.err) == ["2 projects: 1 would create, 1 would update"]
    assert writes(simulator) == 0
    assert hooks(simulator, API) == []


@pytest.mark.parametrize(
    ("org", "expected"),
    [("gh/acmee", "; did you mean 'gh/acme'?"), ("gh/nobody-at-all", "an org slug is vcs/name, e.g. gh/acme")],
    ids=["misspelt", "unknown"],
)
def test_an_org_circleci_does_not_know_exits_2_naming_the_known_ones(sim, org: str, expected: str) -> None:
    simulator, env = sim

    result = run_cli("webhooks", "ensure", "--url", URL, "--org", org, env=env)

    assert_one_clear_line(result, 2)
    assert f"--org {org}: CircleCI knows no such organization for CIRCLE_TOKEN's user (theirs: " in result.err
    assert "gh/acme" in result.err.split("(theirs: ")[1].split(")")[0]
    assert expected in result.err
    assert writes(simulator) == 0


def test_the_long_form_of_a_known_org_is_the_same_org(sim) -> None:
    _, env = sim
    result = run_cli("webhooks", "list", "--url", URL, "--org", "github/acme", env=env)
    assert result.code == 1, result.err  # gh/acme/locked refuses its webhooks; the others are listed
    assert "github/acme: 3 projects with recent pipelines" in result.err


def test_a_403_on_a_webhook_says_an_org_admin_token_is_needed(sim) -> None:
    _, env = sim
    result = run_cli("webhooks", "ensure", "--url", URL, LOCKED, env=env)
    assert result.code == 1
    assert lines(result.out) == [
        f"{LOCKED}: failed: CircleCI API answered 403 to GET /webhook: Permission denied.; only an organization "
        "admin may manage a project's webhooks: use a personal API token of an org admin as CIRCLE_TOKEN"
    ]
    help_text = run_cli("webhooks", "--help", env={}).out
    assert "only an organization admin" in " ".join(help_text.split())


def test_a_project_without_permission_or_unknown_is_reported_and_the_rest_go_on(sim) -> None:
    simulator, env = sim

    result = run_cli("webhooks", "ensure", "--url", URL, GONE, LOCKED, API, "--json", env=env)

    assert result.code == 1
    outcomes = {o["project"]: o for o in json.loads(result.out)}
    assert outcomes[GONE]["result"] == outcomes[LOCKED]["result"] == "failed"
    assert "404" in outcomes[GONE]["detail"] and "Project not found" in outcomes[GONE]["detail"]
    assert "403" in outcomes[LOCKED]["detail"] and "Permission denied." in outcomes[LOCKED]["detail"]
    assert outcomes[API]["result"] == "created"
    assert len(hooks(simulator, API)) == 1
    assert "Traceback" not in result.err


def test_429s_are_waited_out_and_retried(sim) -> None:
    simulator, env = sim
    listing = simulator.add_fault(path="/webhook", method="GET", status=429, retry_after=1, times=2)
    creating = simulator.add_fault(path="/webhook", method="POST", kind="rate_limited_text", times=1)
    project = simulator.add_fault(path="/project/gh/acme/web", status=429, retry_after=0, times=1)

    result = run_cli("webhooks", "ensure", "--url", URL, API, WEB, env=env)

    assert result.code == 0, result.err
    assert lines(result.out) == [f"{API}: created", f"{WEB}: created"]
    assert (listing.fired, creating.fired, project.fired) == (2, 1, 1)
    assert len(hooks(simulator, API)) == len(hooks(simulator, WEB)) == 1  # a 429'd POST is not a duplicate


def test_a_429_that_does_not_end_fails_that_project_only(sim) -> None:
    simulator, env = sim
    simulator.add_fault(path="/project/gh/acme/api", status=429, retry_after=3600, times=None)

    result = run_cli("webhooks", "ensure", "--url", URL, API, WEB, env=env)

    assert result.code == 1
    assert lines(result.out)[0].startswith(f"{API}: failed: CircleCI API answered 429")
    assert lines(result.out)[1] == f"{WEB}: created"


def test_list_shows_ours_and_with_all_every_webhook_marking_ours(sim) -> None:
    simulator, env = sim
    simulator.dataset.add_webhook(simulator.dataset.projects[API]["id"], url=OTHER, signing_secret="theirs-Q7")
    assert run_cli("webhooks", "ensure", "--url", URL, API, env=env).code == 0

    ours = run_cli("webhooks", "list", "--url", URL, API, WEB, "--json", env=env)
    every = run_cli("webhooks", "list", "--url", URL, API, "--all", "--json", env=env)
    table = run_cli("webhooks", "list", "--url", URL, API, WEB, LOCKED, env=env)

    assert ours.code == every.code == 0, ours.err + every.err
    assert [(r["project"], r.get("url")) for r in json.loads(ours.out)] == [(API, URL), (WEB, None)]
    assert sorted((r["url"], r["ours"]) for r in json.loads(every.out)) == [(URL, True), (OTHER, False)]
    assert table.code == 1
    assert lines(table.out)[0].split()[:3] == ["PROJECT", "NAME", "EVENTS"]
    assert lines(table.out)[2].split()[:2] == [WEB, "(none)"]
    assert lines(table.err) == [f"{LOCKED}: failed: CircleCI API answered 403 to GET /webhook: Permission denied.; "
                                "only an organization admin may manage a project's webhooks: use a personal API "
                                "token of an org admin as CIRCLE_TOKEN"]  # fmt: skip
    for result in (ours, every, table):
        assert SECRET not in result.out + result.err and "xxxx" not in result.out + result.err


@pytest.fixture
def receiver(redis_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`circleci-events web` accepting the comma-separated `secrets`; its webhook URL."""
    started: list[Service] = []

    def start(secrets: str) -> str:
        port = free_port()
        env = {"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": secrets, "LOG_FORMAT": "json",
               "HOST": "127.0.0.1", "PORT": str(port)}  # fmt: skip
        web = Service(cli("web"), env=env, log_path=tmp_path / f"web-{port}.log").start()
        started.append(web)
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        return f"http://127.0.0.1:{port}/webhooks/circleci"

    yield start
    stop_all(started)


def ours(simulator: Simulator, slug: str, url: str) -> None:
    """A webhook of `slug` pointing at `url`, signed with the current SECRET, as `ensure` leaves it."""
    simulator.dataset.add_webhook(simulator.dataset.projects[slug]["id"], url=url, signing_secret=SECRET)


@pytest.mark.e2e
def test_rotate_secret_reads_stdin_and_sets_the_secret_on_ours_only_once_the_receiver_accepts_it(sim, receiver) -> None:
    simulator, env = sim
    url = receiver(f"{NEW},{SECRET}")  # deployed with new,old: step 1 of the rotation
    ours(simulator, API, url)
    simulator.dataset.add_webhook(simulator.dataset.projects[API]["id"], url=OTHER, signing_secret="theirs-Q7")

    dry = run_cli("webhooks", "rotate-secret", "-", "--url", url, API, "--dry-run", input=NEW + "\n", env=env)
    assert hooks(simulator, API, url)[0]["signing-secret"] == SECRET
    result = run_cli("webhooks", "rotate-secret", "-", "--url", url, API, WEB, input=NEW + "\n", env=env)

    assert lines(dry.out) == [f"{API}: would rotate"]
    assert result.code == 0, result.err
    assert lines(result.out)[0] == f"{API}: rotated"
    assert lines(result.out)[1].startswith(f"{WEB}: absent (no webhook points at {url}")
    assert hooks(simulator, API, url)[0]["signing-secret"] == NEW
    assert hooks(simulator, API, url=OTHER)[0]["signing-secret"] == "theirs-Q7"
    assert NEW not in result.out + result.err


@pytest.mark.e2e
def test_rotate_secret_reads_a_secret_file(sim, receiver, tmp_path: Path) -> None:
    simulator, env = sim
    url = receiver(f"{NEW},{SECRET}")
    ours(simulator, API, url)
    (tmp_path / "new-secret.txt").write_text(NEW + "\n")

    result = run_cli("webhooks", "rotate-secret", "--secret-file", str(tmp_path / "new-secret.txt"), "--url", url,
                     API, env=env)  # fmt: skip

    assert result.code == 0, result.err
    assert hooks(simulator, API, url)[0]["signing-secret"] == NEW


@pytest.mark.e2e
def test_rotate_secret_refuses_a_secret_the_receiver_does_not_accept_yet_and_changes_nothing(sim, receiver) -> None:
    simulator, env = sim
    url = receiver(SECRET)  # step 1 skipped: CircleCI's deliveries would all get 401
    ours(simulator, API, url)

    result = run_cli("webhooks", "rotate-secret", "-", "--url", url, API, input=NEW + "\n", env=env)

    assert_one_clear_line(result, 1)
    assert f"not rotating: the receiver at {url} does not accept the new secret yet (401" in result.err
    assert "CIRCLECI_WEBHOOK_SECRETS=NEW,OLD" in result.err
    assert hooks(simulator, API, url)[0]["signing-secret"] == SECRET and writes(simulator) == 0
    assert NEW not in result.err


def test_rotate_secret_refuses_a_receiver_it_cannot_reach_and_changes_nothing(sim) -> None:
    simulator, env = sim
    url = f"http://127.0.0.1:{free_port()}/webhooks/circleci"  # nothing listens there
    ours(simulator, API, url)

    result = run_cli("webhooks", "rotate-secret", "-", "--url", url, API, input=NEW + "\n", env=env)

    assert_one_clear_line(result, 1)
    assert f"not rotating: cannot reach the receiver at {url} (ConnectError)" in result.err
    assert writes(simulator) == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((NEW, "--url", URL, API), "never from the command line (ps and shell history show it)"),
        (("--url", URL, API), "never from the command line"),
        (("-", "--secret-file", "/dev/null", "--url", URL, API), "give the new secret once"),
        (("--secret-file", "/dev/null", "--url", URL, API), "the new signing secret is empty"),
        (("--secret-file", "/dev/null", "--url", URL, NEW, API), "one argument is not (not shown)"),
    ],
    ids=["on-argv", "none", "both", "empty-file", "secret-among-slugs"],
)
def test_rotate_secret_never_takes_the_secret_from_the_command_line(sim, args: tuple[str, ...], says: str) -> None:
    simulator, env = sim

    result = run_cli("webhooks", "rotate-secret", *args, env=env, input="")

    assert_one_clear_line(result, 2)
    assert says in result.err and NEW not in result.err + result.out
    assert writes(simulator) == 0


def test_remove_deletes_ours_only(sim) -> None:
    simulator, env = sim
    assert run_cli("webhooks", "ensure", "--url", URL, API, env=env).code == 0
    simulator.dataset.add_webhook(simulator.dataset.projects[API]["id"], url=OTHER, signing_secret="theirs-Q7")

    dry = run_cli("webhooks", "remove", "--url", URL, API, "--dry-run", env=env)
    result = run_cli("webhooks", "remove", "--url", URL, API, WEB, env=env)

    assert lines(dry.out) == [f"{API}: would remove"]
    assert result.code == 0, result.err
    assert lines(result.out) == [f"{API}: removed", f"{WEB}: absent (no webhook points at {URL})"]
    assert hooks(simulator, API) == []
    assert [h["url"] for h in hooks(simulator, API, url=None)] == [OTHER]


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        (("ensure", "--url", URL), {}, 2, "name the projects"),
        (("ensure", "--url", "http://events.example.com", API), {}, 2, "https only"),
        (("ensure", "--url", URL, API), {"CIRCLECI_WEBHOOK_SECRETS": ""}, 2, "no signing secret"),
        (("ensure", "--url", URL, API, "--secret", "-"), {}, 2, "the signing secret is empty"),
        (("ensure", "--url", URL, API, "--secret", "on-the-command-line-0123"), {}, 2, "never from the command line"),
        (
            ("ensure", "--url", URL, API, "--secret", "-", "--secret-file", "/dev/null"),
            {},
            2,
            "give the signing secret once",
        ),
        (("ensure", "--url", URL, API), {"CIRCLE_TOKEN": ""}, 2, "CIRCLE_TOKEN is not set"),
        (("ensure", "--url", URL, API, WEB), {"CIRCLE_TOKEN": "wrong"}, 1, "401"),
        (("list", "--url", "ftp://x", API), {}, 2, "--url must be an http"),
        (("remove", "--url", URL, "--from-file", "/nonexistent/projects.txt"), {}, 2, "No such file"),
    ],
)
def test_bad_input_gets_one_clear_line_and_the_right_exit_code(sim, args, env, code, says) -> None:
    simulator, base = sim

    result = run_cli("webhooks", *args, env={**base, **env}, input="")

    assert_one_clear_line(result, code)
    assert says in result.err
    assert writes(simulator) == 0
    assert SIM_TOKEN not in result.err + result.out
    assert "on-the-command-line-0123" not in result.err + result.out
