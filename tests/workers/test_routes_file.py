"""The routes file: loading, `${VAR}` substitution and placeholders, every mistake with its line, all at once."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from config.errors import ConfigurationError
from workers.handlers.pagerduty import PAGERDUTY_URL
from workers.routes import AlertConfig
from workers.routes_file import load_routes

FIXTURE = Path(__file__).parents[1] / "fixtures" / "enriched" / "workflow-completed.failed.json"
CONFIG = Path(__file__).parents[2] / "config"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def routes(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Any:
    return load_routes(write(tmp_path, text), environ or {})


def event(**changes: Any) -> dict[str, Any]:
    data = json.loads(FIXTURE.read_text())
    for dotted, value in changes.items():
        section, _, field = dotted.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


def test_the_shipped_default_logs_everything() -> None:
    shipped = load_routes(CONFIG / "routes.yaml", {})
    assert [h.type for h in shipped.handlers.values()] == ["log"]
    assert shipped.match(event()) == ["log"]
    assert shipped.match({}) == ["log"]


def test_the_shipped_example_loads_with_its_variables_set() -> None:
    env = {"SLACK_OPS_WEBHOOK": "https://hooks.slack.test/x", "TEAMS_WORKFLOW_WEBHOOK": "https://t.test/x",
           "PD_ROUTING_KEY": "k", "AUDIT_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-1"}  # fmt: skip
    example = load_routes(CONFIG / "routes.example.yaml", env)
    assert {h.type for h in example.handlers.values()} == {
        "slack", "slack_app", "teams", "discord", "pagerduty", "webhook", "python", "log"
    }  # fmt: skip
    keys = {key for s in example.subscriptions for key in s.match}
    assert keys == {"events", "projects", "branches", "tags", "workflows", "jobs", "statuses", "transitions"}
    assert example.handlers["oncall"].options["url"] == PAGERDUTY_URL


def test_the_shipped_example_tells_ops_slack_about_the_notifiers_own_failures() -> None:
    env = {"SLACK_OPS_WEBHOOK": "https://hooks.slack.test/x", "TEAMS_WORKFLOW_WEBHOOK": "https://t.test/x",
           "PD_ROUTING_KEY": "k", "AUDIT_SECRET": "s"}  # fmt: skip
    alerts = load_routes(CONFIG / "routes.example.yaml", env).alerts
    assert alerts is not None and (alerts.handlers, alerts.interval_seconds) == (("ops-slack",), 300)


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [("${HOOK}", {"HOOK": "https://a.test/1"}, "https://a.test/1"),
     ("${HOOK:-https://default.test/}", {}, "https://default.test/"),
     ("${HOOK:-https://default.test/}", {"HOOK": "https://set.test/"}, "https://set.test/"),
     ("https://${HOST}/p/${ID:-7}", {"HOST": "h.test"}, "https://h.test/p/7")],
)  # fmt: skip
def test_variables_are_substituted(tmp_path: Path, value: str, environ: dict[str, str], expected: str) -> None:
    loaded = routes(tmp_path, f'handlers:\n  s: {{type: slack, url: "{value}"}}\n', environ)
    assert loaded.handlers["s"].options["url"] == expected


ERRORS = [
    ("handlers:\n  s: {type: slack, url: '${MISSING}'}\n", 2, "handler 's', key 'url'", "MISSING is not set"),
    ("handlers:\n  s: {type: fax}\n", 2, "handler 's', key 'type'", "unknown type 'fax'"),
    ("handlers:\n  s:\n    url: https://x.test\n", 2, "handler 's'", "missing key 'type'"),
    ("handlers:\n  s:\n    type: slack\n    colour: red\n    url: https://x.test\n", 4, "handler 's', key 'colour'",
     "unknown key"),
    ("handlers:\n  a: {type: log}\n  s:\n    type: slack\n", 3, "handler 's', key 'url'", "missing required key"),
    ("handlers:\n  w: {type: webhook, url: 'https://x.test'}\n", 2, "handler 'w', key 'secret'", "missing required"),
    ("handlers:\n  p: {type: pagerduty}\n", 2, "handler 'p', key 'routing_key'", "missing required"),
    ("handlers:\n  p: {type: python}\n", 2, "handler 'p', key 'callable'", "missing required"),
    ("handlers:\n  l: {type: log, url: 'https://x.test'}\n", 2, "handler 'l', key 'url'", "unknown key for type log"),
    ("handlers:\n  s: {type: slack, url: 'ftp://x'}\n", 2, "handler 's', key 'url'", "http:// or https://"),
    ("handlers:\n  p: {type: python, callable: 'nope_xyz:f'}\n", 2, "handler 'p', key 'callable'", "cannot import"),
    ("handlers:\n  l: {type: log, template: '{{ x '}\n", 2, "handler 'l', key 'template'", "does not compile"),
    ("handlers:\n  l: {type: log, template: '{{ 1 // 0 }}'}\n", 2, "handler 'l', key 'template'",
     "fails on the sample event"),
    ("handlers:\n  l: {type: log}\nsubscriptions:\n  - name: a\n    handlers: [l, ghost]\n", 5,
     "subscription 'a', key 'handlers'", "unknown handler 'ghost'"),
    ("handlers:\n  l: {type: log}\nsubscriptions:\n  - name: a\n    handlers: [l]\n    colors: [red]\n", 6,
     "subscription 'a', key 'colors'", "unknown match key"),
    ("handlers:\n  l: {type: log}\nsubscriptions:\n  - name: a\n    handlers: [l]\n    branches: ['/ma(in/']\n", 6,
     "subscription 'a', key 'branches'", "invalid regex"),
    ("handlers:\n  l: {type: log}\nsubscriptions:\n  - name: a\n", 4, "subscription 'a', key 'handlers'",
     "missing required key"),
    ("handlers:\n  l: {type: log}\nsubscriptions:\n  - handlers: [l]\n    events: [{a: 1}]\n", 5,
     "subscription #1, key 'events'", "expected a string"),
    ("handlers:\n  l: {type: log}\nextra: 1\n", 3, "top level", "unknown key 'extra'"),
    ("handlers: [1, 2]\n", 1, "handlers", "expected a mapping"),
    ("handlers:\n  l: {type: log\n", 3, "", "not valid YAML"),
]  # fmt: skip

ALERTS = "handlers:\n  l: {type: log}\n  ops: {type: slack, url: 'https://hooks.test/x'}\nalerts:\n"


def test_an_alerts_section_names_handlers_and_an_interval_of_five_minutes_by_default(tmp_path: Path) -> None:
    assert routes(tmp_path, "handlers:\n  l: {type: log}\n").alerts is None
    loaded = routes(tmp_path, ALERTS + "  handlers: [ops, l, ops]\n")
    assert loaded.alerts == AlertConfig(handlers=("ops", "l"), interval_seconds=300, line=4)
    assert routes(tmp_path, ALERTS + "  handlers: ops\n  interval_seconds: 60\n").alerts.interval_seconds == 60


ERRORS += [(ALERTS + text, line, where, reason) for text, line, where, reason in [
    ("  handlers: [ghost]\n", 5, "alerts, key 'handlers'", "unknown handler 'ghost'"),
    ("  handlers: []\n", 5, "alerts, key 'handlers'", "expected at least one handler"),
    ("  interval_seconds: 60\n", 5, "alerts, key 'handlers'", "missing required key"),
    ("  handlers: [l]\n  every: 5m\n", 6, "alerts, key 'every'", "unknown key (expected handlers, interval_seconds)"),
    ("  handlers: [l]\n  interval_seconds: 5m\n", 6, "alerts, key 'interval_seconds'",
     "expected whole seconds from 1 to 86400, got '5m'"),
    ("  handlers: [l]\n  interval_seconds: 0\n", 6, "alerts, key 'interval_seconds'", "got '0'"),
    ("  handlers: [l]\n  interval_seconds: 86401\n", 6, "alerts, key 'interval_seconds'", "got '86401'"),
    ("  - l\n", 5, "alerts", "expected a mapping"),
]]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "where", "reason"), ERRORS, ids=[e[3] for e in ERRORS])
def test_every_error_names_file_place_key_and_line(
    tmp_path: Path, text: str, line: int, where: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"routes file {tmp_path / 'routes.yaml'}, line {line}:"), message
    assert where in message and reason in message


def test_errors_never_echo_a_secret_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, "handlers:\n  s: {type: slack, url: 'hooks.test/T0/sEcReT'}\n")
    assert "sEcReT" not in str(info.value)


MANY_MISTAKES = """
handlers:
  ops: {type: slak, url: "https://hooks.test/x"}
  pd: {type: pagerduty}
  audit: {type: webhook, url: ftp://x, secret: s, colour: red}
  log: {type: log, template: "{{ event.nope.x }}"}
subscriptions:
  - name: broken-main
    handlers: [ops, logg]
    statuses: [failure]
    transitions: [broke]
  - name: broken-main
    handlers: [log]
    events: [workflow_completed]
    colours: [red]
extra: 1
"""


def test_every_mistake_in_the_file_is_reported_in_one_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, MANY_MISTAKES)
    problems = info.value.details["problems"]
    assert str(info.value) == "\n".join(problems)
    where = [p.removeprefix(f"routes file {tmp_path / 'routes.yaml'}, ") for p in problems]
    expected = [
        "line 15: top level: unknown key 'extra'",
        "line 2: handler 'ops', key 'type': unknown type 'slak'",
        "line 3: handler 'pd', key 'routing_key': missing required key for type pagerduty",
        "line 4: handler 'audit', key 'url': expected an http:// or https:// URL",
        "line 4: handler 'audit', key 'colour': unknown key for type webhook",
        "line 5: handler 'log', key 'template': fails on the sample",
        "line 8: subscription 'broken-main', key 'handlers': unknown handler 'logg'; did you mean 'log'?",
        "line 9: subscription 'broken-main', key 'statuses': 'failure' can never match",
        "line 10: subscription 'broken-main', key 'transitions': 'broke' can never match",
        "line 13: subscription 'broken-main', key 'events': 'workflow_completed' can never match",
        "line 14: subscription 'broken-main', key 'colours': unknown match key",
    ]
    assert len(where) == len(expected), problems
    for got, want in zip(where, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_a_subscription_naming_a_handler_with_mistakes_is_not_also_an_unknown_handler(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, "handlers:\n  s: {type: slack}\nsubscriptions:\n  - name: a\n    handlers: [s]\n")
    assert info.value.details["problems"] == [
        f"routes file {tmp_path / 'routes.yaml'}, line 2: handler 's', key 'url': missing required key for type slack"
    ]


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_routes(tmp_path / "nope.yaml", {})


def test_a_file_read_to_replace_routes_in_use_must_say_subscriptions(tmp_path: Path) -> None:
    """A file cut short by an interrupted write loses its tail; swapped in, it would route nothing."""
    cut = write(tmp_path, "handlers:\n  audit: {type: log}\n")
    assert load_routes(cut, {}).subscriptions == []  # at start, handlers alone are a file (alerts only, say)
    with pytest.raises(ConfigurationError, match=r"line 1: top level: missing key 'subscriptions' \(a file cut short"):
        load_routes(cut, {}, reloading=True)
    (tmp_path / "none.yaml").write_text("handlers:\n  audit: {type: log}\nsubscriptions: []\n")
    assert load_routes(tmp_path / "none.yaml", {}, reloading=True).subscriptions == []


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("statuses", "failure", "did you mean 'failed'?"),
        ("transitions", "broke", "did you mean 'broken'?"),
        ("events", "workflow_completed", "did you mean 'workflow-completed'?"),
        ("events", "aproval-pending", "did you mean 'approval-pending'?"),
        ("statuses", "/fail(ure)?s/", "can never match"),
    ],
)
def test_a_value_that_can_never_match_is_an_error_with_a_suggestion(
    tmp_path: Path, key: str, value: str, hint: str
) -> None:
    """A typo here would silence the subscription for good: the file is refused instead."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"handlers:\n  ops: {{type: log}}\nsubscriptions:\n  - name: s\n    handlers: [ops]\n    {key}: ['{value}']\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_routes(path, {})
    message = str(caught.value)
    assert f"subscription 's', key '{key}'" in message and "line 6" in message and hint in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("statuses", "failed"), ("statuses", "*fail*"), ("transitions", "/fixed|broken/"), ("events", "job-*")],
)
def test_known_values_globs_and_regexes_that_can_match_load(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"handlers:\n  ops: {{type: log}}\nsubscriptions:\n  - name: s\n    handlers: [ops]\n    {key}: ['{value}']\n"
    )
    assert load_routes(path, {}).subscriptions[0].match[key][0].source == value


def test_placeholders_give_unset_variables_a_dummy_of_the_right_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        handlers:
          s: {type: slack, url: "${SLACK_HOOK}"}
          p: {type: pagerduty, routing_key: "${PD_KEY}", url: "https://${PD_HOST}/v2/enqueue"}
          w: {type: webhook, url: "${SET_URL}", secret: "${HOOK_SECRET}"}
          d: {type: discord, url: "${DISCORD:-https://discord.test/x}"}
        """,
    )
    loaded = load_routes(path, {"SET_URL": "https://real.test/hook"}, placeholders=True)
    options = {name: h.options for name, h in loaded.handlers.items()}
    assert options["s"]["url"] == "https://slack-hook.placeholder.invalid/"
    assert options["p"]["routing_key"] == "0123456789abcdef0123456789abcdef"
    assert options["p"]["url"] == "https://pd-host/v2/enqueue"
    assert options["w"] == {"url": "https://real.test/hook", "secret": "placeholder-hook-secret"}
    assert options["d"]["url"] == "https://discord.test/x"
    assert loaded.placeholders == ("SLACK_HOOK", "PD_KEY", "PD_HOST", "HOOK_SECRET")
    with pytest.raises(ConfigurationError, match="SLACK_HOOK is not set"):
        load_routes(path, {"SET_URL": "https://real.test/hook"})


def test_placeholders_still_report_every_other_mistake(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_routes(
            write(tmp_path, "handlers:\n  s: {type: slack, url: '${HOOK}', colour: red}\n"), {}, placeholders=True
        )
    [problem] = info.value.details["problems"]
    assert "key 'colour': unknown key" in problem


PEOPLE = "handlers:\n  l: {type: log}\npeople:\n"


def test_people_map_emails_and_logins_to_chat_ids(tmp_path: Path) -> None:
    ada = '  "Ada@Example.com": {slack: U0ADA, discord: "123456789012345678", name: Ada}\n'
    text = PEOPLE + ada + "  grace-gh: {teams: g@contoso.com}\n"
    loaded = routes(tmp_path, text)
    assert loaded.people.entries["ada@example.com"].ids == {"slack": "U0ADA", "discord": "123456789012345678"}
    assert loaded.people.entries["grace-gh"].ids == {"teams": "g@contoso.com"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [("  ada: {slack: u0ada}\n", "people 'ada', key 'slack': 'u0ada' is not a Slack member id"),
     ("  ada: {discord: ada}\n", "people 'ada', key 'discord': 'ada' is not a Discord user id"),
     ("  ada: {slak: U0ADA}\n", "people 'ada', key 'slak': unknown key (expected slack, discord, teams, name)"),
     ("  ada: {name: Ada}\n", "people 'ada': names no chat identity"),
     ("  ada: U0ADA\n", "people 'ada': expected a mapping")],
)  # fmt: skip
def test_a_bad_person_is_a_configuration_error_with_its_line(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, PEOPLE + entry)
    assert f"line 4: {message}" in info.value.message


def test_subscription_options_mentions_and_notify(tmp_path: Path) -> None:
    text = ("handlers:\n  l: {type: slack_app, token: xoxb-0000-test, channel: '#ci'}\n  m: {type: log}\n"
            "subscriptions:\n"
            "  - {name: quiet, handlers: [l], mentions: false, notify: committer, job_replies: true}\n"
            "  - {name: loud, handlers: [l, m]}\n")  # fmt: skip
    loaded = routes(tmp_path, text)
    assert (loaded.mentions_on(event(), "l"), loaded.mentions_on(event(), "m")) == (False, True)
    assert (loaded.notifies(event(), "l"), loaded.notifies(event(), "m")) == ({"committer"}, frozenset())
    assert (loaded.job_replies(event(), "l"), loaded.job_replies(event(), "m")) == (True, False)


def test_notify_and_job_replies_on_handlers_that_cannot_are_refused_naming_those_that_can(tmp_path: Path) -> None:
    text = ("handlers:\n  l: {type: log}\n  t: {type: teams, url: 'https://example.invalid/teams'}\n"
            "  a: {type: slack_app, token: xoxb-0000-test, channel: '#ci'}\nsubscriptions:\n"
            "  - {name: nowhere, handlers: [l, t], notify: committer, job_replies: true}\n"
            "  - {name: somewhere, handlers: [l, a], notify: committer, job_replies: true}\n")  # fmt: skip
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, text)
    assert info.value.message.splitlines() == [
        f"routes file {tmp_path / 'routes.yaml'}, line 6: subscription 'nowhere', key 'notify': does nothing here: "
        "none of its handlers can send direct messages (l (log), t (teams)); the types that can: slack_app",
        f"routes file {tmp_path / 'routes.yaml'}, line 6: subscription 'nowhere', key 'job_replies': does nothing "
        "here: none of its handlers can reply in threads (l (log), t (teams)); the types that can: slack_app",
    ]  # 'somewhere' has a handler that can: its log handler is simply not asked


@pytest.mark.parametrize(
    ("option", "message"),
    [("mentions: maybe", "'maybe' is not one of true, false"),
     ("notify: comitter", "'comitter' is not one of committer, committer_by_email; did you mean 'committer'?")],
)  # fmt: skip
def test_a_bad_subscription_option_is_refused(tmp_path: Path, option: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        routes(tmp_path, f"handlers:\n  l: {{type: log}}\nsubscriptions:\n  - {{name: s, handlers: [l], {option}}}\n")


def test_redact_patterns_are_read_for_the_log_tails(tmp_path: Path) -> None:
    loaded = routes(tmp_path, "handlers:\n  l: {type: log}\nredact: ['INTERNAL_KEY=(\\S+)', 'corp-[0-9]{6}']\n")
    assert loaded.redact == ("INTERNAL_KEY=(\\S+)", "corp-[0-9]{6}")


@pytest.mark.parametrize(
    ("value", "message"),
    [("'(unclosed'", "line 4: redact: invalid regex '(unclosed'"), ("'a*'", "line 4: redact: 'a*' matches the empty")],
)
def test_a_bad_redact_pattern_is_named_with_its_line(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, f"handlers:\n  l: {{type: log}}\nredact:\n  - {value}\n")
    assert message in str(info.value)


def test_skip_known_flaky_is_a_checked_subscription_option(tmp_path: Path) -> None:
    text = "handlers:\n  l: {type: log}\nsubscriptions:\n  - {name: s, handlers: [l], skip_known_flaky: true}\n"
    assert routes(tmp_path, text).subscriptions[0].skip_known_flaky is True
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, text.replace("skip_known_flaky: true", "skip_known_flaky: sometimes"))
    assert "line 4: subscription 's', key 'skip_known_flaky': 'sometimes' is not one of true, false" in str(info.value)


def test_log_tail_is_a_checked_key_of_every_handler(tmp_path: Path) -> None:
    text = "handlers:\n  l: {type: log, log_tail: false}\n  p: {type: pagerduty, routing_key: k, log_tail: 'true'}\n"
    assert routes(tmp_path, text).handlers["l"].options["log_tail"] == "false"
    with pytest.raises(ConfigurationError) as info:
        routes(tmp_path, "handlers:\n  l: {type: log, log_tail: never}\n")
    assert "line 2: handler 'l', key 'log_tail': 'never' is not one of true, false" in str(info.value)


@pytest.mark.parametrize(
    ("handler", "key"),
    [("{type: slack, url: 'http://hooks.example.com/services/T0/B0/x'}", "url"),
     ("{type: webhook, url: 'http://10.0.0.5/hook', secret: s3cr3t-signing-key}", "url"),
     ("{type: slack_app, token: xoxb-1, channel: '#ci', api_url: 'http://slack.example.com/api/'}", "api_url")],
)  # fmt: skip
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(tmp_path: Path, handler: str, key: str) -> None:
    """A bot token or a signed payload must not cross the network in clear (issue 23 item 6)."""
    text = f"handlers:\n  h: {handler}\nsubscriptions:\n  - {{name: all, handlers: [h]}}\n"
    with pytest.raises(
        ConfigurationError, match=rf"handler 'h', key '{key}'.*plain http://.*allow_insecure_http: true"
    ):
        routes(tmp_path, text)
    insecure = handler.replace("{type:", "{allow_insecure_http: true, type:")
    loaded = routes(tmp_path, f"handlers:\n  h: {insecure}\nsubscriptions:\n  - {{name: all, handlers: [h]}}\n")
    assert "allow_insecure_http" not in loaded.handlers["h"].options


def test_plain_http_on_loopback_is_accepted(tmp_path: Path) -> None:
    handler = "{type: slack, url: 'http://127.0.0.1:9/hook'}"
    text = f"handlers:\n  h: {handler}\nsubscriptions:\n  - {{name: all, handlers: [h]}}\n"
    assert routes(tmp_path, text).handlers["h"].options["url"] == "http://127.0.0.1:9/hook"
