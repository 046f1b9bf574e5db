"""deploy/kubernetes: every manifest valid against Kubernetes' own schemas (`kubernetes-validate
--strict`, offline), and the probes, ports, environment and grace period the ones the code reads.

No kubectl is assumed: the kustomization is rendered by reading its `resources` list, each file
a stream of YAML documents (the base uses no generator or patch that would change them).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from config.settings import VARIABLES, Settings
from service.app import create_app
from workers.health import HealthServer
from workers.routes_file import load_routes
from workers.supervisor import Health

ROOT = Path(__file__).parents[2]
BASE = ROOT / "deploy" / "kubernetes"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
SETTINGS = {v.name for v in VARIABLES}
MARGIN_SECONDS = 5  # a worker past its grace still puts its jobs back and exits


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((BASE / "kustomization.yaml").read_text()))


def rendered() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in yaml.safe_load_all((BASE / name).read_text())]


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in rendered() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(deployment: str) -> dict[str, Any]:
    [found] = one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def env(deployment: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"]}


def port(deployment: str, name: str) -> int:
    [number] = [p["containerPort"] for p in container(deployment)["ports"] if p["name"] == name]
    return int(number)


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_resource_and_the_secret_example_pass_strict_validation() -> None:
    files = [BASE / name for name in kustomization()["resources"]] + [SECRET_EXAMPLE]
    assert all(f.is_file() for f in files)
    done = validate(*files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    broken = tmp_path / "worker.yaml"
    broken.write_text((BASE / "worker.yaml").read_text().replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    done = validate(broken)
    assert done.returncode != 0 and "readOnlyRootFileSystem" in done.stdout + done.stderr


def test_the_base_holds_web_worker_service_routes_and_disruption_budgets() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered())
    assert kinds == [
        ("ConfigMap", "circleci-events-routes"),
        ("Deployment", "circleci-events-web"),
        ("Deployment", "circleci-events-worker"),
        ("PodDisruptionBudget", "circleci-events-web"),
        ("PodDisruptionBudget", "circleci-events-worker"),
        ("Service", "circleci-events-web"),
    ]
    assert "secret.example.yaml" not in kustomization()["resources"]  # applying it would overwrite real values


def test_the_image_tag_is_the_release() -> None:
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    [image] = kustomization()["images"]
    assert image["name"] == container("circleci-events-web")["image"] == container("circleci-events-worker")["image"]
    assert image["newTag"] == release


@pytest.mark.parametrize("deployment", ["circleci-events-web", "circleci-events-worker"])
def test_pods_run_restricted(deployment: str) -> None:
    pod = one("Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [user] = re.findall(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == user
    security = container(deployment)["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert set(container(deployment)["resources"]) == {"requests", "limits"}


@pytest.mark.parametrize("deployment", ["circleci-events-web", "circleci-events-worker"])
def test_the_routes_file_comes_from_the_config_map_and_secrets_from_the_secret(deployment: str) -> None:
    routes_file = Path(env(deployment)["ROUTES_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in one("Deployment", deployment)["spec"]["template"]["spec"]["volumes"]}
    config_map = volumes[mounts[str(routes_file.parent)]]["configMap"]["name"]
    assert routes_file.name in one("ConfigMap", config_map)["data"]
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text())["metadata"]["name"]
    assert container(deployment)["envFrom"] == [{"secretRef": {"name": secret}}]
    assert set(env(deployment)) <= SETTINGS


def test_the_config_map_holds_a_valid_routes_file(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(one("ConfigMap", "circleci-events-routes")["data"]["routes.yaml"])
    loaded = load_routes(routes, {})
    assert loaded.subscriptions


def test_the_secret_example_names_settings_and_every_one_a_deployment_needs() -> None:
    keys = set(yaml.safe_load(SECRET_EXAMPLE.read_text())["stringData"])
    assert keys <= SETTINGS
    assert {"REDIS_URL", "CIRCLECI_WEBHOOK_SECRETS"} <= keys


def test_web_probes_and_port_are_the_receivers() -> None:
    web = container("circleci-events-web")
    assert port("circleci-events-web", "http") == int(env("circleci-events-web")["PORT"])
    settings = Settings.from_environ({"CIRCLECI_WEBHOOK_SECRETS": "a-webhook-secret-of-length"})
    with TestClient(create_app(settings, redis=fakeredis.FakeAsyncRedis())) as client:
        for probe in ("livenessProbe", "readinessProbe"):
            assert web[probe]["httpGet"]["port"] == "http"
            assert client.get(web[probe]["httpGet"]["path"]).status_code == 200, probe
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"


class HealthyWorker:
    """What the worker's health server asks of its supervisor: threads all well, Redis answering."""

    redis = fakeredis.FakeRedis()

    def health(self) -> Health:
        return Health(ok=True, problems=[])


def test_worker_probes_and_port_are_the_worker_health_servers() -> None:
    worker = container("circleci-events-worker")
    assert port("circleci-events-worker", "health") == int(env("circleci-events-worker")["WORKER_HTTP_PORT"])
    server = HealthServer(("127.0.0.1", 0), HealthyWorker(), CollectorRegistry())  # type: ignore[arg-type]
    try:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for probe in ("livenessProbe", "readinessProbe"):
            assert worker[probe]["httpGet"]["port"] == "health"
            assert httpx.get(base + worker[probe]["httpGet"]["path"]).status_code == 200, probe
            assert httpx.get(base + "/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_a_stopping_worker_gets_its_shutdown_grace_and_a_margin() -> None:
    pod = one("Deployment", "circleci-events-worker")["spec"]["template"]["spec"]
    grace = Settings.from_environ(env("circleci-events-worker")).worker_shutdown_grace_seconds
    assert pod["terminationGracePeriodSeconds"] >= grace + MARGIN_SECONDS


def test_the_service_and_the_budgets_select_the_deployments_pods() -> None:
    def pod_labels(deployment: str) -> dict[str, str]:
        return dict(one("Deployment", deployment)["spec"]["template"]["metadata"]["labels"])

    service = one("Service", "circleci-events-web")["spec"]
    assert service["selector"] == pod_labels("circleci-events-web")
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    for name in ("circleci-events-web", "circleci-events-worker"):
        selector = one("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        assert selector == one("Deployment", name)["spec"]["selector"]["matchLabels"] == pod_labels(name)
