"""`gglops evaluate`: the same metrics from a bundle and from its ONNX export, plot data,
and the evaluation convention written into metrics.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers.registry import calibrated_model

from gglops.core.params import Params
from gglops.data.evalsplit import EvalSplit
from gglops.model.bundle import save_bundle
from gglops.model.export import build_artifact
from gglops.stages.evaluate import PR_THRESHOLDS, SIZE_BINS, evaluate_model

PARAMS = Params().with_overrides({"data.layout": "nuaa-sirst", "data.split": "idx_427"})


@pytest.fixture(scope="module")
def bundle_and_onnx(synth_data: Path, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("eval-model")
    net = calibrated_model(synth_data, seed=5)
    bundle = save_bundle(net, tmp / "bundle", width_mult=0.25)
    onnx = build_artifact(net, tmp / "model.onnx", EvalSplit.load(synth_data).originals()).path
    return bundle, onnx


def test_bundle_and_onnx_give_the_same_metrics(bundle_and_onnx, synth_data: Path, tmp_path):
    bundle, onnx = bundle_and_onnx
    by_torch = evaluate_model(bundle, synth_data, PARAMS, plots_dir=tmp_path / "plots")
    by_onnx = evaluate_model(onnx, synth_data, PARAMS)
    assert by_torch.n_targets > 0 and by_torch.fa > 0  # a non-trivial prediction
    assert by_torch.scores() == by_onnx.scores()
    assert by_torch.data_hash == by_onnx.data_hash and by_torch.split == "idx_427"
    assert by_torch.fa_per_million == pytest.approx(by_torch.fa * 1e6)

    with (tmp_path / "plots" / "pr_curve.csv").open() as handle:
        pr = list(csv.DictReader(handle))
    assert [float(r["threshold"]) for r in pr] == list(PR_THRESHOLDS)
    recalls = [float(r["recall"]) for r in pr]
    assert recalls == sorted(recalls, reverse=True)  # recall falls as the threshold rises
    with (tmp_path / "plots" / "size_recall.csv").open() as handle:
        sizes = list(csv.DictReader(handle))
    assert [r["size_bin"] for r in sizes] == [name for name, _ in SIZE_BINS]
    assert sum(int(r["targets"]) for r in sizes) == by_torch.n_targets


def test_evaluate_cli_writes_the_convention(bundle_and_onnx, synth_data, tmp_path, gglops_cli):
    _, onnx = bundle_and_onnx
    out = tmp_path / "metrics.json"
    args = ["evaluate", str(onnx), str(synth_data), "--out", str(out)]
    code, text = gglops_cli([*args, "--params", "params.yaml"])
    assert code == 0, text
    metrics = json.loads(out.read_text())
    assert metrics["resolution"] == "original" and metrics["niou_empty_images"] == "count 0"
    assert metrics["fa_denominator"] == "all pixels at original size (BasicIRSTD)"
    assert metrics["n_images"] == 5 and metrics["split"] == "idx_427"


def test_evaluate_missing_model_is_exit_2(synth_data: Path, tmp_path: Path, gglops_cli) -> None:
    code, text = gglops_cli(["evaluate", str(tmp_path / "nope.onnx"), str(synth_data)])
    assert code == 2 and "nope.onnx" in text


def test_evaluate_bounds_image_size_reports_progress_and_says_no_targets(
    bundle_and_onnx, synth_data: Path, tmp_path: Path, gglops_cli, monkeypatch, reliability
) -> None:
    import shutil

    import numpy as np
    from PIL import Image

    from gglops.stages import evaluate

    _, onnx = bundle_and_onnx
    args = ["evaluate", str(onnx), str(synth_data), "--out", str(tmp_path / "m.json")]
    # Above the pixel limit (64x64 = 4096 px here): refused before any inference.
    monkeypatch.setenv("GGLOPS_MAX_IMAGE_PIXELS", "4000")
    code, text = gglops_cli([*args, "--params", "params.yaml"])
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in text, text
    assert "GGLOPS_MAX_IMAGE_PIXELS=4000" in lines[0] and "64x64" in lines[0], lines[0]
    assert not (tmp_path / "m.json").exists()
    reliability(
        "evaluate on an image above the pixel limit (GGLOPS_MAX_IMAGE_PIXELS; default 2048²)",
        f"exit {code} before inference; {lines[0][:200]}",
    )
    monkeypatch.delenv("GGLOPS_MAX_IMAGE_PIXELS")

    # A test split without a single target, and progress lines (every image: interval 0).
    empty = tmp_path / "no-targets"
    shutil.copytree(synth_data, empty)
    for mask in (empty / "masks").iterdir():
        size = Image.open(mask).size
        Image.fromarray(np.zeros(size[::-1], np.uint8)).save(mask)
    monkeypatch.setattr(evaluate, "PROGRESS_EVERY_S", 0.0)
    code, text = gglops_cli(["evaluate", str(onnx), str(empty), "--out", str(tmp_path / "e.json")])
    assert code == 0, text
    assert "has no targets: Pd is undefined" in text, text
    progress = [line for line in text.splitlines() if line.startswith("evaluate: ")]
    assert any("1/5 images" in line for line in progress), text
    assert json.loads((tmp_path / "e.json").read_text())["n_targets"] == 0
    reliability(
        "evaluate on a test split with no targets",
        "exit 0; says: the test split ... has no targets: Pd is undefined (written as 0.0)",
    )


def test_a_split_is_decoded_and_hashed_once_for_two_models_and_parity(
    bundle_and_onnx, synth_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What promotion does: candidate and champion evaluated, then ONNX parity, one read."""
    from gglops.data import dataset, evalsplit
    from gglops.stages.evaluate import prob_fn_for, score

    decoded: list[str] = []
    hashed: list[int] = []
    load_pair, manifest_of = dataset.load_pair, evalsplit.manifest_of
    monkeypatch.setattr(dataset, "load_pair", lambda s: decoded.append(s.stem) or load_pair(s))
    monkeypatch.setattr(evalsplit, "manifest_of", lambda i: hashed.append(1) or manifest_of(i))
    bundle, onnx = bundle_and_onnx
    test = EvalSplit.load(synth_data, "nuaa-sirst", "idx_427")
    first, second = (score(prob_fn_for(m), test, str(m)) for m in (bundle, onnx))
    originals = list(test.originals())
    assert first.scores() == second.scores() and first.data_hash == second.data_hash
    assert len(originals) == first.n_images == 5
    assert sorted(decoded) == sorted(s.stem for s in test.index.test) and hashed == [1]
