"""The handler registry: each platform declares what it can do, and adding one is one module plus
its registration. The toy platform below is made up here and registered here: check-config,
`people:` and preview take it without another module knowing its name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from config.errors import ConfigurationError
from service.cli import main
from tests.workers.handlers.conftest import OPTIONS, load_event
from workers.handlers import HANDLER_TYPES, Capabilities, Handler, Identity, identities, register
from workers.handlers.view import labelled
from workers.message import Message

TOY_ID = Identity("toy", re.compile(r"T-[a-z]+"), "Toy user (T- and lower-case letters)")


class ToyHandler(Handler):
    """A chat platform made up for this test: one line to a room, its people mentioned `@@id`,
    replies in a breakage's thread, direct messages (declared only)."""

    type = "toy"
    required = ("room",)
    optional: ClassVar[dict[str, str | None]] = {"template": None}
    capabilities = Capabilities(identity=TOY_ID, threads=True, direct_messages=True)
    placeholders: ClassVar[dict[str, str]] = {"room": "#placeholder-{name}"}

    def __init__(self, name: str, options: Any, context: Any = None) -> None:
        super().__init__(name, options, context)
        if not str(options["room"]).startswith("#"):
            raise ConfigurationError(f"handler {name!r}, key 'room': expected a #room")

    @staticmethod
    def mention(id: str) -> str:
        return "@@" + id

    @staticmethod
    def view(body: Any) -> list[str]:
        thread = [labelled("in thread", body["reply_to"])] if "reply_to" in body else []
        return [labelled("toy line", body["line"]), *thread]

    def render(self, event: dict[str, Any]) -> dict[str, Any]:
        who = " ".join(self.mention(m.id) for m in self.mentions(event))
        return {"room": self.options["room"], "line": f"{who} {Message.from_event(event).title}".strip()}

    def render_in_thread(self, event: dict[str, Any], thread_ts: str) -> dict[str, Any]:
        return {**self.render(event), "reply_to": thread_ts}


ROUTES = """\
handlers:
  chat: {type: toy, room: "#ci"}
  ops: {type: log}
people:
  "author@example.com": {toy: T-ada, slack: U0ADA}
subscriptions:
  - {name: all, handlers: [chat, ops]}
"""


@pytest.fixture
def toy() -> Iterator[type[Handler]]:
    register(ToyHandler)
    try:
        yield ToyHandler
    finally:
        del HANDLER_TYPES[ToyHandler.type]


def cli(tmp_path: Path, *args: str, routes: str = ROUTES) -> Result:
    """The command run in this process, where the toy is registered. It leaves this process's
    logging alone: configured at a command's level with cached loggers, it would hide the INFO lines
    that later tests capture (the supervisor's upkeep test failed after this one)."""
    path = tmp_path / "routes.yaml"
    path.write_text(routes)
    env = {"ROUTES_FILE": str(path), "REDIS_URL": "", "CIRCLE_TOKEN": ""}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("service.cli.common.configure_logging", lambda **_: None)
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def broken_event(tmp_path: Path) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(load_event()))  # broken; commit by author@example.com
    return str(path)


def test_check_config_takes_a_registered_platform_its_keys_and_its_people_ids(toy: type, tmp_path: Path) -> None:
    result = cli(tmp_path, "check-config")
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("chat ")]
    assert row.split()[:6] == ["chat", "toy", "mentions,", "threads,", "direct", "messages"]
    shown = json.loads(cli(tmp_path, "check-config", "--json").output)
    assert shown["handlers"][0] | {"line": 0} == {"name": "chat", "type": "toy", "line": 0,
        "can": ["mentions", "threads", "direct messages"], "options": {"room": "#ci"}}  # fmt: skip


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        (ROUTES.replace("toy: T-ada", "toy: ada"), "'ada' is not a Toy user (T- and lower-case letters)"),
        (ROUTES.replace("toy: T-ada", "toi: T-ada"), "unknown key (expected slack, discord, teams, toy, name)"),
        (ROUTES.replace(', room: "#ci"', ""), "handler 'chat', key 'room': missing required key for type toy"),
    ],
    ids=["wrong-id", "misspelt-key", "missing-key"],
)
def test_check_config_names_a_mistake_in_the_platforms_own_words(
    toy: type, tmp_path: Path, routes: str, problem: str
) -> None:
    result = cli(tmp_path, "check-config", routes=routes)
    assert result.exit_code == 2
    assert problem in result.output


def test_check_config_placeholders_take_the_shape_the_platform_declares(toy: type, tmp_path: Path) -> None:
    routes = ROUTES.replace('room: "#ci"', 'room: "${TOY_ROOM}"')
    assert cli(tmp_path, "check-config", routes=routes).exit_code == 2  # not set
    shown = json.loads(cli(tmp_path, "check-config", "--placeholders", "--json", routes=routes).output)
    assert shown["valid"] and shown["handlers"][0]["options"] == {"room": "#placeholder-toy-room"}


def test_preview_shows_what_the_platform_would_send_mentioning_whom_people_names(toy: type, tmp_path: Path) -> None:
    result = cli(tmp_path, "preview", broken_event(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("── chat (toy) would send ──")
    assert lines[start + 1].startswith("toy line     @@T-ada ❌ build-test-deploy failed on main")


def test_preview_renders_in_a_given_thread_on_a_platform_that_threads(toy: type, tmp_path: Path) -> None:
    result = cli(tmp_path, "preview", broken_event(tmp_path), "--thread", "T-1700", "--json")
    deliveries = {d["handler"]: d["body"] for d in json.loads(result.output)["deliveries"]}
    assert deliveries["chat"]["reply_to"] == "T-1700"
    assert "reply_to" not in deliveries["ops"]  # log does not thread: --thread changes nothing there


def test_without_its_registration_the_platform_is_unknown(tmp_path: Path) -> None:
    result = cli(tmp_path, "check-config")
    assert result.exit_code == 2
    assert "handler 'chat', key 'type': unknown type 'toy'" in result.output
    assert "people 'author@example.com', key 'toy': unknown key" in result.output


@pytest.mark.parametrize(
    ("kind", "can"),
    [
        ("slack", ["mentions"]),
        ("slack_app", ["mentions", "threads", "edits", "buttons", "direct messages"]),
        ("discord", ["mentions", "edits"]),
        ("teams", ["mentions"]),
        ("pagerduty", []),
        ("webhook", []),
        ("python", []),
        ("log", []),
    ],
)
def test_each_platform_declares_what_it_can_do(kind: str, can: list[str]) -> None:
    assert list(HANDLER_TYPES[kind].capabilities.names()) == can
    assert kind in OPTIONS


def test_people_keys_are_those_of_the_platforms_that_mention() -> None:
    assert list(identities()) == ["slack", "discord", "teams"]
    assert identities()["slack"].accepts("U0123ABCD") and not identities()["slack"].accepts("ada")


class _Threads(ToyHandler):
    type = "toy-threads"
    render_in_thread = Handler.render_in_thread


class _Buttons(ToyHandler):
    type = "toy-buttons"
    capabilities = Capabilities(buttons=True)


class _OtherSlack(ToyHandler):
    type = "toy-slack"
    capabilities = Capabilities(identity=Identity("slack", re.compile(r".+"), "anything"))


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (HANDLER_TYPES["slack"], "type 'slack' is empty or already registered"),
        (_Threads, "capabilities say threads, so it must override render_in_thread"),
        (_Buttons, "capabilities say buttons, so it must implement ButtonHost"),
        (_OtherSlack, "people: key 'slack' is already declared with another id shape"),
    ],
    ids=["taken-type", "threads-without-render", "buttons-without-host", "other-id-shape"],
)
def test_registration_refuses_a_platform_that_does_not_do_what_it_declares(cls: type[Handler], problem: str) -> None:
    before = dict(HANDLER_TYPES)
    with pytest.raises(ValueError, match=re.escape(problem)):
        register(cls)
    assert before == HANDLER_TYPES


def test_the_docs_table_of_what_each_platform_can_do_is_the_registrys() -> None:
    text = (Path(__file__).parents[3] / "docs" / "routes.md").read_text()
    table = text.split("### What each platform can do", 1)[1].split("\n\n")[2]
    rows = [[cell.strip(" `") for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    documented = {kind: (key, flags) for kind, key, *flags in rows}
    declared = {}
    for kind, cls in HANDLER_TYPES.items():
        can = cls.capabilities
        flags = [can.threads, can.edits, can.buttons, can.direct_messages]
        declared[kind] = (can.identity.key if can.identity else "no", ["yes" if f else "no" for f in flags])
    assert documented == declared
