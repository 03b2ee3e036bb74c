"""Evaluate any MODEL reference on a test split under a named protocol (`data.eval_protocol`).

`original` (default): each image at its own resolution. `resized` (the GGL-Net authors'):
test images and masks resized to `data.image_size` first, so Fa divides by resized pixels.
The same code path as training validation: `EvalDataset` then `predict_probs` (pad to 16,
predict, crop back) feeding `IRSTDMetrics`. Besides the metrics, pixel counts at several
thresholds give a precision/recall curve, and the per-target records give recall per target
size (DVC plots).
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from gglops.core.errors import DataError
from gglops.core.files import atomic_path
from gglops.core.metrics import THRESHOLD, IRSTDMetrics
from gglops.core.params import EvalProtocol, Params
from gglops.data.evalsplit import EvalSplit
from gglops.model.inference import ProbFn, predict_probs

log = logging.getLogger(__name__)

PR_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))
# Target-size bins in pixels (upper bound inclusive): point-like to extended targets.
SIZE_BINS: tuple[tuple[str, int], ...] = (
    ("1-4", 4),
    ("5-9", 9),
    ("10-19", 19),
    ("20-39", 39),
    ("40-79", 79),
    ("80+", 1 << 62),
)
PR_CSV, SIZE_CSV = "pr_curve.csv", "size_recall.csv"
# How each protocol's numbers were measured, as metrics.json states it ({size}: data.image_size).
RESOLUTIONS: dict[EvalProtocol, str] = {"original": "original", "resized": "{size}x{size}"}
FA_DENOMINATORS: dict[EvalProtocol, str] = {
    "original": "all pixels at original size (BasicIRSTD)",
    "resized": "all pixels at {size}x{size} per image (MSDA-Net)",
}


class EvalResult(BaseModel):
    """metrics.json: the four metrics plus the convention they were measured under."""

    model_config = ConfigDict(frozen=True)

    miou: float
    niou: float
    pd: float
    fa: float
    fa_per_million: float
    n_images: int
    n_targets: int
    n_pixels: int  # Fa's denominator: pixels of the split as evaluated (see eval_protocol)
    model: str
    data_root: str
    layout: str
    split: str | None
    split_part: Literal["test"] = "test"
    data_hash: str
    threshold: float = THRESHOLD
    eval_protocol: EvalProtocol = "original"
    eval_size: int | None = None  # the side test images were resized to (resized protocol)
    resolution: str = RESOLUTIONS["original"]
    fa_denominator: str = FA_DENOMINATORS["original"]
    niou_empty_images: str = "count 0"
    pd_rule: str = "8-connected components, centroid distance < 3 px"
    # data.selection of the params the model was evaluated with: which split chose it.
    model_selection: str | None = None

    def scores(self) -> dict[str, float]:
        return {"miou": self.miou, "niou": self.niou, "pd": self.pd, "fa": self.fa}


@dataclass
class Evaluation:
    """Everything one pass over a split accumulates."""

    metrics: IRSTDMetrics = field(default_factory=IRSTDMetrics)
    thresholds: tuple[float, ...] = PR_THRESHOLDS
    tp: np.ndarray = field(default_factory=lambda: np.zeros(len(PR_THRESHOLDS), np.int64))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(len(PR_THRESHOLDS), np.int64))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(len(PR_THRESHOLDS), np.int64))

    def add(self, probs: np.ndarray, mask: np.ndarray) -> None:
        self.metrics.update(probs, mask)
        truth = mask > THRESHOLD
        for i, t in enumerate(self.thresholds):
            pred = probs > t
            self.tp[i] += int((pred & truth).sum())
            self.fp[i] += int((pred & ~truth).sum())
            self.fn[i] += int((~pred & truth).sum())

    def pr_rows(self) -> list[dict[str, float]]:
        rows = []
        for i, t in enumerate(self.thresholds):
            tp, fp, fn = int(self.tp[i]), int(self.fp[i]), int(self.fn[i])
            precision = tp / (tp + fp) if tp + fp else 1.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            rows.append({"threshold": t, "precision": precision, "recall": recall})
        return rows

    def size_rows(self) -> list[dict[str, float | int | str]]:
        records = self.metrics.target_records()
        rows: list[dict[str, float | int | str]] = []
        low = 1
        for name, high in SIZE_BINS:
            hits = [detected for area, detected in records if low <= area <= high]
            recall = sum(hits) / len(hits) if hits else 0.0
            rows.append({"size_bin": name, "targets": len(hits), "recall": recall})
            low = high + 1
        return rows


def prob_fn_for(ref: str | Path, tracking_uri: str | None = None) -> ProbFn:
    """A ProbFn for any MODEL reference: torch for bundles/MLflow models, onnxruntime for .onnx."""
    from gglops.adapters.tracking import model_fetcher
    from gglops.model.reference import resolve_model

    model_ref = resolve_model(ref, model_fetcher(tracking_uri))
    if model_ref.kind == "onnx":
        from gglops.model.export import onnx_prob_fn

        return onnx_prob_fn(model_ref.path)
    from gglops.model.bundle import load_bundle
    from gglops.model.inference import torch_prob_fn

    return torch_prob_fn(load_bundle(model_ref.path))


def protocol_fields(size: int | None) -> dict[str, Any]:
    """The EvalResult fields naming the protocol: `size` None = original, else resized."""
    protocol: EvalProtocol = "original" if size is None else "resized"
    return {
        "eval_protocol": protocol,
        "eval_size": size,
        "resolution": RESOLUTIONS[protocol].format(size=size),
        "fa_denominator": FA_DENOMINATORS[protocol].format(size=size),
    }


PIXEL_SETTING = "GGLOPS_MAX_IMAGE_PIXELS"
PROGRESS_EVERY_S = 10.0  # a long evaluation says how far it is at most this often


def check_image_sizes(samples: Sequence, max_pixels: int) -> None:
    """Refuse, before any compute, an image whose full-resolution inference would need more
    memory than `max_pixels` allows (the header is read, not the pixels)."""
    from PIL import Image

    for sample in samples:
        try:
            with Image.open(sample.image) as img:
                w, h = img.size
        except (OSError, ValueError):
            continue  # unreadable: the image reader's own one-line error comes later
        if w * h > max_pixels:
            raise DataError(
                f"{sample.image}: {w}x{h} = {w * h / 1e6:.1f} Mpx is above {PIXEL_SETTING}="
                f"{max_pixels} ({max_pixels / 1e6:.1f} Mpx, ~{max_pixels * 180 / 2**30:.1f} GiB "
                "at ~180 B/px); raise the setting or use data.eval_protocol=resized"
            )


def evaluate_split(
    fn: ProbFn,
    test: EvalSplit,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """One pass of `fn` over `test`, at original size or (test.size set) resized.

    At original size, images above `max_pixels` (default: the GGLOPS_MAX_IMAGE_PIXELS
    setting) are refused first. `progress(done, total)` after each image; without it, a
    pass longer than PROGRESS_EVERY_S logs a line now and then."""
    samples = test.index.test
    if test.size is None:
        if max_pixels is None:
            from gglops.core.settings import load_settings

            max_pixels = load_settings().max_image_pixels
        check_image_sizes(samples, max_pixels)
    evaluation, start, said = Evaluation(), time.monotonic(), 0.0
    for i, (image, mask, _stem) in enumerate(test.dataset, start=1):
        evaluation.add(predict_probs(fn, image), mask.numpy().reshape(mask.shape[-2:]))
        if progress is not None:
            progress(i, len(samples))
            continue
        elapsed = time.monotonic() - start
        if elapsed - said >= PROGRESS_EVERY_S and i < len(samples):
            said = elapsed
            left = elapsed / i * (len(samples) - i)
            log.info("evaluate: %d/%d images, %.0f s, ~%.0f s left", i, len(samples), elapsed, left)
    return evaluation


def evaluate_model(
    model: str | Path,
    data_root: Path,
    params: Params,
    plots_dir: Path | None = None,
    tracking_uri: str | None = None,
    layout: str | None = None,
    split: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Metrics of `model` on the test split of `data_root` (layout/split default to params),
    under `params.data.eval_protocol`."""
    layout = layout or params.data.layout
    split = split if split is not None else params.data.split
    test = EvalSplit.load(Path(data_root), layout, split, params.data.eval_size, params.data.custom)
    result = score(prob_fn_for(model, tracking_uri), test, str(model), plots_dir, progress)
    return result.model_copy(update={"model_selection": params.data.selection})


def score(
    fn: ProbFn,
    test: EvalSplit,
    model: str,
    plots_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate `fn` on `test` → EvalResult (and DVC plot data in `plots_dir`)."""
    evaluation = evaluate_split(fn, test, progress=progress)
    if plots_dir is not None:
        write_eval_plots(evaluation, plots_dir)
    result = result_of(evaluation, test, model)
    if result.n_targets == 0:
        log.warning(
            "evaluate: the test split of %s has no targets: Pd is undefined (written as 0.0); "
            "mIoU/nIoU/Fa count false alarms only",
            test.index.root,
        )
    return result


def result_of(evaluation: Evaluation, test: EvalSplit, model: str) -> EvalResult:
    """The EvalResult of a finished pass over `test`."""
    index = test.index
    scores = evaluation.metrics.compute()
    return EvalResult(
        **scores,  # type: ignore[arg-type]  # miou, niou, pd, fa: floats
        fa_per_million=scores["fa"] * 1e6,
        n_images=len(index.test),
        n_targets=len(evaluation.metrics.target_records()),
        n_pixels=evaluation.metrics.state().pixels,
        model=model,
        data_root=str(Path(index.root).absolute()),
        layout=index.layout,
        split=index.split,
        data_hash=test.manifest.data_hash,
        **protocol_fields(test.size),
    )


def write_eval_plots(evaluation: Evaluation, plots_dir: Path) -> None:
    """DVC plot data: pr_curve.csv (x recall, y precision) and size_recall.csv."""
    _write_csv(plots_dir / PR_CSV, evaluation.pr_rows())
    _write_csv(plots_dir / SIZE_CSV, evaluation.size_rows())


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
