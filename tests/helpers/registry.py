"""Registered-model helpers: tiny calibrated GGL-Nets and MLflow runs laid out as training
leaves them (used by the registry, report, evaluate and serving tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gglnet import GGLNet
from gglops.adapters import tracking
from gglops.core.params import Params
from gglops.data.io import read_image
from gglops.data.layouts import resolve_layout
from gglops.data.manifest import build_manifest
from gglops.model.bundle import save_bundle

LAYOUT, SPLIT = "nuaa-sirst", "idx_427"
OPEN_GATES = Params().with_overrides(
    {"gates.min_miou": 0.0, "gates.min_pd": 0.0, "gates.max_fa": 1.0}
)


def calibrated_model(data_root: Path, seed: int, quantile: float = 0.995) -> GGLNet:
    """A random width-0.25 GGL-Net whose top (1 - quantile) logits on the test split are > 0."""
    torch.manual_seed(seed)
    net = GGLNet(width_mult=0.25).eval()
    test = resolve_layout(data_root, LAYOUT, SPLIT).test
    batch = torch.from_numpy(np.stack([read_image(s.image) for s in test]))
    with torch.no_grad():
        cut = torch.quantile(net(batch).flatten(), quantile)
        net.head[-1].bias -= cut
    return net


def logged_run(
    uri: str,
    data_root: Path,
    net: GGLNet,
    tmp: Path,
    params: Params | None = None,
    val_miou: Sequence[float] = (),
) -> str:
    """An MLflow run laid out as training leaves it: tags, params, `val_miou` per epoch and
    the `model` pyfunc, logged at the best of those epochs."""
    base = params or Params()
    params = base.with_overrides({"data.layout": LAYOUT, "data.split": SPLIT})
    tags = {
        "git_commit": "0" * 40,
        "data_hash": build_manifest(data_root, LAYOUT, SPLIT).data_hash,
        "data_root": str(data_root),
        "dataset": params.data.dataset,
        "params_hash": params.digest(),
    }
    run_id = tracking.start_run(uri, "gglops-registry-tests", "reg", params.flat(), tags)
    for epoch, value in enumerate(val_miou):
        tracking.log_metrics(uri, run_id, {"val_miou": value}, epoch)
    best = max(range(len(val_miou)), key=val_miou.__getitem__, default=0)
    bundle = save_bundle(net, tmp / f"bundle-{run_id}", width_mult=net.width_mult)
    tracking.log_model(uri, run_id, bundle, step=best)
    tracking.end_run(uri, run_id)
    return run_id
