"""gglops.adapters.tracking and gglops.model.reference against a real MLflow server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from gglnet import GGLNet
from gglops.adapters import tracking
from gglops.core.errors import ServiceError, UsageError
from gglops.model.bundle import load_bundle, save_bundle
from gglops.model.reference import resolve_model


def _dead_uri() -> str:
    """An HTTP URI on a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _new_run(uri: str, name: str) -> str:
    return tracking.start_run(
        uri, "gglops-tests", name, {"train.lr": 0.01, "tune.space": {"a": 1}}, {"dataset": "t"}
    )


@pytest.mark.integration
def test_metrics_survive_a_tracking_outage(stack, tmp_path: Path, reliability) -> None:
    uri = stack.mlflow_uri
    run_id = _new_run(uri, "outage")
    pending = tmp_path / "pending.jsonl"

    start = time.perf_counter()
    down = tracking.MetricSink(_dead_uri(), run_id, pending)
    buffered = down.log({"train_loss": 0.9, "val_miou": 0.1}, step=0)
    down_s = time.perf_counter() - start
    assert buffered == 2
    assert len(pending.read_text().splitlines()) == 2  # durable while the server is down

    up = tracking.MetricSink(uri, run_id, pending, tracking.read_pending(pending))
    assert up.log({"train_loss": 0.5, "val_miou": 0.3}, step=1) == 0
    assert not pending.exists()
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run_id, "val_miou")
    delivered = sorted((m.step, m.value) for m in history)
    assert delivered == [(0, 0.1), (1, 0.3)]
    reliability(
        "MLflow unreachable while rank 0 logs an epoch's metrics (metric sink)",
        f"log returned after {down_s:.1f} s with {buffered} points buffered in the pending file; "
        f"the next log with the server up delivered them: val_miou (step, value) {delivered}, "
        "pending file removed",
    )
    run = client.get_run(run_id)
    assert run.data.params["train.lr"] == "0.01"
    assert run.data.params["tune.space"] == '{"a": 1}'


def test_unreachable_tracking_server_is_one_line() -> None:
    start = time.perf_counter()
    with pytest.raises(ServiceError, match="GGLOPS_MLFLOW_TRACKING_URI") as info:
        tracking.probe_tracking_server(_dead_uri(), timeout_s=2.0)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(info.value)


@pytest.mark.integration
def test_model_bundle_round_trip_and_registration(stack, tmp_path: Path) -> None:
    uri = stack.mlflow_uri
    run_id = _new_run(uri, "model")
    torch.manual_seed(0)
    net = GGLNet(width_mult=0.25).eval()
    bundle = save_bundle(net, tmp_path / "bundle", width_mult=0.25)
    example = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)

    logged = tracking.log_model(uri, run_id, bundle)
    assert logged.seconds < 60 and logged.model_uri == f"runs:/{run_id}/model"

    # runs:/ and models:/ both give back the same weights, through gglops.model.reference too.
    model_uri = f"runs:/{run_id}/model"
    mlflow.set_tracking_uri(uri)
    version = mlflow.register_model(model_uri, "gglnet-tracking-test").version
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("gglnet-tracking-test", "candidate", version)
    for ref in (model_uri, "models:/gglnet-tracking-test@candidate"):
        resolved = resolve_model(ref, tracking.model_fetcher(uri))
        assert resolved.kind == "mlflow"
        loaded = load_bundle(resolved.path)
        for key, value in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    probs = pyfunc.predict(example)
    assert probs.shape == (1, 1, 32, 32)
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(example))).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_modelref_local_kinds(tmp_path: Path) -> None:
    bundle = save_bundle(GGLNet(width_mult=0.25), tmp_path / "b", width_mult=0.25)
    assert resolve_model(bundle).kind == "bundle"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\0")
    assert resolve_model(onnx).kind == "onnx"
    with pytest.raises(UsageError, match="ONNX file not found"):
        resolve_model(tmp_path / "missing.onnx")
    with pytest.raises(UsageError, match="not a model bundle"):
        resolve_model(tmp_path)
    with pytest.raises(UsageError, match="no such model"):
        resolve_model(tmp_path / "nothing")
