"""infra/ manifests parse and keep their structure (docker and kubectl are not run here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[1] / "infra"
KUBERAY = INFRA / "kuberay"
RAYJOBS = {"rayjob-train.yaml": "gglops train", "rayjob-tune.yaml": "gglops tune"}
# Values that look like literal credentials (a long token, or a key=value secret).
SECRETISH = re.compile(r"(?i)(secret|password|token)[\w-]*\s*[:=]\s*['\"]?[A-Za-z0-9/+]{16,}")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _containers(cluster_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from cluster_spec["headGroupSpec"]["template"]["spec"]["containers"]
    for group in cluster_spec["workerGroupSpecs"]:
        yield from group["template"]["spec"]["containers"]


def _check_cluster_spec(spec: dict[str, Any]) -> None:
    assert spec["rayVersion"]
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"]
    gpu_groups = [
        g
        for g in spec["workerGroupSpecs"]
        if g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") == 1
    ]
    assert gpu_groups, "a worker group with nvidia.com/gpu: 1"
    for container in _containers(spec):
        assert container["image"] and container["name"]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
        }
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= refs.keys()
        assert all(ref["name"] == "gglops-secrets" for ref in refs.values())
        assert all("value" not in e for e in container["env"] if "SECRET" in e["name"])
        assert container["envFrom"][0]["configMapRef"]["name"] == "gglops-settings"


def test_raycluster_has_cpu_head_and_gpu_workers() -> None:
    doc = _load(KUBERAY / "raycluster.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    assert doc["metadata"]["name"]
    _check_cluster_spec(doc["spec"])
    head = doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]


@pytest.mark.parametrize(("name", "command"), RAYJOBS.items())
def test_rayjobs_run_gglops_with_env_from_secret(name: str, command: str) -> None:
    doc = _load(KUBERAY / name)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    assert doc["spec"]["entrypoint"].startswith(command)
    assert doc["spec"]["shutdownAfterJobFinishes"] is True
    _check_cluster_spec(doc["spec"]["rayClusterSpec"])


def test_settings_configmap_holds_no_secrets() -> None:
    doc = _load(KUBERAY / "settings-configmap.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "ConfigMap")
    assert doc["metadata"]["name"] == "gglops-settings"
    assert not [k for k in doc["data"] if re.search("SECRET|PASSWORD|TOKEN|KEY_ID", k)]


def test_compose_services_healthchecks_and_order() -> None:
    doc = _load(INFRA / "docker-compose.yml")
    services = doc["services"]
    assert {"postgres", "s3", "mlflow", "ray-head", "ray-worker"} <= services.keys()
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service["image"], name
    assert "postgresql://" in services["mlflow"]["command"]
    assert "--artifacts-destination s3://" in services["mlflow"]["command"]
    assert "weed mini" in " ".join(services["s3"]["command"])
    expected_order = {
        "mlflow": {"postgres", "s3"},
        "ray-head": {"mlflow"},
        "ray-worker": {"ray-head"},
    }
    for name, deps in expected_order.items():
        depends = services[name]["depends_on"]
        assert deps <= depends.keys()
        assert all(depends[d]["condition"] == "service_healthy" for d in deps)
    # Published ports stay on the loopback interface.
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published)


def test_compose_requires_secrets_from_the_environment() -> None:
    text = (INFRA / "docker-compose.yml").read_text()
    for var in ("GGLOPS_AWS_SECRET_ACCESS_KEY", "MLFLOW_DB_PASSWORD", "RAY_AUTH_TOKEN"):
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} must be required, not defaulted"


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.y*ml")), ids=lambda p: p.name)
def test_no_plaintext_secrets(path: Path) -> None:
    assert not SECRETISH.search(path.read_text()), path
