"""The logged model and its run the way MLflow users see them (issue 16, points 1-4 and 8),
against the real mlflow server of the `stack` fixture, its scoring server and its UI.

One registered champion is built once for the module, as training and `gglops register`
leave it: a run opened through the tracker (lineage, datasets), per-epoch metrics, system
metrics while the model is logged, the model logged at its best epoch, metrics.json and the
plots registered with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gglnet import GGLNet
from gglops.adapters import tracking
from gglops.adapters.registry import register_run
from gglops.adapters.tracking.pyfunc import SIZE_MULTIPLE
from gglops.core.params import Params
from gglops.core.settings import load_settings
from gglops.model.bundle import save_bundle
from gglops.stages.tune.trial import trial_label

EXPERIMENT = "gglops-conventions-tests"
VAL_MIOU = [0.10, 0.40, 0.25]  # per epoch: the best is epoch 1
BEST_EPOCH = 1
TEST_METRICS = {"miou": 0.31, "niou": 0.29, "pd": 0.8, "fa": 2.5e-5}
SIZES = [(64, 64), (96, 128), (50, 70)]  # two multiples of 16, one odd size
SHOTS = Path("/tmp/helpers/shots")


@pytest.fixture(scope="module")
def champion(stack, synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("conventions")
    name = f"gglnet-conv-{uuid.uuid4().hex[:8]}"
    env = {**stack.env, "GGLOPS_REGISTERED_MODEL": name}
    uri = stack.mlflow_uri
    params = Params().with_overrides({"data.layout": "nuaa-sirst", "data.split": "idx_427"})
    origin = tracking.lineage(params, synth_data, source="gglops train")
    ray_name = f"gglnet-{uuid.uuid4().hex[:8]}"
    run_id = tracking.open_run(uri, EXPERIMENT, ray_name, params.flat(), {}, origin)
    for epoch, value in enumerate(VAL_MIOU):
        tracking.log_metrics(uri, run_id, {"val_miou": value, "train_loss": 1 - value}, epoch)
    torch.manual_seed(0)
    net = GGLNet(width_mult=0.25).eval()
    bundle = save_bundle(net, tmp / "bundle", width_mult=0.25)
    with pytest.MonkeyPatch.context() as mp:  # MLflow's own setting: a sample every second
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
        with tracking.system_metrics(uri, run_id):
            time.sleep(3)  # "training"
    logged = tracking.log_model(uri, run_id, bundle, step=BEST_EPOCH)
    tracking.end_run(uri, run_id)
    # What the evaluate stage leaves: metrics.json and plots/ beside it.
    (tmp / "metrics.json").write_text(json.dumps(TEST_METRICS))
    (tmp / "plots").mkdir()
    (tmp / "plots" / "pr_curve.csv").write_text("recall,precision\n0.5,0.9\n")
    (tmp / "plots" / "size_recall.csv").write_text("size_bin,recall\n1-4,0.7\n")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        result = register_run(run_id, load_settings(), metrics_file=tmp / "metrics.json")
    tracking.client(uri).set_registered_model_alias(name, "champion", result.version)
    return {
        "name": name, "uri": uri, "env": env, "run_id": run_id, "net": net, "tmp": tmp,
        "model_id": logged.model_id, "version": result.version, "lineage": origin,
    }  # fmt: skip


# --- the model served by MLflow, in an interpreter without gglops --------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_python(root: Path) -> Path:
    """A venv whose only packages are this venv's site-packages, *without* its .pth files:
    the editable install of gglops (and so gglnet) is a .pth, which is not processed there.
    (A fresh `pip install` of mlflow + torch takes minutes; this proves the same thing.)"""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next((root / "lib").glob("python3*/site-packages"))
    main_site = next(p for p in sys.path if p.endswith("site-packages") and "/.venv/" in p)
    (site / "main-venv.pth").write_text(main_site + "\n")
    # `mlflow models serve --env-manager local` runs `uvicorn` from PATH.
    uvicorn = root / "bin" / "uvicorn"
    uvicorn.write_text(
        f"#!{root}/bin/python\nimport sys\nfrom uvicorn.main import main\nsys.exit(main())\n"
    )
    uvicorn.chmod(0o755)
    return root / "bin" / "python"


def _invoke(port: int, image: np.ndarray) -> tuple[int, np.ndarray]:
    body = json.dumps({"inputs": image.tolist()}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return resp.status, np.asarray(json.loads(resp.read())["predictions"], dtype=np.float32)


def _wait_ping(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mlflow models serve did not answer /ping")


@pytest.mark.integration
def test_champion_serves_any_size_from_mlflow_alone(champion, tmp_path: Path) -> None:
    python = _clean_python(tmp_path / "clean")
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": champion["uri"],
    }
    probe = (
        "import importlib.util as u; print([u.find_spec(m) is None for m in ('gglops', 'gglnet')])"
    )
    seen = subprocess.run(
        [str(python), "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert seen.stdout.strip() == "[True, True]", seen  # neither is importable there

    port = _free_port()
    model = f"models:/{champion['name']}@champion"
    cmd = [str(python), "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_ping(port, proc)
        ready_s = time.monotonic() - started
        rng = np.random.default_rng(1)
        for height, width in SIZES:
            image = rng.random((1, 3, height, width), dtype=np.float32)
            status, probs = _invoke(port, image)
            assert status == 200 and probs.shape == (1, 1, height, width)
            print(f"POST /invocations {height}x{width}: HTTP {status}, mask {probs.shape}")
            pad = [(0, 0), (0, 0), (0, -height % SIZE_MULTIPLE), (0, -width % SIZE_MULTIPLE)]
            padded = np.pad(image, pad)
            with torch.no_grad():
                expected = torch.sigmoid(champion["net"](torch.from_numpy(padded))).numpy()
            np.testing.assert_allclose(probs, expected[..., :height, :width], atol=1e-5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    print(f"scoring server of {model} ready in {ready_s:.1f} s, without gglops/gglnet")


@pytest.mark.integration
def test_models_uri_resolves_with_only_the_gglops_setting(champion, tmp_path: Path) -> None:
    """MLflow resolves `models:/` names with its own registry URI; with only the documented
    GGLOPS_MLFLOW_TRACKING_URI set it must still reach our server, not ./mlflow.db."""
    image = tmp_path / "sky.png"
    Image.fromarray(np.zeros((40, 56), np.uint8)).save(image)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GGLOPS_MLFLOW_TRACKING_URI": champion["uri"],
    }
    model = f"models:/{champion['name']}@champion"
    gglops = Path(sys.executable).parent / "gglops"
    cmd = [str(gglops), "predict", model, str(image), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "sky_mask.png").exists()
    assert not (tmp_path / "mlflow.db").exists()


# --- the run, the logged model and the version as MLflow 3 shows them -----------------------


def _screenshot(url: str, out: Path) -> None:
    cmd = [
        "chromium-headless-shell", "--no-sandbox", "--run-all-compositor-stages-before-draw",
        f"--screenshot={out}", "--window-size=1400,1100", "--virtual-time-budget=15000", url,
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    assert out.stat().st_size > 20_000, out  # a blank page is a few kB


@pytest.mark.integration
def test_run_model_and_version_follow_mlflow3_conventions(champion, tmp_path: Path) -> None:
    uri, run_id = champion["uri"], champion["run_id"]
    client = tracking.client(uri)
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    origin = champion["lineage"]
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == origin.git_commit == tags["git_commit"]
    assert tags["mlflow.source.name"] == "gglops train"

    # Datasets tab: train and test splits, DVC source, the data hash as digest.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {f"{origin.dataset}-train", f"{origin.dataset}-test"}
    for found in inputs.values():
        assert found.dataset.source_type == "dvc"
        assert found.dataset.digest == origin.data_hash[: tracking.DIGEST_CHARS]
        assert json.loads(found.dataset.source)["data_hash"] == origin.data_hash
    contexts = {d.dataset.name: d.tags[0].value for d in inputs.values()}
    assert contexts[f"{origin.dataset}-train"] == "training"

    # System metrics were sampled; the test metrics are on the run.
    assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics), run.data.metrics
    assert run.data.metrics["test_miou"] == pytest.approx(TEST_METRICS["miou"])

    # The logged model's metrics: the best epoch's (not epoch 0), plus the test metrics.
    model = client.get_logged_model(champion["model_id"])
    on_model = {(m.key, m.step): m.value for m in model.metrics}
    assert on_model[("val_miou", BEST_EPOCH)] == pytest.approx(max(VAL_MIOU))
    assert ("val_miou", 0) not in on_model
    assert on_model[("test_miou", 0)] == pytest.approx(TEST_METRICS["miou"])

    # Signature: any N, H and W.
    import mlflow

    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert info.signature.inputs.inputs[0].shape == (-1, 3, -1, -1)
    assert info.signature.outputs.inputs[0].shape == (-1, 1, -1, -1)

    # Evaluation artifacts registered with the version.
    logged = {f.path for f in client.list_artifacts(run_id, "evaluation")}
    plots = {f.path for f in client.list_artifacts(run_id, "evaluation/plots")}
    assert logged >= {"evaluation/metrics.json", "evaluation/plots"}
    assert plots == {"evaluation/plots/pr_curve.csv", "evaluation/plots/size_recall.csv"}

    # The version says which data and recipe it is, and that no gate has judged it yet.
    description = client.get_model_version(champion["name"], champion["version"]).description
    assert origin.data_hash[:12] in description and "lr 0.0001" in description
    assert "**Gates**: not evaluated yet" in description and "miou 0.3100" in description

    # Trial runs have names that tell them apart.
    config = {"train.lr": np.float64(0.0021234), "train.batch_size": 8}
    assert trial_label("5a1b2_00003", config) == "trial-003 bs=8 lr=0.0021"

    # Screenshots of the run's pages in the MLflow UI (served by the mlflow server itself).
    shots = {}
    for tab, what in (
        ("", "overview"),
        ("model-metrics", "metrics"),
        ("artifacts/evaluation/metrics.json", "artifacts"),
    ):
        out = tmp_path / f"run-{what}.png"
        _screenshot(tracking.run_url(uri, run.info.experiment_id, run_id, tab), out)
        shots[what] = out
    SHOTS.mkdir(parents=True, exist_ok=True)
    for out in shots.values():
        shutil.copy2(out, SHOTS / out.name)
    print(f"screenshots: {', '.join(str(p) for p in shots.values())} (copies in {SHOTS})")


@pytest.mark.integration
def test_summary_is_quick_and_keeps_the_url_on_one_line(champion) -> None:
    env = {**os.environ, **champion["env"], "COLUMNS": "60"}
    gglops = Path(sys.executable).with_name("gglops")
    started = time.monotonic()
    done = subprocess.run([str(gglops), "summary"], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("MLflow run"))
    assert line.endswith(f"/runs/{champion['run_id']}?workflowType=machine_learning"), line
    assert f"version {champion['version']}" in done.stdout
    print(f"gglops summary: {elapsed:.2f} s")
    assert elapsed < 3.0
