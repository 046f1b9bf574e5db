"""No configured secret in any log line, Redis value or operator command output, whatever happens.

The whole path on real processes at LOG_LEVEL=DEBUG: web and a worker, every handler type with
secret-bearing URLs and keys, a delivery refused at once (Teams answers 400 echoing its `sig`),
one that runs out of retries (Slack answers 500 echoing its token), the others delivered. Then
every secret value is searched for in all the output, every Redis key and value, and what the
operator commands print.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from service.simulators.slack import create_slack_simulator
from service.simulators.slack_workspace import Workspace
from tests.reliability.conftest import SECRET as WEBHOOK_SECRET
from tests.reliability.conftest import TOKEN as CIRCLE_TOKEN
from tests.server import running
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SLACK_TOKEN = "xoxSlackToken0123456789abcd"
TEAMS_SIG = "TeamsSig0123456789AbCdEfGhIjKlMnOpQrStUv"
TEAMS_WORKFLOW = "0123456789abcdef0123456789abcdef"
DISCORD_TOKEN = "DiscordToken-0123456789abcdefghijklmnopqrstuvwxyz"
PD_KEY = "R0UT1NGKEY0123456789abcdef012345"
HOOK_PATH_TOKEN = "HookPathToken0123456789"
HOOK_QUERY_TOKEN = "HookQueryToken0123456789"
HOOK_SECRET = "hook-signing-s3cret#with=odd'chars"
ADMIN_TOKEN = "AdminToken-0123456789abcdefghijklmnop"
SLACK_BOT_TOKEN = "xoxb-SlackBotToken0123456789abcdef"
SECRETS = {
    "slack bot token": SLACK_BOT_TOKEN,
    "slack token": SLACK_TOKEN,
    "teams sig": TEAMS_SIG,
    "teams workflow id": TEAMS_WORKFLOW,
    "discord token": DISCORD_TOKEN,
    "pagerduty routing key": PD_KEY,
    "webhook path token": HOOK_PATH_TOKEN,
    "webhook query token": HOOK_QUERY_TOKEN,
    "webhook signing secret": HOOK_SECRET,
    "CIRCLE_TOKEN": CIRCLE_TOKEN,
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "CIRCLECI_WEBHOOK_SECRETS": WEBHOOK_SECRET,
}
TEAMS_QUERY = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
ROUTES = f"""\
handlers:
  slack:
    type: slack
    url: "${{SINK_URL}}/slack/services/T0AAA1111/B0BBB2222/{SLACK_TOKEN}"
  teams:
    type: teams
    url: "${{SINK_URL}}/teams/workflows/{TEAMS_WORKFLOW}/triggers/manual/paths/invoke?{TEAMS_QUERY}"
  discord:
    type: discord
    url: "${{SINK_URL}}/discord/api/webhooks/123456789012345678/{DISCORD_TOKEN}"
  pager:
    type: pagerduty
    routing_key: "{PD_KEY}"
    url: "${{SINK_URL}}/pagerduty/v2/enqueue"
  hook:
    type: webhook
    url: "${{SINK_URL}}/hooks/{HOOK_PATH_TOKEN}?token={HOOK_QUERY_TOKEN}"
    secret: "${{HOOK_SECRET}}"
  code:
    type: python
    callable: "tests.workers.handlers.callables:record"
  audit:
    type: log
  app:
    type: slack_app
    token: "{SLACK_BOT_TOKEN}"
    channel: "#ci"
    api_url: "${{SLACK_API_URL}}"
subscriptions:
  - name: everything
    handlers: [slack, teams, discord, pager, hook, code, audit, app]
"""


def redis_dump(url: str) -> str:
    """Every key and every value in Redis, as text."""
    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        parts.append(f"{key!r} {value!r}")
    client.close()
    return "\n".join(parts)


@pytest.fixture
def slack() -> Iterator[tuple[str, Workspace]]:
    """A Slack simulator that takes the slack_app handler's bot token."""
    app = create_slack_simulator(Workspace.example(SLACK_BOT_TOKEN))
    with running(app) as base:
        yield base, app.state.workspace


def test_no_secret_reaches_a_log_line_redis_or_an_operator(scenario, slack) -> None:
    system = scenario()
    system.routes.write_text(ROUTES)
    slack_api, workspace = slack
    env = {
        "SLACK_API_URL": f"{slack_api}/api/",
        "LOG_LEVEL": "DEBUG",
        "HOOK_SECRET": HOOK_SECRET,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DELIVERY_RETRY_BUDGET_SECONDS": "3",
    }
    # servers that echo the credential they were given, as real ones do in error bodies
    system.sink.add_fault(path="/teams/*", status=400, body=f"invalid signature sig={TEAMS_SIG}", times=None)
    system.sink.add_fault(path="/slack/*", status=500, body=f"no_service token {SLACK_TOKEN}", times=None)
    system.start_web(**env)
    [worker] = system.start_workers(1, **env)
    payloads = system.events(2, failed_every=1)
    assert system.post_all(payloads) == [202, 202]

    store = redis.Redis.from_url(system.redis.url)
    letters = wait_until(
        # (slack_app's two deliveries of one breakage may wait for each other past the 3 s budget too)
        lambda: (lambda ids: ids if len(ids) == 4 else None)(
            [i for i in store.zrange("cie:dead", 0, -1) if i.rsplit(b":", 1)[1] in (b"slack", b"teams")]
        ),
        "two dead letters per event (teams rejected, slack out of retries)",
        timeout=60,
    )
    assert sorted(i.rsplit(b":", 1)[1] for i in letters) == [b"slack", b"slack", b"teams", b"teams"]
    # two failures of one workflow: a trigger each, unless the later pipeline is enriched first (then the
    # earlier one is stale and sends nothing)
    wait_until(lambda: system.sink.delivered("/pagerduty/v2/enqueue"), "a pagerduty post")
    wait_until(lambda: workspace.messages, "a slack_app post")
    admin = system.http.get(system.base + "/admin/dead-letters", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 200

    commands = [
        ("dead-letters", "list"),
        ("dead-letters", "list", "--json"),
        ("dead-letters", "show", f"{payloads[0]['id']}:slack"),
        ("events", "show", payloads[0]["id"]),
        ("events", "show", payloads[0]["id"], "--json"),
        ("check-config",),
    ]
    outputs = []
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            env={**worker.env, **system.env(**env)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (args, done.stderr)
        outputs.append(done.stdout + done.stderr)
    # the server's echo reached us, redacted: proof the test exercised the excerpt path
    assert "invalid signature sig=[redacted]" in admin.text and "no_service token [redacted]" in admin.text

    places = {
        "process output": system.log_text() + "\n".join(s.output() for s in system.processes),
        "Redis": redis_dump(system.redis.url),
        "admin API": admin.text,
        "operator commands": "\n".join(outputs),
    }
    assert "notification_logged" in places["process output"]
    leaks = [
        f"{name} in {place}"
        for place, text in places.items()
        for name, value in SECRETS.items()
        if value in text or json.dumps(value)[1:-1] in text
    ]
    assert not leaks, leaks
