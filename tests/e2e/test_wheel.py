"""The built wheel, installed into a fresh virtual environment outside the clone, is the product.

The venv is installed by the Dockerfile's own two commands, read from it (the locked runtime
dependencies from the package index with `--require-hashes`, then the wheel with `--no-deps`),
so what this module runs is what the container holds: no dev extra, nothing of the clone.
Commands run from an empty folder, so nothing of the clone can be imported.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET, free_port
from tests.deploy.test_lock import read_lock
from tests.e2e.processes import Service

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
# Each variable the example routes file takes from the environment without a default.
EXAMPLE_ENV = {
    "SLACK_OPS_WEBHOOK": "https://hooks.slack.com/services/T000/B000/example",
    "TEAMS_WORKFLOW_WEBHOOK": "https://example.invalid/workflows/teams",
    "PD_ROUTING_KEY": "example-routing-key",
    "AUDIT_SECRET": "example-audit-secret",
}


def dockerfile_installs() -> list[str]:
    """The Dockerfile's `pip install` and `pip uninstall` commands, in order."""
    return re.findall(r"python -m pip (?:un)?install [^&\\\n]*[^&\\\s]", (ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding the locked dependencies and the wheel, built once for
    the session: pytest-xdist's workers share it (the first builds it under a lock, the others wait),
    as its tests use it read-only."""
    shared = tmp_path_factory.getbasetemp().parent  # the workers' common base directory
    with open(shared / "wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = shared / "wheel"
        if not (build / "built").exists():
            shutil.rmtree(build, ignore_errors=True)  # a build cut short
            build.mkdir()
            build_wheel_venv(build)
            (build / "built").touch()
    return build / "venv" / "bin"


def build_wheel_venv(build: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", str(ROOT)],
        cwd=build,
        check=True,
        capture_output=True,
    )
    shutil.copy(ROOT / "requirements.lock", build)
    subprocess.run([sys.executable, "-m", "venv", str(build / "venv")], check=True)
    path = f"{build / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    for command in dockerfile_installs():
        done = subprocess.run(
            command, shell=True, cwd=build, env={**os.environ, "PATH": path}, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that points at this checkout or its settings."""
    skipped = ("CIRCLE", "REDIS_URL", "ROUTES_FILE", "PYTHON", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(skipped)}, **extra}


def run(bin_dir: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "circleci-events"), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def python(bin_dir: Path, code: str, *, cwd: Path) -> str:
    """What the venv's Python prints for `code`, run outside the clone."""
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_container_installs_the_lock_with_hashes_then_the_wheel_alone() -> None:
    venvs_own, locked, wheel = dockerfile_installs()
    assert venvs_own == "python -m pip uninstall --quiet --yes setuptools"  # Python 3.11's venv brings one
    assert "--require-hashes -r requirements.lock" in locked and "--only-binary=:all:" in locked
    assert wheel.endswith("--no-deps dist/*.whl")


def test_the_wheel_carries_the_simulators_their_samples_and_the_routes_files(installed: Path) -> None:
    [wheel] = (installed.parents[1] / "dist").glob("circleci_events-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "service/simulators/circleci.py" in names and "service/simulators/sink.py" in names
    assert "service/simulators/samples/workflow-completed.failed.github-oauth.derived.json" in names
    assert "config/routes.yaml" in names and "config/routes.example.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]


def test_the_venv_holds_the_locked_runtime_dependencies_and_nothing_else(installed: Path, tmp_path: Path) -> None:
    listed = python(
        installed,
        "import importlib.metadata as m, json; print(json.dumps([d.name for d in m.distributions()]))",
        cwd=tmp_path,
    )
    names = {re.sub(r"[-_.]+", "-", name).lower() for name in json.loads(listed)}
    locked = set(read_lock((ROOT / "requirements.lock").read_text()))
    assert names - {"circleci-events", "pip"} == locked  # no pytest, mypy, ruff: the dev extra is not installed


def test_the_installed_package_imports_from_its_own_site_packages(installed: Path, tmp_path: Path) -> None:
    where = python(installed, "import service; print(service.__file__)", cwd=tmp_path)
    assert str(installed.parent) in where and str(ROOT) not in where


def test_version_names_the_installed_release(installed: Path, tmp_path: Path) -> None:
    done = run(installed, "--version", cwd=tmp_path)
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (done.returncode, done.stdout.strip()) == (0, f"circleci-events {release}")


def test_check_config_accepts_the_packaged_example_routes_file(installed: Path, tmp_path: Path) -> None:
    folder = python(installed, "import config, pathlib; print(pathlib.Path(config.__file__).parent)", cwd=tmp_path)
    example = Path(folder) / "routes.example.yaml"
    assert installed.parent in example.parents
    done = run(installed, "check-config", str(example), cwd=tmp_path, **EXAMPLE_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{example}: valid; 8 handlers, 6 subscriptions" in done.stdout
    assert "example-audit-secret" not in done.stdout


def test_the_demo_runs_from_the_installed_wheel_outside_the_clone(installed: Path, tmp_path: Path) -> None:
    done = run(installed, "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "transition   broken" in done.stdout and "transition   fixed" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# Every mount but the kernel's own made read-only, a fresh tmpfs on the scratch folder: what a
# container with readOnlyRootFilesystem and an emptyDir (or tmpfs) on /tmp gives the process.
READ_ONLY = r"""
set -e
scratch=$1; shift
awk '{print $5, $6}' /proc/self/mountinfo | while read -r point options; do
  case "$point" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  case ",$options," in *,ro,*) continue ;; esac
  mount -o remount,bind,ro "$point"
done
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$scratch"
exec "$@"
"""


@pytest.fixture
def read_only_root(tmp_path: Path) -> Iterator[list[str]]:
    """A command prefix that runs its command on a read-only filesystem with TMPDIR writable."""
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"a mount namespace needs root here: {probe.stderr.decode().strip()}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    yield ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY, "sh", str(scratch)]


def test_web_and_worker_run_on_a_read_only_root_filesystem(
    installed: Path, read_only_root: list[str], redis_url: str, tmp_path: Path
) -> None:
    web_port, worker_port = free_port(), free_port()
    env = clean_env(REDIS_URL=redis_url, CIRCLECI_WEBHOOK_SECRETS=SECRET, HOST="127.0.0.1", PORT=str(web_port),
                    WORKER_HTTP_PORT=str(worker_port), PYTHONDONTWRITEBYTECODE="1", HOME="/nonexistent",
                    TMPDIR=str(tmp_path / "scratch"), LOG_FORMAT="json")  # fmt: skip
    command = [*read_only_root, str(installed / "circleci-events")]
    web = Service([*command, "web"], env=env, log_path=tmp_path / "web.log").start()
    worker = Service([*command, "worker"], env=env, log_path=tmp_path / "worker.log").start()
    try:
        web.wait_http(f"http://127.0.0.1:{web_port}/healthz")
        worker.wait_http(f"http://127.0.0.1:{worker_port}/healthz")
        sent = run(installed, "send-test-event", "--url", f"http://127.0.0.1:{web_port}", cwd=tmp_path,
                   CIRCLECI_WEBHOOK_SECRETS=SECRET)  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        worker.wait_for_log(lambda line: line.get("event") == "notification_logged")
        for role_env in ({"PORT": str(web_port)}, {"PORT": "1", "WORKER_HTTP_PORT": str(worker_port)}):
            healthy = subprocess.run([str(installed / "python"), str(HEALTHCHECK)], env=clean_env(**role_env),
                                     capture_output=True, text=True)  # fmt: skip
            assert healthy.returncode == 0, healthy.stdout
    finally:
        web.stop()
        worker.stop()
    for service in (web, worker):
        assert "Read-only file system" not in service.output() and "Traceback" not in service.output()
