"""Register, gated promotion, release to S3, rollback and the promotion lease, against the real
MLflow server and SeaweedFS S3 of the `stack` fixture (no mocks).

Each test uses its own registered-model name, so tests never see each other's aliases.
Models are tiny GGL-Nets (width 0.25) whose output bias is calibrated so that ~0.5% of the
pixels are detections: metrics are non-trivial without any training.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from helpers.registry import LAYOUT, OPEN_GATES, SPLIT, calibrated_model, logged_run
from mlflow.tracking import MlflowClient

from gglnet import GGLNet
from gglops.adapters.registry import CHAMPION, PREVIOUS, register_run
from gglops.adapters.s3 import ArtifactStore
from gglops.core.errors import UsageError
from gglops.core.params import Params
from gglops.core.settings import load_settings
from gglops.stages.promote import promote_version, rollback_champion
from gglops.stages.release import release_version

# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(stack, synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two logged runs: `a` and `b` (different weights); versions are registered per test."""
    tmp = tmp_path_factory.mktemp("runs")
    return {
        name: logged_run(stack.mlflow_uri, synth_data, calibrated_model(synth_data, seed), tmp)
        for name, seed in (("a", 1), ("b", 2))
    }


@pytest.fixture
def model_env(stack_env, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh registered-model name for this test, in the environment the CLI reads."""
    name = f"gglnet-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GGLOPS_REGISTERED_MODEL", name)
    return name


def _error_line(out: str) -> str:
    """gglops's own message: exactly one `error:` line (MLflow's warnings are not ours)."""
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


def _aliases(uri: str, name: str) -> dict[str, str]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return dict(client.get_registered_model(name).aliases)


# --- tests --------------------------------------------------------------------------------


@pytest.mark.integration
def test_register_tags_lineage_and_metrics(runs, model_env: str, synth_data: Path, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"miou": 0.5, "niou": 0.4, "pd": 0.9, "fa": 1e-5}))
    result = register_run(runs["a"], load_settings(), metrics_file=metrics)
    tags = result.tags
    assert tags["data_root"] == str(synth_data)
    assert tags["data_layout"] == LAYOUT and tags["data_split"] == SPLIT
    assert tags["run_id"] == runs["a"] and tags["git_commit"] == "0" * 40
    assert {k: float(tags[f"test_{k}"]) for k in ("miou", "pd")} == {"miou": 0.5, "pd": 0.9}
    assert set(tags) >= {"data_hash", "params_hash", "dataset", "test_niou", "test_fa"}
    uri = load_settings().mlflow_tracking_uri
    assert _aliases(uri, model_env) == {"candidate": result.version}


@pytest.mark.integration
def test_register_without_metrics_tags_the_logged_models_epoch(
    stack, model_env: str, synth_data: Path, tmp_path: Path
) -> None:
    """The run's latest val_* values are its last epoch's; the version holds the best one's."""
    net = GGLNet(width_mult=0.25)
    run_id = logged_run(stack.mlflow_uri, synth_data, net, tmp_path, val_miou=[0.1, 0.4, 0.25])
    result = register_run(run_id, load_settings())
    assert float(result.tags["val_miou"]) == pytest.approx(0.4)
    assert not any(key.startswith("test_") for key in result.tags)
    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    description = client.get_model_version(model_env, result.version).description
    assert "**Validation metrics** (its epoch): miou 0.4" in description, description


@pytest.mark.integration
def test_summary_without_a_champion_shows_the_candidate_and_its_verdict(
    runs, model_env: str, gglops_cli
) -> None:
    """`make demo-real` ends with `gglops summary` even when the gates refused the model."""
    settings = load_settings()
    version = register_run(runs["a"], settings).version
    code, out = gglops_cli(["summary"])
    title = f"{settings.registered_model} candidate: version {version}"  # the model's own name
    assert code == 0 and title in out, out
    assert "Not promoted  : not evaluated" in out, out
    promote_version(version, settings, Params(), data_root=None)  # the demo gates: refused
    code, out = gglops_cli(["summary"])
    assert code == 0 and "Not promoted  : refused against no champion" in out, out
    assert "FAIL max_fa" in out, out


@pytest.mark.integration
def test_register_unknown_run_is_exit_2(model_env: str, gglops_cli, reliability) -> None:
    code, out = gglops_cli(["register", "0123456789abcdef0123456789abcdef"])
    assert code == 2 and "not found" in out and "Traceback" not in out
    reliability("register an unknown run id", f"exit {code}; {out.strip().splitlines()[-1]}")


@pytest.mark.integration
def test_promote_gate_fail_pass_rollback_and_idempotent_release(
    runs, model_env: str, gglops_cli, tmp_path: Path
) -> None:
    settings = load_settings()
    uri, store = settings.mlflow_tracking_uri, ArtifactStore(settings)
    v1 = register_run(runs["a"], settings).version

    first = promote_version(v1, settings, OPEN_GATES)  # no champion yet: floors only
    assert first.passed and first.champion_version is None
    assert _aliases(uri, model_env)[CHAMPION] == v1

    # The released artifact: model.onnx and manifest.json, the object's sha256 = manifest's.
    prefix = f"models/{model_env}/{v1}"
    manifest = store.get_json(f"{prefix}/manifest.json")
    body, _ = store.get_bytes(f"{prefix}/model.onnx")
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"] == first.onnx_sha256
    assert manifest["size"] == len(body) and manifest["version"] == v1
    assert manifest["inputs"] == {"image": ["N", 3, "H", "W"]}
    assert manifest["outputs"] == {"probs": ["N", 1, "H", "W"]}
    assert manifest["lineage"]["data_hash"] == first.data_hash
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version(model_env, v1)
    assert mv.tags["onnx_sha256"] == manifest["sha256"]
    assert "**Gates**: passed against no champion" in mv.description, mv.description
    assert "**Data**" in mv.description and "not evaluated yet" not in mv.description
    logged = [f.path for f in client.list_artifacts(runs["a"], "onnx")]
    assert logged == ["onnx/model.onnx"]

    # Re-releasing the same version is a no-op: the stored objects are not rewritten.
    before = {f: store.head(f"{prefix}/{f}") for f in ("model.onnx", "manifest.json")}
    again = release_version(v1, settings)
    assert not again.uploaded and again.sha256 == manifest["sha256"]
    assert {f: store.head(f"{prefix}/{f}") for f in before} == before

    # A gate says no: exit 1, every reason listed, nothing moves, nothing uploaded.
    v2 = register_run(runs["b"], settings).version
    out_json = tmp_path / "decision.json"
    args = ["promote", "--version", v2, "--set", "gates.min_miou=0.99", "--out", str(out_json)]
    code, out = gglops_cli(args)
    assert code == 1, out
    assert "FAIL" in out and "min_miou" in out and "not promoted" in out
    decision = json.loads(out_json.read_text())
    assert not decision["passed"] and any("min_miou" in r for r in decision["reasons"])
    assert decision["champion_version"] == v1 and decision["champion_metrics"] is not None
    assert _aliases(uri, model_env) == {"candidate": v2, CHAMPION: v1}
    assert not store.exists(f"models/{model_env}/{v2}/manifest.json")
    refused = client.get_model_version(model_env, v2).description
    assert f"**Gates**: refused against champion v{v1}" in refused and "FAIL min_miou" in refused

    # Pass: champion moves, the old one becomes previous; then roll back.
    assert promote_version(v2, settings, OPEN_GATES).passed
    assert _aliases(uri, model_env) == {"candidate": v2, CHAMPION: v2, PREVIOUS: v1}
    back = rollback_champion(settings)
    assert (back.champion, back.demoted, back.artifact_ok) == (v1, v2, True)
    assert _aliases(uri, model_env) == {"candidate": v2, CHAMPION: v1}
    with pytest.raises(UsageError, match="no alias previous"):
        rollback_champion(settings)


@pytest.mark.integration
def test_rollback_warns_when_previous_artifact_is_gone(runs, model_env: str) -> None:
    settings = load_settings()
    v1 = register_run(runs["a"], settings).version
    v2 = register_run(runs["a"], settings).version
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    client.set_registered_model_alias(model_env, CHAMPION, v2)
    client.set_registered_model_alias(model_env, PREVIOUS, v1)
    result = rollback_champion(settings)  # v1 was never released: warn, still roll back
    assert result.champion == v1 and not result.artifact_ok
    assert "model.onnx" in (result.warning or "")


def _promote_proc(version: str, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "gglops", "promote", "--version", version]
    cmd += ["--set", "gates.min_miou=0", "--set", "gates.min_pd=0", "--set", "gates.max_fa=1"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.integration
def test_concurrent_promotions_leave_one_champion(runs, model_env: str, reliability) -> None:
    settings = load_settings()
    versions = [register_run(runs[r], settings).version for r in ("a", "b")]
    env = dict(os.environ)
    procs = [_promote_proc(v, env) for v in versions]
    results = [(p.wait(timeout=170), p.stdout.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    aliases = _aliases(settings.mlflow_tracking_uri, model_env)
    if codes == [0, 2]:  # overlapped: the loser was refused by the lease
        loser = next(out for code, out in results if code == 2)
        assert "another promotion is in progress" in loser
        winner = versions[[c for c, _ in results].index(0)]
        assert aliases[CHAMPION] == winner and PREVIOUS not in aliases
        observed = "one exit 0, other exit 2 'another promotion is in progress'"
    else:  # did not overlap on this machine: both ran in turn, aliases still consistent
        assert codes == [0, 0], results
        assert {aliases[CHAMPION], aliases[PREVIOUS]} == set(versions)
        observed = "ran one after the other; champion/previous consistent"
    reliability("two promotions at the same time", f"{observed}; champion v{aliases[CHAMPION]}")


@pytest.mark.integration
def test_s3_down_during_promotion_moves_nothing(
    stack, runs, model_env: str, gglops_cli, reliability
) -> None:
    settings = load_settings()
    version = register_run(runs["a"], settings).version
    stack.stop_s3()
    try:
        code, out = gglops_cli(["promote", "--version", version, "--set", "gates.min_miou=0"])
    finally:
        stack.start_s3()
    assert code == 2, out
    assert "GGLOPS_S3_ENDPOINT_URL" in out and "Traceback" not in out
    assert CHAMPION not in _aliases(settings.mlflow_tracking_uri, model_env)
    assert not ArtifactStore(settings).exists(f"models/{model_env}/{version}/manifest.json")
    line = _error_line(out)
    reliability("S3 stopped during promotion", f"exit {code}; no alias moved; {line}")


@pytest.mark.integration
def test_wrong_s3_credentials_name_the_setting(
    stack, runs, model_env: str, gglops_cli, monkeypatch, reliability
) -> None:
    version = register_run(runs["a"], load_settings()).version
    secret = "wrong-" + uuid.uuid4().hex
    monkeypatch.setenv("GGLOPS_AWS_SECRET_ACCESS_KEY", secret)
    code, out = gglops_cli(["promote", "--version", version])
    assert code == 2, out
    assert "GGLOPS_AWS_SECRET_ACCESS_KEY" in out and "SignatureDoesNotMatch" in out
    assert secret not in out and stack.secret_key not in out
    assert CHAMPION not in _aliases(stack.mlflow_uri, model_env)
    reliability("wrong S3 secret key on promote", f"exit {code}; {_error_line(out)}")


@pytest.mark.integration
def test_promote_data_must_match_recorded_hash(runs, model_env: str, tmp_path: Path) -> None:
    from gglops.data.synth import synthesize

    settings = load_settings()
    version = register_run(runs["a"], settings).version
    other = synthesize(tmp_path / "other", 8, 32, seed=99)
    with pytest.raises(UsageError, match="differs from"):
        promote_version(version, settings, OPEN_GATES, data_root=other)
    assert CHAMPION not in _aliases(settings.mlflow_tracking_uri, model_env)


@pytest.mark.integration
def test_demo_gates_refuse_an_untrained_and_a_one_epoch_model(
    stack, model_env: str, gglops_cli, tmp_path: Path, reliability
) -> None:
    """The demo's own gates (params.yaml) on the demo's own data: a model that has not
    learned (untrained, or one epoch of the demo recipe) is refused with exit 1."""
    from gglops.core.params import load_params
    from gglops.data.synth import synthesize
    from gglops.stages.train.session import build_session

    demo = load_params("params.yaml")
    root = synthesize(tmp_path / "demo-data", demo.synth.n, demo.synth.size, demo.synth.seed)
    one_epoch = demo.with_overrides({"train.epochs": 1, "data.root": str(root)})
    session = build_session(one_epoch, root)
    session.train_epoch(0)
    torch.manual_seed(demo.train.seed)
    models = {
        "untrained": GGLNet(width_mult=demo.model.width_mult).eval(),
        "1 epoch": session.net.eval(),
    }
    seen = []
    for name, net in models.items():
        run_id = logged_run(stack.mlflow_uri, root, net, tmp_path, one_epoch)
        version = register_run(run_id, load_settings()).version
        code, out = gglops_cli(["promote", "--version", version, "--params", "params.yaml"])
        assert code == 1, f"{name}: {out}"
        assert "not promoted" in out
        assert CHAMPION not in _aliases(stack.mlflow_uri, model_env)
        seen.append(f"{name}: exit {code}")
    reliability("the demo's gates vs an untrained and a 1-epoch model", "; ".join(seen))
