"""infra/ holds up without docker or kubectl: every KubeRay manifest is checked against the
API of the pinned KubeRay version (its published CRDs, encoded below), the Dockerfile is
linted by hadolint and copies only what exists, and `make image` builds exactly the tags
that the manifests and compose file name."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from gglops.stages.submit import is_secret

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
KUBERAY = INFRA / "kuberay"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))
# Values that look like literal credentials (a long token, or a key=value secret).
SECRETISH = re.compile(r"(?i)(secret|password|token)[\w-]*\s*[:=]\s*['\"]?[A-Za-z0-9/+]{16,}")
SECRET = "gglops-secrets"
SETTINGS = "gglops-settings"
# `make image` builds these (IMAGE_REPO:IMAGE_TAG[-cuda]); the manifests name them through the
# placeholder tag that it substitutes.
PLACEHOLDER_IMAGES = {"cpu": "gglops:GIT_SHA", "cuda": "gglops:GIT_SHA-cuda"}


# --- KubeRay v1.7.0's API (ray.io/v1), from its CRDs ---------------------------------------
# ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs,rayservices}.yaml at tag v1.7.0:
# every key each object accepts (unknown keys are refused, as the API server's structural
# schema prunes or rejects them), the required ones, the types and enums. Kubernetes' own
# types (PodTemplateSpec, Container) are encoded to the depth these manifests use.
KUBERAY_VERSION = "v1.7.0"


@dataclass(frozen=True)
class Obj:
    props: Mapping[str, Any]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Arr:
    items: Any


@dataclass(frozen=True)
class MapOf:
    values: Any


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Quantity:
    """A resource quantity: an integer or a string like 500m, 8Gi."""


ANY = object()  # a Kubernetes field these manifests do not use in depth
QTY = Quantity()


def _free(*keys: str, **typed: Any) -> dict[str, Any]:
    return dict.fromkeys(keys, ANY) | typed


SECRET_KEY_REF = Obj({"key": str, "name": str, "optional": bool}, required=("key",))
ENV_VAR = Obj(
    {"name": str, "value": str,
     "valueFrom": Obj(_free("configMapKeyRef", "fieldRef", "fileKeyRef", "resourceFieldRef",
                            secretKeyRef=SECRET_KEY_REF))},
    required=("name",),
)  # fmt: skip
ENV_FROM = Obj({"configMapRef": Obj({"name": str, "optional": bool}), "prefix": str,
                "secretRef": Obj({"name": str, "optional": bool})})  # fmt: skip
RESOURCES = Obj({"claims": ANY, "limits": MapOf(QTY), "requests": MapOf(QTY)})
CONTAINER = Obj(
    _free("args", "command", "imagePullPolicy", "lifecycle", "livenessProbe", "readinessProbe",
          "resizePolicy", "restartPolicy", "restartPolicyRules", "securityContext",
          "startupProbe", "stdin", "stdinOnce", "terminationMessagePath",
          "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts", "workingDir",
          name=str, image=str, env=Arr(ENV_VAR), envFrom=Arr(ENV_FROM), resources=RESOURCES,
          ports=Arr(Obj({"containerPort": int, "hostIP": str, "hostPort": int, "name": str,
                         "protocol": str}, required=("containerPort",)))),
    required=("name",),
)  # fmt: skip
TOLERATION = Obj({"effect": str, "key": str, "operator": str, "tolerationSeconds": int,
                  "value": str})  # fmt: skip
POD_SPEC = Obj(
    _free("activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig",
          "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC",
          "hostNetwork", "hostPID", "hostUsers", "hostname", "hostnameOverride",
          "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead",
          "preemptionPolicy", "priority", "priorityClassName", "readinessGates",
          "resourceClaims", "resources", "restartPolicy", "runtimeClassName", "schedulerName",
          "schedulingGates", "schedulingGroup", "securityContext", "serviceAccount",
          "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
          "terminationGracePeriodSeconds", "topologySpreadConstraints", "volumes",
          containers=Arr(CONTAINER), tolerations=Arr(TOLERATION)),
    required=("containers",),
)  # fmt: skip
POD_TEMPLATE = Obj({"metadata": ANY, "spec": POD_SPEC})
RAY_START_PARAMS = MapOf(str)  # additionalProperties: string: "0", not 0
HEAD_GROUP = Obj(
    _free("enableIngress", "headService", "ingressOptions", "labels", "resources",
          "serviceType", rayStartParams=RAY_START_PARAMS, template=POD_TEMPLATE),
    required=("template",),
)  # fmt: skip
WORKER_GROUP = Obj(
    _free("labels", "priority", "resources", "scaleStrategy", "suspend",
          groupName=str, idleTimeoutSeconds=int, maxReplicas=int, minReplicas=int,
          numOfHosts=int, replicas=int, rayStartParams=RAY_START_PARAMS, template=POD_TEMPLATE),
    required=("groupName", "maxReplicas", "minReplicas", "template"),
)  # fmt: skip
AUTOSCALER = Obj(
    _free("args", "command", "env", "envFrom", "image", "imagePullPolicy", "securityContext",
          "volumeMounts", idleTimeoutSeconds=int, resources=RESOURCES,
          upscalingMode=Enum(("Default", "Aggressive", "Conservative")),
          version=Enum(("v1", "v2"))),
)  # fmt: skip
AUTH = Obj({"enableK8sTokenAuth": bool, "mode": Enum(("disabled", "token")), "secretName": str})
RAY_CLUSTER_SPEC = Obj(
    _free("gcsFaultToleranceOptions", "headServiceAnnotations", "historyServerOptions",
          "managedBy", "networkPolicy", "suspend", "tlsOptions", "upgradeStrategy",
          authOptions=AUTH, autoscalerOptions=AUTOSCALER, enableInTreeAutoscaling=bool,
          headGroupSpec=HEAD_GROUP, rayVersion=str, workerGroupSpecs=Arr(WORKER_GROUP)),
    required=("headGroupSpec",),
)  # fmt: skip
RAY_JOB_SPEC = Obj(
    _free("clusterSelector", "deletionStrategy", "managedBy", "metadata", "submitterConfig",
          "submitterPodTemplate", "suspend",
          activeDeadlineSeconds=int, backoffLimit=int, entrypoint=str, entrypointNumCpus=float,
          entrypointNumGpus=float, entrypointResources=str, jobId=str,
          preRunningDeadlineSeconds=int, rayClusterSpec=RAY_CLUSTER_SPEC, runtimeEnvYAML=str,
          shutdownAfterJobFinishes=bool, submissionMode=str, ttlSecondsAfterFinished=int),
)  # fmt: skip
RAY_SERVICE_SPEC = Obj(
    _free("managedBy", "serveService", "suspend", "upgradeStrategy",
          deploymentUnhealthySecondThreshold=int, excludeHeadPodFromServeSvc=bool,
          rayClusterConfig=RAY_CLUSTER_SPEC, rayClusterDeletionDelaySeconds=int,
          serveConfigV2=str, serviceUnhealthySecondThreshold=int),
    required=("rayClusterConfig",),
)  # fmt: skip
METADATA = Obj(_free("annotations", "namespace", name=str, labels=MapOf(str)), required=("name",))
# kind → (its spec's schema, where its RayCluster spec sits in that spec)
KINDS: dict[str, tuple[Obj, str | None]] = {
    "RayCluster": (RAY_CLUSTER_SPEC, None),
    "RayJob": (RAY_JOB_SPEC, "rayClusterSpec"),
    "RayService": (RAY_SERVICE_SPEC, "rayClusterConfig"),
}
SCALARS = {str: str, int: int, bool: bool, float: (int, float)}


def schema_errors(value: Any, schema: Any, path: str = "") -> list[str]:
    """Where `value` breaks `schema`: one line per problem, named by its path."""
    if schema is ANY:
        return []
    if isinstance(schema, Quantity):
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        return [] if ok else [f"{path}: a quantity, not {value!r}"]
    if isinstance(schema, Enum):
        return [] if value in schema.values else [f"{path}: {value!r} not in {schema.values}"]
    if isinstance(schema, type) and schema in SCALARS:
        ok = isinstance(value, SCALARS[schema]) and not (schema is not bool and value is True)
        return [] if ok else [f"{path}: {schema.__name__} expected, got {value!r}"]
    if isinstance(schema, Arr):
        if not isinstance(value, list):
            return [f"{path}: a list expected"]
        return [
            e for i, v in enumerate(value) for e in schema_errors(v, schema.items, f"{path}[{i}]")
        ]
    if isinstance(value, Mapping) and isinstance(schema, MapOf):
        return [e for k, v in value.items() for e in schema_errors(v, schema.values, f"{path}.{k}")]
    if not isinstance(value, Mapping):
        return [f"{path}: an object expected"]
    errors = [f"{path}.{k}: unknown field" for k in value if k not in schema.props]
    errors += [f"{path}.{k}: required" for k in schema.required if k not in value]
    for key, sub in value.items():
        if key in schema.props:
            errors += schema_errors(sub, schema.props[key], f"{path}.{key}")
    return errors


def test_the_schema_check_refuses_what_kuberay_refuses() -> None:
    """The validator itself: an unknown field, a missing required one, a wrong enum value and
    an integer where rayStartParams wants a string are each one error."""
    doc = _load(KUBERAY / "raycluster.yaml")
    spec = doc["spec"]
    assert schema_errors(spec, RAY_CLUSTER_SPEC) == []
    broken = yaml.safe_load(yaml.safe_dump(spec))
    broken["enableAutoscaling"] = True
    del broken["workerGroupSpecs"][0]["maxReplicas"]
    broken["authOptions"]["mode"] = "password"
    broken["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    assert sorted(schema_errors(broken, RAY_CLUSTER_SPEC)) == [
        ".authOptions.mode: 'password' not in ('disabled', 'token')",
        ".enableAutoscaling: unknown field",
        ".headGroupSpec.rayStartParams.num-cpus: str expected, got 0",
        ".workerGroupSpecs[0].maxReplicas: required",
    ]


# --- the manifests -------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _lock_pin(name: str) -> str:
    text = (ROOT / "requirements.lock").read_text()
    return re.search(rf"^{re.escape(name)}==(\S+)", text, re.M).group(1)  # type: ignore[union-attr]


def _groups(cluster: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", cluster["headGroupSpec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["groupName"], group


def _containers(cluster: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, group in _groups(cluster):
        for container in group["template"]["spec"]["containers"]:
            yield name, container


def _wants_gpu(container: dict[str, Any]) -> bool:
    return "nvidia.com/gpu" in container.get("resources", {}).get("limits", {})


def _gib(quantity: str | int) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024, "G": 1e9 / 2**30, "M": 1e6 / 2**30}
    for unit, scale in units.items():
        if str(quantity).endswith(unit):
            return float(str(quantity)[: -len(unit)]) * scale
    return float(quantity) / 2**30


def _cpus(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@dataclass
class Findings:
    """What a manifest breaks, one line each (a test asserts the list is empty)."""

    path: Path
    lines: list[str] = field(default_factory=list)

    def check(self, ok: bool, line: str) -> None:
        if not ok:
            self.lines.append(f"{self.path.name}: {line}")


def _check_cluster(f: Findings, cluster: dict[str, Any]) -> None:
    f.check(cluster.get("rayVersion") == _lock_pin("ray"), "rayVersion is the lock's Ray")
    # Images: what `make image` builds (placeholder tag), the CUDA one exactly where a GPU is.
    for group, container in _containers(cluster):
        want = PLACEHOLDER_IMAGES["cuda" if _wants_gpu(container) else "cpu"]
        f.check(container.get("image") == want, f"{group}: image {container.get('image')} "
                f"is not what `make image` builds ({want})")  # fmt: skip
    # Autoscaling: min/max only mean something with the in-tree autoscaler on.
    for group, spec in _groups(cluster):
        if group == "head":
            continue
        lo, hi, n = (
            spec["minReplicas"],
            spec["maxReplicas"],
            spec.get("replicas", spec["minReplicas"]),
        )
        f.check(lo <= n <= hi, f"{group}: minReplicas <= replicas <= maxReplicas")
        autoscaled = cluster.get("enableInTreeAutoscaling") is True
        f.check(
            lo == hi or autoscaled,
            f"{group}: minReplicas {lo} != maxReplicas {hi}, enableInTreeAutoscaling off",
        )
    if cluster.get("enableInTreeAutoscaling"):
        sidecar = cluster.get("autoscalerOptions", {}).get("resources", {})
        f.check(
            {"cpu", "memory"} <= sidecar.get("requests", {}).keys(),
            "autoscalerOptions.resources.requests (cpu, memory) for the sidecar",
        )
    # Auth: the dashboard/Jobs API listens on the pod address, so Ray's token auth is on, its
    # token from the Secret.
    auth = cluster.get("authOptions", {})
    f.check(auth.get("mode") == "token" and auth.get("secretName") == SECRET,
            f"authOptions: mode token, secretName {SECRET} (key auth_token)")  # fmt: skip
    _check_head(f, cluster["headGroupSpec"])
    for group, container in _containers(cluster):
        _check_secrets(f, group, container)


def _check_head(f: Findings, head: dict[str, Any]) -> None:
    """The head runs GCS, dashboard and job drivers, no training (num-cpus 0): it asks for
    what it uses, and gets its memory as requested (request = limit: never evicted)."""
    container = head["template"]["spec"]["containers"][0]
    requests = container.get("resources", {}).get("requests", {})
    limits = container.get("resources", {}).get("limits", {})
    f.check(head.get("rayStartParams", {}).get("num-cpus") == "0", 'head: num-cpus "0"')
    f.check(not _wants_gpu(container), "head: no GPU")
    f.check({"cpu", "memory"} <= requests.keys(), "head: cpu and memory requests")
    if {"cpu", "memory"} <= requests.keys():
        f.check(1 <= _cpus(requests["cpu"]) <= 8, "head: 1-8 CPUs requested")
        f.check(4 <= _gib(requests["memory"]) <= 64, "head: 4-64 GiB requested")
        f.check(limits.get("memory") == requests["memory"], "head: memory limit = request")


def _check_secrets(f: Findings, group: str, container: dict[str, Any]) -> None:
    """Secrets only from the Secret: every credential-named variable is a secretKeyRef into
    gglops-secrets, settings come from the ConfigMap, no literal values."""
    env = container.get("env", [])
    names = {e["name"] for e in env}
    f.check({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names, f"{group}: S3 keys in env")
    for var in env:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if is_secret(var["name"]):
            f.check("value" not in var and ref is not None and ref.get("name") == SECRET,
                    f"{group}: {var['name']} must come from the Secret {SECRET}")  # fmt: skip
        elif ref is not None:
            f.check(ref.get("name") == SECRET, f"{group}: {var['name']}: only {SECRET}")
    sources = [next(iter(s.values()))["name"] for s in container.get("envFrom", [])]
    f.check(SETTINGS in sources and set(sources) <= {SETTINGS, SECRET},
            f"{group}: envFrom the ConfigMap {SETTINGS}")  # fmt: skip


def _check_rayjob(f: Findings, spec: dict[str, Any]) -> None:
    """The job runs a pipeline stage through the cluster entrypoint, from the image's working
    dir, and writes nothing into the cluster that dies with it."""
    stages = _load(ROOT / "dvc.yaml")["stages"]
    words = shlex.split(spec["entrypoint"])
    f.check(
        words[:3] == ["gglops", "job", "run"] and len(words) > 3 and words[3] in stages,
        f"entrypoint `gglops job run <stage>`, not {spec['entrypoint']!r}",
    )
    workdir = words[words.index("--workdir") + 1] if "--workdir" in words else None
    f.check(workdir == _dockerfile_workdir(), f"--workdir is the image's WORKDIR ({workdir})")
    f.check("--out" not in words, "no --out into the cluster's disk")
    f.check(spec.get("shutdownAfterJobFinishes") is True, "shutdownAfterJobFinishes: true")


def manifest_findings(path: Path) -> list[str]:
    doc = _load(path)
    f = Findings(path)
    if doc.get("kind") == "ConfigMap":
        f.check(doc["metadata"]["name"] == SETTINGS, f"the ConfigMap is {SETTINGS}")
        f.check(not [k for k in doc["data"] if is_secret(k) or "KEY_ID" in k], "no secrets")
        return f.lines
    f.check(doc.get("apiVersion") == "ray.io/v1", "apiVersion ray.io/v1")
    f.check(doc.get("kind") in KINDS, f"kind {doc.get('kind')} is one of {sorted(KINDS)}")
    if f.lines:
        return f.lines
    spec_schema, cluster_key = KINDS[doc["kind"]]
    f.lines += [f"{path.name}: metadata{e}" for e in schema_errors(doc["metadata"], METADATA)]
    f.lines += [f"{path.name}: spec{e}" for e in schema_errors(doc["spec"], spec_schema)]
    cluster = doc["spec"] if cluster_key is None else doc["spec"].get(cluster_key)
    if cluster:
        _check_cluster(f, cluster)
    if doc["kind"] == "RayJob":
        _check_rayjob(f, doc["spec"])
    return f.lines


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_holds_against_kuberay_and_the_rules(path: Path) -> None:
    """Every manifest in infra/kuberay/: KubeRay's API, images built here, autoscaler
    consistent, token auth, a head that fits, secrets only from the Secret."""
    assert manifest_findings(path) == []


def test_the_manifests_cover_a_cluster_and_the_jobs() -> None:
    kinds = {p.name: _load(p)["kind"] for p in MANIFESTS}
    assert (
        kinds["raycluster.yaml"] == "RayCluster" and kinds["settings-configmap.yaml"] == "ConfigMap"
    )
    assert {kinds["rayjob-train.yaml"], kinds["rayjob-tune.yaml"]} == {"RayJob"}
    worker = _load(KUBERAY / "raycluster.yaml")["spec"]["workerGroupSpecs"][0]
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


# --- compose -------------------------------------------------------------------------------


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


def test_compose_requires_secrets_and_the_built_image_from_the_environment() -> None:
    text = (INFRA / "docker-compose.yml").read_text()
    for var in ("GGLOPS_AWS_SECRET_ACCESS_KEY", "MLFLOW_DB_PASSWORD", "RAY_AUTH_TOKEN",
                "GGLOPS_IMAGE"):  # fmt: skip
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} must be required, not defaulted"


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.y*ml")), ids=lambda p: p.name)
def test_no_plaintext_secrets(path: Path) -> None:
    assert not SECRETISH.search(path.read_text()), path


# --- the Dockerfile and `make image` -------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, its words) per instruction, continuation lines joined, comments out."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")))  # fmt: skip
    return [
        (ln.split()[0].upper(), shlex.split(ln)[1:]) for ln in joined.splitlines() if ln.strip()
    ]


def _dockerfile_workdir() -> str:
    return next(words[0] for op, words in _instructions(DOCKERFILE) if op == "WORKDIR")


def _copy_sources() -> list[str]:
    sources = []
    for op, words in _instructions(DOCKERFILE):
        if op == "COPY":
            assert not any(w.startswith("--from") for w in words)
            sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    print(f"hadolint {DOCKERFILE.relative_to(ROOT)}: exit {done.returncode} {done.stdout!r}")
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_dockerfile_copies_what_exists_and_installs_the_repos_lock() -> None:
    ignore = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln and not ln.startswith("#")]  # fmt: skip
    assert ignore[0] == "*", ".dockerignore starts by excluding everything"
    allowed = [ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")]
    sources = _copy_sources()
    for source in sources:
        # A wildcard may match nothing (dvc.lock* before the first `dvc repro`): Docker copies
        # what matches as long as the instruction's other sources exist.
        assert list(ROOT.glob(source)) or "*" in source, f"COPY {source}: no such path"
        assert source.rstrip("/*") in allowed, f"COPY {source}: excluded by .dockerignore"
    assert ".dvc/config.local" not in sources and not (set(allowed) & {".env", ".dvc", "data"})
    # The lock it installs is the repo's requirements.lock, copied from the repo root; the
    # CUDA build swaps torch for the pin of requirements.in, which matches the lock's torch.
    assert {"requirements.lock", "requirements.in"} <= set(sources)
    runs = "\n".join(  # the commands as written (quotes kept), comments out
        ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")
    )
    assert "grep -v -E '^torch==' requirements.lock > /tmp/requirements.nontorch.lock" in runs
    assert "--no-deps -r /tmp/requirements.nontorch.lock" in runs
    assert "grep -E '^torch==' requirements.lock" in runs  # cpu: the lock's torch line
    assert "grep -E '^torch==' requirements.in" in runs  # cuda: the same version's CUDA build
    torch_in = re.search(r"^torch==(\S+)", (ROOT / "requirements.in").read_text(), re.M)
    assert torch_in and _lock_pin("torch").split("+")[0] == torch_in.group(1)
    # The base is the lock's Ray on Python 3.11.
    args = {w.split("=")[0]: w.partition("=")[2] for op, ws in _instructions(DOCKERFILE)
            if op == "ARG" for w in ws}  # fmt: skip
    base = next(ws[0] for op, ws in _instructions(DOCKERFILE) if op == "FROM")
    assert base == "rayproject/ray:${RAY_VERSION}-py311${BASE_SUFFIX}"
    assert args["RAY_VERSION"] == _lock_pin("ray")


def _make_image(render: Path, *extra: str) -> list[str]:
    """`make image` with DOCKER=echo: the tags it would build, and its rendered files."""
    done = subprocess.run(["make", "-s", "image", "DOCKER=echo", f"RENDER_DIR={render}", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    builds = [shlex.split(ln) for ln in done.stdout.splitlines() if ln.startswith("build ")]
    return [words[words.index("-t") + 1] for words in builds]


def test_make_image_builds_what_the_manifests_and_compose_name(tmp_path: Path) -> None:
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    tags = _make_image(tmp_path / "default")
    assert len(tags) == 2 and tags[0].startswith(f"gglops:{sha}") and tags[1] == tags[0] + "-cuda"
    tags = _make_image(tmp_path, "IMAGE_REPO=ghcr.io/acme/gglops", "IMAGE_TAG=0123abcd4567")
    assert tags == ["ghcr.io/acme/gglops:0123abcd4567", "ghcr.io/acme/gglops:0123abcd4567-cuda"]
    for path in MANIFESTS:
        rendered = tmp_path / "kuberay" / path.name
        doc = _load(rendered)
        if doc["kind"] == "ConfigMap":
            continue
        spec = doc["spec"]
        cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
        images = {c["image"] for _, c in _containers(cluster)}
        assert images and images <= set(tags), (path.name, images)
        assert "gglops:GIT_SHA" not in rendered.read_text()
    env = dict(ln.split("=", 1) for ln in (tmp_path / "image.env").read_text().splitlines())
    assert env == {"GGLOPS_IMAGE": tags[0], "GGLOPS_IMAGE_CUDA": tags[1]}
    compose = _load(INFRA / "docker-compose.yml")["services"]
    for name in ("ray-head", "ray-worker"):
        assert compose[name]["image"].startswith("${GGLOPS_IMAGE:?"), name
