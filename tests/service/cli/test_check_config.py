"""`circleci-events check-config`: validate the routes file, show it resolved, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.service.cli.conftest import assert_one_clear_line, run_cli

SLACK_URL = "https://hooks.slack.com/services/T000/B000/slack-token-value"
ROUTES = """\
handlers:
  ops: {type: slack, url: "${SLACK_URL}"}
  pager: {type: pagerduty, routing_key: "${PD_KEY}"}
  audit: {type: webhook, url: "https://audit.example/ci/hook-token", secret: "audit-secret"}
subscriptions:
  - {name: main-failures, handlers: [ops, pager], branches: [main], statuses: [failed]}
  - {name: everything, handlers: [audit]}
"""
ENV = {"SLACK_URL": SLACK_URL, "PD_KEY": "pd-routing-key"}
SECRETS = ("slack-token-value", "T000/B000", "pd-routing-key", "hook-token", "audit-secret")


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def test_prints_the_resolved_handlers_and_subscriptions(routes: Path) -> None:
    result = run_cli("check-config", str(routes), "--json", env=ENV)
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert {h["name"]: (h["type"], h["options"]) for h in shown["handlers"]} == {
        "ops": ("slack", {"url": "https://hooks.slack.com/…"}),
        "pager": ("pagerduty", {"url": "https://events.pagerduty.com/…", "routing_key": "[redacted]"}),
        "audit": ("webhook", {"url": "https://audit.example/…", "secret": "[redacted]"}),
    }
    assert shown["subscriptions"][0] == {
        "name": "main-failures",
        "handlers": ["ops", "pager"],
        "match": {"branches": ["main"], "statuses": ["failed"]},
        "line": 6,
    }


@pytest.mark.parametrize("as_json", [(), ("--json",)], ids=["table", "json"])
def test_never_prints_a_secret(routes: Path, as_json: tuple[str, ...]) -> None:
    result = run_cli("check-config", str(routes), *as_json, env=ENV)
    assert result.code == 0, result.err
    assert not [s for s in SECRETS if s in result.out + result.err]


def test_the_table_names_each_handler_and_subscription(routes: Path) -> None:
    out = run_cli("check-config", str(routes), env=ENV).out
    assert out.splitlines()[0] == f"{routes}: valid; 3 handlers, 2 subscriptions"
    rows = [line.split() for line in out.splitlines()]
    assert ["everything", "audit", "every", "event", "7"] in rows


def test_shows_who_is_told_about_the_notifiers_own_failures(routes: Path) -> None:
    assert run_cli("check-config", str(routes), env=ENV).out.splitlines()[-1].startswith("alerts: none")
    routes.write_text(ROUTES + "alerts:\n  handlers: [ops, pager]\n")
    assert run_cli("check-config", str(routes), env=ENV).out.splitlines()[-1] == (
        "alerts: ops, pager (at most one message each every 300 s; line 8)"
    )
    shown = json.loads(run_cli("check-config", str(routes), "--json", env=ENV).out)
    assert shown["alerts"] == {"handlers": ["ops", "pager"], "interval_seconds": 300, "line": 8}


def test_reads_routes_file_by_default(routes: Path) -> None:
    result = run_cli("check-config", "--json", env={**ENV, "ROUTES_FILE": str(routes)})
    assert json.loads(result.out)["file"] == str(routes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("handlers: {ops: {type: slack, url: 'x'\n", "line 2: not valid YAML"),
        ("handlers:\n  ops: {type: carrier-pigeon}\n", "line 2: handler 'ops', key 'type': unknown type"),
        (
            "handlers:\n  ops: {type: log}\nsubscriptions:\n  - {name: a, handlers: [nope]}\n",
            "line 4: subscription 'a', key 'handlers': unknown handler 'nope'",
        ),
        ("handlers:\n  ops: {type: slack, url: '${UNSET_VAR}'}\n", "line 2: handler 'ops', key 'url': environment"),
        ("handlers:\n  ops: {type: slack}\n", "line 2: handler 'ops', key 'url': missing required key"),
    ],
    ids=["invalid-yaml", "unknown-type", "unknown-handler", "unset-variable", "missing-key"],
)
def test_a_mistake_exits_2_naming_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    result = run_cli("check-config", str(path), env={})
    assert_one_clear_line(result, 2)
    assert f"routes file {path}, {expected}" in result.err


def test_json_is_printed_for_an_invalid_file_too_with_every_mistake(tmp_path: Path, routes: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "handlers:\n  ops: {type: slak}\n  log: {type: log}\nsubscriptions:\n  - {name: a, handlers: [logg]}\n"
    )
    result = run_cli("check-config", str(path), "--json", env={})
    assert result.code == 2 and "Traceback" not in result.err
    shown = json.loads(result.out)
    assert (shown["file"], shown["valid"], len(shown["problems"])) == (str(path), False, 2)
    assert "unknown type 'slak'" in shown["problems"][0] and "did you mean 'log'?" in shown["problems"][1]
    assert len(result.err.splitlines()) == 2, "stderr still says it to a person"
    missing = run_cli("check-config", str(tmp_path / "absent.yaml"), "--json", env={})
    assert missing.code == 2 and json.loads(missing.out)["valid"] is False
    assert "cannot be read" in json.loads(missing.out)["problems"][0]
    assert json.loads(run_cli("check-config", str(routes), "--json", env=ENV).out)["valid"] is True


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("check-config", str(tmp_path / "absent.yaml"), env={})
    assert_one_clear_line(result, 2)
    assert "absent.yaml: cannot be read (No such file or directory)" in result.err


def test_every_mistake_is_reported_in_one_run_a_line_each(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "handlers:\n"
        "  ops: {type: slak, url: 'https://hooks.test/x'}\n"
        "  log: {type: log, template: '{{ event.nope.x }}'}\n"
        "subscriptions:\n"
        "  - name: broken-main\n"
        "    handlers: [ops, logg]\n"
        "    statuses: [failure]\n"
        "    transitions: [broke]\n"
    )
    result = run_cli("check-config", str(path), env={})
    assert result.code == 2 and not result.out and "Traceback" not in result.err
    lines = result.err.splitlines()
    assert [line.split(", line ")[1].split(":")[0] for line in lines] == ["2", "3", "6", "7", "8"]
    assert all(line.startswith(f"circleci-events: configuration error: routes file {path}, line ") for line in lines)
    assert "unknown type 'slak'" in lines[0] and "did you mean 'slack'?" in lines[0]
    assert "fails on the sample event" in lines[1] and "'nope'" in lines[1]
    assert "unknown handler 'logg'; did you mean 'log'?" in lines[2]
    assert "did you mean 'failed'?" in lines[3]
    assert "did you mean 'broken'?" in lines[4] and lines[4].endswith("(5 mistakes in all)")


def test_placeholders_check_a_file_without_its_secrets(routes: Path) -> None:
    assert run_cli("check-config", str(routes), env={}).code == 2
    result = run_cli("check-config", str(routes), "--placeholders", env={})
    assert result.code == 0, result.err
    assert result.out.splitlines()[:2] == [
        f"{routes}: valid; 3 handlers, 2 subscriptions",
        "placeholders (not set here): SLACK_URL, PD_KEY",
    ]
    shown = json.loads(run_cli("check-config", str(routes), "--placeholders", "--json", env={}).out)
    assert shown["placeholders"] == ["SLACK_URL", "PD_KEY"]
    assert shown["handlers"][0]["options"] == {"url": "https://slack-url.placeholder.invalid/…"}


def test_the_shipped_example_checks_with_placeholders() -> None:
    example = Path(__file__).parents[3] / "config" / "routes.example.yaml"
    result = run_cli("check-config", str(example), "--placeholders", env={})
    assert result.code == 0, result.err
