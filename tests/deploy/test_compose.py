"""compose.yaml: valid against the compose specification's JSON schema (check-jsonschema ships it),
and consistent with the settings the code reads, so the single-host stack cannot drift from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from config.settings import VARIABLES, Settings
from tests.conftest import RedisServer
from workers.durability import read_durability

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "compose.yaml"
SETTINGS = {v.name: v for v in VARIABLES}
HEALTHCHECK_IN_IMAGE = "/opt/circleci-events/healthcheck.py"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def env_example() -> dict[str, str]:
    """The lines of .env.example, commented-out ones included (they are there to be filled in)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(m.groups() for line in lines if (m := re.fullmatch(r"#? ?([A-Z][A-Z0-9_]+)=(.*)", line)))


def target(volume: str) -> str:
    """Where a short-syntax volume (`source:target[:ro]`, the source may hold `${VAR:-x}`) is mounted."""
    return volume.removesuffix(":ro").removesuffix(":rw").rsplit(":", 1)[1]


def seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration).groups()  # type: ignore[union-attr]
    return float(value) * {"ms": 0.001, "s": 1, "m": 60}[unit]


def test_compose_file_follows_the_compose_specification() -> None:
    done = validate(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periode:"))
    done = validate(broken)
    assert done.returncode == 1 and "stop_grace_periode" in done.stdout


def test_redis_keeps_an_append_only_file_synced_every_second_and_never_evicts(services: dict[str, Any]) -> None:
    redis = services["redis"]
    command = " ".join(redis["command"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command
    assert [target(v) for v in redis["volumes"]] == ["/data"]
    assert redis["volumes"][0].split(":")[0] in yaml.safe_load(COMPOSE.read_text())["volumes"]


def test_every_service_has_a_healthcheck_on_its_own_endpoint(services: dict[str, Any]) -> None:
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("web", "worker"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", HEALTHCHECK_IN_IMAGE]
    # the script probes PORT (web) or WORKER_HTTP_PORT (worker): both set, and the web's published
    assert services["web"]["ports"] == ["${WEB_PUBLISHED_PORT:-8000}:" + services["web"]["environment"]["PORT"]]
    assert services["worker"]["environment"]["WORKER_HTTP_PORT"].isdigit()
    assert services["web"]["command"] == ["web"] and services["worker"]["command"] == ["worker"]


def test_two_workers_each_given_more_than_their_shutdown_grace(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    grace = Settings().worker_shutdown_grace_seconds
    assert "WORKER_SHUTDOWN_GRACE_SECONDS" not in worker["environment"]
    assert seconds(worker["stop_grace_period"]) >= grace + 5


def test_web_and_worker_read_the_mounted_routes_file_and_the_compose_redis(services: dict[str, Any]) -> None:
    for name in ("web", "worker"):
        service = services[name]
        env = service["environment"]
        assert [target(v) for v in service["volumes"]] == [env["ROUTES_FILE"]]
        assert service["volumes"][0].endswith(":ro")
        assert env["REDIS_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}@redis:6379/0"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert set(env) <= set(SETTINGS), set(env) - set(SETTINGS)


def test_web_and_worker_run_read_only_with_only_tmp_writable(services: dict[str, Any]) -> None:
    for name in ("web", "worker"):
        service = services[name]
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]


def test_secrets_come_from_env_and_env_example_lists_every_secret_setting(services: dict[str, Any]) -> None:
    assert services["web"]["env_file"] == ".env" == services["worker"]["env_file"]
    example = env_example()
    secrets = {v.name for v in VARIABLES if v.kind in ("secret", "secrets")}
    assert secrets <= set(example), secrets - set(example)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_env_example_names_only_settings_routes_variables_and_compose_variables() -> None:
    example = env_example()
    routes = set(re.findall(r"\$\{(\w+)", (ROOT / "config" / "routes.example.yaml").read_text()))
    compose = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert set(example) <= set(SETTINGS) | routes | compose, set(example) - set(SETTINGS) - routes - compose
    assert compose <= set(example), compose - set(example)
    for name, value in example.items():  # the example's values are each setting's accepted values
        if name in SETTINGS and value:
            SETTINGS[name].read(value)


@pytest.mark.integration
def test_a_redis_started_as_compose_starts_it_passes_the_durability_check(tmp_path: Path) -> None:
    """The compose Redis's options, on a local redis-server: AOF on, no eviction, no warning."""
    command = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]["command"]
    options = [re.sub(r"\$\{\w+:-(.*)\}", r"\1", option) for option in command[1:]]
    password = options.index("--requirepass")  # set by RedisServer's own password= (it waits for the server with it)
    assert options.pop(password + 1).startswith("${REDIS_PASSWORD:?") and options.pop(password)
    server = RedisServer(tmp_path, args=tuple(options), password="compose-redis-password").start()
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()  # requirepass: no password, no commands (issue 23 item 8)
        client = redis.Redis(port=server.port, password="compose-redis-password")
        assert read_durability(client).check(allow_eviction=False) == []
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
    finally:
        server.stop()
