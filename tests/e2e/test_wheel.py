"""The built wheel, installed into a fresh virtual environment outside the clone, is the product.

The wheel is built from this repository and installed without its dependencies; those come
from the project's own environment through a `.pth` line (no network in tests), which adds
its site-packages but not the editable install of this checkout (a `.pth` file there is not
processed). Commands run from an empty folder, so nothing of the clone can be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp.glob("circleci_events-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCLE", "REDIS_URL", "ROUTES_FILE", "PYTHON"))}
    return subprocess.run(
        [str(bin_dir / "circleci-events"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_wheel_carries_the_simulators_their_samples_and_the_default_routes(installed: Path) -> None:
    [wheel] = installed.parents[1].glob("circleci_events-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "service/simulators/circleci.py" in names and "service/simulators/sink.py" in names
    assert "service/simulators/samples/workflow-completed.failed.github-oauth.derived.json" in names
    assert "config/routes.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_the_installed_package_imports_from_its_own_site_packages(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "python"), "-c", "import service; print(service.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(installed.parent) in done.stdout and str(ROOT) not in done.stdout


def test_the_demo_runs_from_the_installed_wheel_outside_the_clone(installed: Path, tmp_path: Path) -> None:
    done = run(installed, "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "transition   broken" in done.stdout and "transition   fixed" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
