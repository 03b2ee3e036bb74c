"""ONNX export: checker, dynamic N/H/W, parity with torch, CheckError on a parity miss, and
export straight to S3 (real SeaweedFS)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gglnet import GGLNet
from gglops.adapters.s3 import ArtifactStore, S3Url
from gglops.core.errors import CheckError
from gglops.model import export
from gglops.model.bundle import save_bundle


@pytest.fixture(scope="module")
def net() -> GGLNet:
    torch.manual_seed(0)
    return GGLNet(width_mult=0.25).eval()


def test_export_is_checked_dynamic_and_at_parity(net: GGLNet, tmp_path: Path) -> None:
    artifact = export.build_artifact(net, tmp_path / "m.onnx")
    onnx.checker.check_model(str(artifact.path))
    assert artifact.inputs == {"image": ["N", 3, "H", "W"]}
    assert artifact.outputs == {"probs": ["N", 1, "H", "W"]}
    assert artifact.parity.passed and artifact.parity.max_abs_diff <= 1e-4
    assert artifact.sha256 == hashlib.sha256(artifact.path.read_bytes()).hexdigest()

    batch = np.random.default_rng(1).random((2, 3, 48, 80), dtype=np.float32)
    session = export.onnx_session(artifact.path, threads=1)
    probs = session.run(["probs"], {"image": batch})[0]
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(batch))).numpy()
    assert probs.shape == (2, 1, 48, 80)
    assert float(np.abs(probs - expected).max()) <= 1e-4


def test_parity_miss_is_a_check_error(net, tmp_path, monkeypatch) -> None:
    # onnxruntime itself is real; we only swap in another model's outputs to provoke a miss.
    torch.manual_seed(1)
    other = GGLNet(width_mult=0.25).eval()
    other_onnx = export.export_onnx(other, tmp_path / "other.onnx")
    other_fn = export.onnx_prob_fn(other_onnx)
    monkeypatch.setattr(export, "onnx_prob_fn", lambda path, threads=None: other_fn)
    with pytest.raises(CheckError, match="parity failed"):
        export.build_artifact(net, tmp_path / "m.onnx")


def test_export_cli_to_s3(stack_env, net, tmp_path, gglops_cli) -> None:
    from gglops.core.settings import load_settings

    bundle = save_bundle(net, tmp_path / "bundle", width_mult=0.25)
    url = f"s3://{stack_env.bucket}/tests/export/{tmp_path.name}/model.onnx"
    code, out = gglops_cli(["export", str(bundle), "--out", url])
    assert code == 0, out
    assert "parity max abs diff" in out
    store = ArtifactStore(load_settings())
    stored = store.sha256(S3Url.parse(url).key)
    assert stored in out  # the sha256 printed is the stored object's
    manifest = store.get_json(S3Url.parse(url).key.replace("model.onnx", "manifest.json"))
    assert manifest["sha256"] == stored  # the one way to S3: model, then its manifest
    code, again = gglops_cli(["export", str(bundle), "--out", url])
    assert code == 0 and stored in again  # the same model again: a no-op, not a second copy
