"""The docs cannot drift: README.md and docs/*.md, checked against the code they describe.

The marker. A fenced shell block (```sh, ```bash, ```console, ```shell) whose info string also says
`example` (```sh example) holds commands the tests do not run: each needs something of yours that a
test machine lacks (a Slack, CircleCI or Heroku account, a Docker daemon, a cluster, a tunnel, your
own routes file, the package index) or runs for minutes (the benchmarks). Every command of every
other shell block is either run here for real (RUN: `--help`, `check-config`, the delivery signed
by hand) or listed in COVERED with the test that runs it; a new command that is neither fails
test_every_shell_command_is_run_by_a_test_or_marked_as_an_example until it is one or the other.

In every block, marked or not, and in inline code:
- each `circleci-events` command and option exists in the click command tree (service.cli:main),
  whether written as a shell command or as the docs' usage syntax (`events list [--status S]`,
  `dead-letters list \\| show ID`); a lone `--option` in prose exists on some command (or on
  `python -m bench`, or is another tool's, in FOREIGN_OPTIONS);
- each `make` target exists in the Makefile, each `python -m` module in the clone;
- each environment variable (a NAME_WITH_UNDERSCORES in code, NAME= in a command, ${NAME}) is a
  setting of config/settings.py, a retired one, a standard one (STANDARD_VARIABLES), a Makefile or
  compose.yaml variable, or a routes-file variable of the shipped examples (config/*.yaml).

And links between the pages resolve, the README's routes file is the one config/ ships, the
Heroku section's settings connect to a self-signed Heroku Redis, and the README's first Slack
message is sent for real (the chat sink standing in for Slack).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
import pytest

from config.errors import ConfigurationError
from config.settings import RETIRED, VARIABLES, Settings
from service.cli import main
from tests.e2e.processes import Service, cli

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "console", "shell"}
MARKER = "example"
ENTRY_POINT = Path(sys.executable).with_name("circleci-events")
DEV_SECRET = "local-development-secret"  # the Makefile's, which the delivery signed by hand uses

# Commands of unmarked blocks that another test runs (exactly as written, comments stripped), and
# where: (file, text that file must hold). `make run` is `circleci-events run` with the Makefile's
# defaults (test_make_run_is_the_run_command_with_the_development_secret checks that).
INSTANCE_TEST = ("tests/service/cli/test_instance.py", "def test_commands_in_a_fresh_shell_find_the_running_run(")
WHEEL_TEST = ("tests/e2e/test_wheel.py", "def test_the_container_installs_the_lock_with_hashes_then_the_wheel_alone(")
CI = (".ci/run", "\nmake test")
COVERED: dict[str, tuple[str, str]] = {
    "make run": INSTANCE_TEST,
    "make test": CI,
    "make .venv/.installed": (".ci/run", "\nmake lint"),  # lint's prerequisite is the install
    ".venv/bin/circleci-events send-test-event --status failed": INSTANCE_TEST,
    ".venv/bin/circleci-events events list": INSTANCE_TEST,
    ".venv/bin/circleci-events demo": (
        "tests/service/cli/test_demo.py",
        "def test_demo_prints_the_notifications_and_the_thread_and_stops_every_process(",
    ),
    "python -m venv /opt/circleci-events && . /opt/circleci-events/bin/activate": WHEEL_TEST,
    "python -m pip install --only-binary=:all: --require-hashes -r requirements.lock": WHEEL_TEST,
    "python -m pip install --no-deps .": WHEEL_TEST,
}
HAND_SIGNED = ("tests/test_docs.py", "def test_the_delivery_signed_by_hand_is_accepted_once(")
# Options of other tools that prose names on their own (docker run's, in docs/deployment.md).
FOREIGN_OPTIONS = {"--read-only", "--stop-timeout"}
STANDARD_VARIABLES = {"PATH", "HOME", "XDG_RUNTIME_DIR", "PYTHONDONTWRITEBYTECODE"}
NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    marked: bool
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text().splitlines()
    start, info, body, indent = 0, "", [], 0
    for n, line in enumerate(lines, start=1):
        fence = line.strip().startswith("```")
        if fence and not start:
            start, info, body = n, line.strip()[3:].strip(), []
            indent = len(line) - len(line.lstrip())  # a block inside a list item
        elif fence:
            words = info.split() or [""]
            where = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name
            yield Block(where, start, words[0], MARKER in words[1:], "\n".join(body))
            start = 0
        elif start:
            body.append(line[indent:] if not line[:indent].strip() else line.strip())
    assert not start, f"{page.name}:{start}: a fence that never closes"


def inline_code(page: Path) -> Iterator[tuple[str, str]]:
    """(where, span) of every `code span` outside fenced blocks."""
    fenced = False
    for n, line in enumerate(page.read_text().splitlines(), start=1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", line):
                yield f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name}:{n}", span


def strip_comment(line: str) -> str:
    """The line without its shell comment (a # at the start of a word, outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def logical_lines(block: Block) -> list[str]:
    """The block's commands, continuation lines joined, comments and console output left out."""
    lines, pending = [], ""
    for raw in block.text.splitlines():
        if block.lang == "console":
            if not (raw.startswith("$ ") or pending):
                continue
            raw = raw.removeprefix("$ ")
        line = pending + strip_comment(raw)
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if line.strip():
            lines.append(" ".join(line.split()))
    return lines


def simple_commands(line: str) -> list[list[str]]:
    """The words of each command of a shell line (split on && || ; | &), `export` and VAR= kept."""
    commands, quote, current, depth = [], "", "", 0
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "()":
            depth += 1 if char == "(" else -1  # inside $( ), a pipe is the subshell's
        elif char in ";|&" and not depth:
            commands.append(current)
            current = ""
            i += 1 + (line[i + 1 : i + 2] in ("&", "|"))
            continue
        current += char
        i += 1
    commands.append(current)
    words = []
    for command in commands:
        try:
            split = shlex.split(command)
        except ValueError:
            split = command.split()
        if split:
            words.append(split)
    return words


def shell_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang in SHELLS]


def all_spans() -> list[tuple[str, str]]:
    return [span for page in PAGES for span in inline_code(page)]


# -- the click tree ---------------------------------------------------------------------------


def options_of(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def every_option(command: click.Command = main) -> set[str]:
    names = options_of(command)
    for sub in subcommands(command).values() if isinstance(command, click.Group) else ():
        names |= every_option(sub)
    return names


def check_usage(words: list[str], *, written: str) -> list[str]:
    """Problems with one use of circleci-events: its words after the program name, pieces of the
    docs' `a \\| b` usage syntax separated by "|" (a piece continues the group the previous one named)."""
    problems: list[str] = []
    pieces: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            pieces.append([])
        else:
            pieces[-1].append(word)
    node: click.Command = main
    parent: click.Group = main
    names: dict[click.Command, str] = {main: "circleci-events"}
    for piece in filter(None, pieces):
        cur: click.Command = parent if piece[0] in subcommands(parent) else node
        i = 0
        while isinstance(cur, click.Group) and i < len(piece) and piece[i] in subcommands(cur):
            parent, cur = cur, subcommands(cur)[piece[i]]
            names[cur] = f"{names[parent]} {piece[i]}"
            i += 1
        if isinstance(cur, click.Group) and i < len(piece) and not piece[i].startswith("-"):
            problems.append(
                f"{written}: `{names[cur]}` has no command {piece[i]!r} (it has {', '.join(subcommands(cur))})"
            )
            continue
        known = options_of(cur)
        for word in piece[i:]:
            if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", word) and word.split("=")[0] not in known:
                problems.append(f"{written}: `{names[cur]}` has no option {word.split('=')[0]}")
        node = cur
    return problems


def subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's commands by name, as the command line finds them (the top level loads them lazily)."""
    ctx = click.Context(group)
    return {name: command for name in group.list_commands(ctx) if (command := group.get_command(ctx, name))}


def usage_words(span: str) -> list[str] | None:
    """The words of a usage span (`events list [--status S]`, `circleci-events run`), None for
    code that is not one."""
    words = re.sub(r"[\[\]()]", " ", span.replace("\\|", " | ").replace("|", " | ")).split()
    if words and words[0] == "circleci-events":
        return words[1:]
    if (
        len(words) >= 2
        and words[0] in subcommands(main)
        and re.fullmatch(r"[a-z-]+|--?[a-z][\w-]*(=.*)?|[A-Z][\w.]*", words[1])
    ):
        return words
    return None


def circleci_events_uses() -> Iterator[tuple[str, list[str]]]:
    """(where, words after the program) of every use of circleci-events in the docs."""
    for block in shell_blocks():
        for line in logical_lines(block):
            for words in simple_commands(line):
                for i, word in enumerate(words):
                    # the program, or what `docker compose exec SERVICE` runs
                    if Path(word).name == "circleci-events" and (i == 0 or words[i - 2 : i - 1] == ["exec"]):
                        yield f"{block.where}: {line}", words[i + 1 :]
                        break
    for where, span in all_spans():
        words = usage_words(span)
        if words is not None:
            yield f"{where}: `{span}`", words


# -- what the tests run -----------------------------------------------------------------------


def runs_here(line: str) -> bool:
    words = [w for command in simple_commands(line) for w in command]
    program = [Path(w).name for w in words[:1]]
    return program == ["circleci-events"] and ("--help" in words or words[1:2] == ["check-config"])


def covered_by(line: str) -> tuple[str, str] | None:
    if line in COVERED:
        return COVERED[line]
    if line.startswith(("body=$(sed ", "sig=$(printf ", "curl -i localhost:8000/webhooks/circleci ")):
        return HAND_SIGNED
    return None


def test_every_shell_command_is_run_by_a_test_or_marked_as_an_example() -> None:
    unrun = [
        f"{block.where}: {line}"
        for block in shell_blocks()
        if not block.marked
        for line in logical_lines(block)
        if not runs_here(line) and covered_by(line) is None
    ]
    assert not unrun, (
        "commands that no test runs: add them to RUN or COVERED in tests/test_docs.py, or mark their block"
        " ```sh example if they need outside accounts:\n" + "\n".join(unrun)
    )


def test_the_tests_that_run_the_documented_commands_exist() -> None:
    for path, needle in {*COVERED.values(), HAND_SIGNED}:
        assert needle in (ROOT / path).read_text(), f"{path} no longer holds {needle!r}"


@pytest.mark.e2e
def test_the_cheap_documented_commands_succeed_when_run() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE", "SLACK"))}
    lines = {line for b in shell_blocks() if not b.marked for line in logical_lines(b) if runs_here(line)}
    assert lines, "the docs show no command this test runs: check the parser"
    for line in sorted(lines):
        words = shlex.split(line)
        command = [str(ENTRY_POINT)] if ENTRY_POINT.exists() else [sys.executable, "-m", "service.cli"]
        done = subprocess.run([*command, *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stdout + done.stderr


def test_make_run_is_the_run_command_with_the_development_secret() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/circleci-events run" in makefile
    assert f"DEV_SECRET := {DEV_SECRET}" in makefile


def hand_signed_block() -> Block:
    found = [b for b in shell_blocks() if "openssl dgst" in b.text]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.e2e
@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl")
def test_the_delivery_signed_by_hand_is_accepted_once(redis_url: str, tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    env = {"REDIS_URL": redis_url, "CIRCLECI_WEBHOOK_SECRETS": DEV_SECRET, "HOST": "127.0.0.1", "PORT": str(port)}
    web = Service(cli("web"), env=env, log_path=tmp_path / "web.log").start()
    try:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        script = hand_signed_block().text.replace("localhost:8000", f"127.0.0.1:{port}")
        answers = [
            subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
            for _ in range(2)
        ]
    finally:
        web.stop()
    assert answers[0].startswith("HTTP/1.1 202") and '"status":"queued"' in answers[0].replace(" ", ""), answers[0]
    assert answers[1].startswith("HTTP/1.1 200") and '"status":"duplicate"' in answers[1].replace(" ", ""), answers[1]


# -- names the docs use -----------------------------------------------------------------------


def test_every_circleci_events_command_and_option_named_in_the_docs_exists() -> None:
    uses = list(circleci_events_uses())
    assert len(uses) > 50, "the docs name few commands: check the parser"
    problems = [problem for where, words in uses for problem in check_usage(words, written=where)]
    assert not problems, "\n".join(problems)


def bench_options() -> set[str]:
    from bench.__main__ import parse

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit):
        parse(["--help"])
    return set(re.findall(r"--[a-z][\w-]*", shown.getvalue()))


def test_every_option_named_on_its_own_exists_somewhere() -> None:
    known = every_option() | bench_options() | FOREIGN_OPTIONS
    lone = {(where, span.split()[0]) for where, span in all_spans() if re.fullmatch(r"--[a-z][\w-]*( .*)?", span)}
    unknown = sorted(f"{where}: {option}" for where, option in lone if option not in known)
    assert not unknown, "options no command has:\n" + "\n".join(unknown)


def test_every_python_module_and_its_options_in_the_docs_exist() -> None:
    bench = bench_options()
    for block in shell_blocks():
        for line in logical_lines(block):
            for words in simple_commands(line):
                if words[:2] != ["python", "-m"] and words[1:3] != ["-m", words[2] if len(words) > 2 else ""]:
                    continue
                module = words[words.index("-m") + 1]
                if module in ("venv", "pip"):
                    continue
                path = ROOT / module.replace(".", "/")
                assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), f"{block.where}: {line}"
                if module == "bench":
                    unknown = [w for w in words if w.startswith("--") and w not in bench]
                    assert not unknown, f"{block.where}: python -m bench has no {unknown}"


def makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w.-]*):", makefile, re.M))
    return targets | {".venv/.installed"}  # $(STAMP)


def test_every_make_target_in_the_docs_exists() -> None:
    targets, uses = makefile_targets(), []
    for block in shell_blocks():
        for line in logical_lines(block):
            uses += [(block.where, w) for words in simple_commands(line) if words[0] == "make" for w in words[1:]]
    for where, span in all_spans():
        if span.startswith("make "):
            uses += [(where, w) for w in span.split()[1:]]
    targets_used = [(where, w) for where, w in uses if not w.startswith("-") and "=" not in w]
    assert targets_used, "the docs name no make target: check the parser"
    unknown = [f"{where}: make {w}" for where, w in targets_used if w not in targets]
    assert not unknown, "\n".join(unknown)


def known_variables() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    shipped = "".join(p.read_text() for p in (ROOT / "config").glob("*.yaml")) + (ROOT / "compose.yaml").read_text()
    return (
        {v.name for v in VARIABLES}
        | set(RETIRED)
        | STANDARD_VARIABLES
        | set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[:?]?=", makefile, re.M))
        | set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", makefile))
        | set(re.findall(r"\$\{(" + NAME + r")", shipped))
    )


def documented_variables() -> Iterator[tuple[str, str]]:
    for page in PAGES:
        for block in blocks(page):
            for name in re.findall(r"\$\{?(" + NAME + r")", block.text):
                yield block.where, name
            for name in re.findall(r"(?:^|[\s'\"])(" + NAME + r")=", block.text, re.M):
                yield block.where, name
            if block.lang in SHELLS:
                for line in logical_lines(block):
                    for words in simple_commands(line):
                        yield from ((block.where, w.split("=")[0]) for w in words if re.match(r"[A-Z]\w*=", w))
    for where, span in all_spans():
        if usage_words(span) is not None:
            continue  # a command's usage: its capitals are arguments (PIPELINE_ID), not variables
        for name in re.findall(r"(?<![\w.-])\$?\{?(" + NAME + r")\b(?![.\w-])", span):
            yield where, name


def test_every_environment_variable_in_the_docs_is_a_setting_or_a_known_one() -> None:
    known, named = known_variables(), list(documented_variables())
    assert len({name for _, name in named}) > 40, "the docs name few variables: check the parser"
    unknown = sorted({f"{where}: {name}" for where, name in named if name not in known})
    assert not unknown, "variables config/settings.py does not read:\n" + "\n".join(unknown)


# -- the Heroku section works as written ------------------------------------------------------


def test_the_heroku_section_sets_what_a_self_signed_heroku_redis_needs() -> None:
    (block,) = [b for b in shell_blocks() if "heroku addons:create heroku-redis" in b.text]
    config_set = [
        words
        for line in logical_lines(block)
        for words in simple_commands(line)
        if words[:2] == ["heroku", "config:set"]
    ]
    assert config_set, "the Heroku section sets no configuration"
    environ = dict(w.split("=", 1) for words in config_set for w in words[2:])
    environ = {name: ("x" * 32 if value in ("...", "…") else value) for name, value in environ.items()}
    heroku_url = "rediss://:p4ssw0rd@ec2-3-1-2-3.compute-1.amazonaws.com:6380"  # what the add-on sets
    settings = Settings.from_environ({**environ, "REDIS_URL": heroku_url})
    # Heroku publishes no CA for its self-signed certificate: only an unverified mode can connect
    # (tests/e2e/test_redis_production.py runs `none` against a real self-signed TLS redis-server)
    assert settings.redis_tls_verify == "none", "a self-signed Heroku Redis needs REDIS_TLS_VERIFY=none"
    with pytest.raises(ConfigurationError, match="REDIS_TLS_VERIFY"):
        Settings.from_environ({**environ, "REDIS_URL": heroku_url + "?ssl_cert_reqs=none"})


# -- links between the pages ------------------------------------------------------------------


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces as hyphens."""
    headings = [b for b in page.read_text().split("\n") if re.match(r"#{1,6} ", b)]
    fenced = {b.text for b in blocks(page)}
    return {
        re.sub(r"[^\w\- ]", "", h.lstrip("#").strip().lower()).replace(" ", "-")
        for h in headings
        if not any(h in text.split("\n") for text in fenced)  # a shell comment is no heading
    }


def prose(page: Path) -> str:
    """The page without its fenced blocks and code spans."""
    kept, fenced = [], False
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(re.sub(r"`[^`\n]+`", "", line))
    return "\n".join(kept)


def test_every_link_to_a_file_or_a_heading_of_the_docs_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# -- the README's first Slack message, with the chat sink standing in for Slack ---------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_the_first_routes_file_posts_a_failure_on_main_and_nothing_else(tmp_path: Path) -> None:
    """README's steps 2 and 3 (`make run` with config/routes.main-failures.yaml, then
    send-test-event), with the sink at SLACK_WEBHOOK_URL instead of Slack's incoming webhook."""
    from tests.conftest import free_port

    sink_port, web_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE", "SLACK"))}
    shell = {**base, "LOG_FORMAT": "json"}
    sink = Service(cli("sink", "--port", str(sink_port)), env={}, log_path=tmp_path / "sink.log").start()
    run = Service(
        cli("run"),
        env={
            "ROUTES_FILE": "config/routes.main-failures.yaml",
            "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{sink_port}/services/T0/B0/secret",
            "CIRCLECI_WEBHOOK_SECRETS": DEV_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(web_port),
            "WORKERS": "1",
            "LOG_FORMAT": "json",
        },
        log_path=tmp_path / "run.log",
    )
    run.env = {**base, **run.env}  # without the session's CIRCLE*, REDIS_URL or ROUTES_FILE
    run.start()
    try:
        sink.wait_http(f"http://127.0.0.1:{sink_port}/_sink/requests")
        run.wait_http(f"http://127.0.0.1:{web_port}/healthz", timeout=60)
        sent = [run_cli("send-test-event", "--status", status, "--json", env=shell) for status in ("success", "failed")]
        assert [s.returncode for s in sent] == [0, 0], [s.stderr for s in sent]
        ids = [json.loads(s.stdout)["sent_event_id"] for s in sent]
        deadline = time.monotonic() + 120  # generous: the machine may be busy
        while not (posted := httpx.get(f"http://127.0.0.1:{sink_port}/_sink/requests").json())["total"]:
            assert time.monotonic() < deadline, run.output()[-3000:]
            time.sleep(0.2)
        # both events stored, so the success was routed too (to nothing)
        while not all(i in (listed := run_cli("events", "list", env=shell)).stdout for i in ids):
            assert time.monotonic() < deadline, (listed.stdout, run.output()[-3000:])
            time.sleep(0.2)
        posted = httpx.get(f"http://127.0.0.1:{sink_port}/_sink/requests").json()
    finally:
        run.stop(timeout=60)
        sink.stop()
    [message] = posted["requests"]
    assert message["path"] == "/services/T0/B0/secret" and message["status"] == 200
    assert "failed on main" in message["body"]["text"], message["body"]


def test_the_routes_file_the_readme_shows_is_the_one_it_ships() -> None:
    import yaml

    shown = [b for b in blocks(ROOT / "README.md") if b.lang == "yaml" and "main-failures" in b.text]
    assert len(shown) == 1, "README.md shows the first routes file once"
    shipped = (ROOT / "config" / "routes.main-failures.yaml").read_text()
    assert yaml.safe_load(shown[0].text) == yaml.safe_load(shipped)
