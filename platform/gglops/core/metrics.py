"""IRSTD metrics as the literature computes them: mIoU, nIoU, Pd and Fa.

- mIoU: total intersection / total union over all pixels of all images.
- nIoU: mean of per-image IoU; an image with neither a target nor a prediction counts 0,
  as the literature's code does (reports say so).
- Pd: true and predicted targets are 8-connected components; walking the true targets in
  label (raster) order, each takes the first not-yet-matched predicted component whose
  centroid lies closer than 3 px to its own, as BasicIRSTD does.
- Fa: pixels of predicted components that matched no true target / all pixels.

Everything is kept as sums (`MetricState`), so workers can all-reduce them and merge.
"""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

THRESHOLD = 0.5
MATCH_DISTANCE = 3.0  # px, strict: a centroid at exactly 3 px does not match
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def fa_text(fa: float) -> str:
    """Fa (a fraction of pixels) as every command prints it: ×10⁻⁶, two decimals, `43.12e-6`."""
    return f"{fa * 1e6:.2f}e-6"


def metric_text(name: str, value: float) -> str:
    """miou/niou/pd with four decimals, fa as `fa_text`: one format in every command."""
    return fa_text(value) if name == "fa" else f"{value:.4f}"


@dataclass(frozen=True)
class MetricState:
    """Additive sums from which every metric follows; `+` merges two states."""

    intersection: int = 0
    union: int = 0
    iou_sum: float = 0.0
    images: int = 0
    targets: int = 0
    detected: int = 0
    false_alarm_pixels: int = 0
    pixels: int = 0

    def __add__(self, other: MetricState) -> MetricState:
        return MetricState(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def to_vector(self) -> np.ndarray:
        """The sums as one float64 vector (exact for counts below 2**53), for all-reduce."""
        return np.array(astuple(self), dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: Any) -> MetricState:
        """Inverse of `to_vector` (accepts any 1-D sequence, e.g. a reduced tensor)."""
        if hasattr(vector, "cpu"):  # a torch tensor, possibly on the GPU after all-reduce
            vector = vector.cpu()
        names = [f.name for f in fields(cls)]
        values = np.asarray(vector, dtype=np.float64).tolist()
        sums = dict(zip(names, values, strict=True))
        return cls(**{k: v if k == "iou_sum" else round(v) for k, v in sums.items()})

    def scores(self) -> dict[str, float]:
        """mIoU, nIoU, Pd, Fa; each is 0.0 when its denominator is empty."""
        return {
            "miou": _ratio(self.intersection, self.union),
            "niou": _ratio(self.iou_sum, self.images),
            "pd": _ratio(self.detected, self.targets),
            "fa": _ratio(self.false_alarm_pixels, self.pixels),
        }


@dataclass(frozen=True)
class ImageResult:
    """One image's contribution: its sums and, per true target, (area, detected)."""

    state: MetricState
    targets: list[tuple[int, bool]]


class IRSTDMetrics:
    """Accumulates predictions and masks; `compute()` gives {"miou", "niou", "pd", "fa"}."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._state = MetricState()
        self._targets: list[tuple[int, bool]] = []

    def update(self, probs: Any, masks: Any) -> None:
        """Add images: probabilities in [0, 1] (> 0.5 is a target) and binary masks.

        Shapes (H, W), (N, H, W) or (N, 1, H, W); numpy arrays or torch tensors.
        """
        preds = _as_batch(probs, "probs") > THRESHOLD
        truths = _as_batch(masks, "masks") > THRESHOLD
        if preds.shape != truths.shape:
            raise ValueError(f"probs {preds.shape} and masks {truths.shape} differ in shape")
        for pred, truth in zip(preds, truths, strict=True):
            result = score_image(pred, truth)
            self._state += result.state
            self._targets.extend(result.targets)

    def state(self) -> MetricState:
        return self._state

    def compute(self) -> dict[str, float]:
        return self._state.scores()

    def target_records(self) -> list[tuple[int, bool]]:
        """(area in pixels, detected) for every true target seen, for per-size recall."""
        return list(self._targets)

    def merge(self, other: IRSTDMetrics) -> None:
        """Add another accumulator's sums and target records to this one."""
        self._state += other._state
        self._targets.extend(other._targets)

    @classmethod
    def from_states(cls, states: list[MetricState]) -> IRSTDMetrics:
        """An accumulator holding the sum of `states` (e.g. one per worker; no records)."""
        metrics = cls()
        for state in states:
            metrics._state += state
        return metrics

    def __repr__(self) -> str:
        return f"IRSTDMetrics({asdict(self._state)})"


def score_image(pred: np.ndarray, truth: np.ndarray) -> ImageResult:
    """Sums and target records for one boolean (H, W) prediction against its mask."""
    intersection = int(np.count_nonzero(pred & truth))
    union = int(np.count_nonzero(pred | truth))
    true_areas, true_centroids = _components(truth)
    pred_areas, pred_centroids = _components(pred)
    matched = _match(true_centroids, pred_centroids)
    detected = matched >= 0
    unmatched_pred = np.ones(len(pred_areas), dtype=bool)
    unmatched_pred[matched[detected]] = False
    state = MetricState(
        intersection=intersection,
        union=union,
        iou_sum=intersection / union if union else 0.0,
        images=1,
        targets=len(true_areas),
        detected=int(detected.sum()),
        false_alarm_pixels=int(pred_areas[unmatched_pred].sum()),
        pixels=pred.size,
    )
    records = [(int(a), bool(d)) for a, d in zip(true_areas, detected, strict=True)]
    return ImageResult(state=state, targets=records)


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas (n,) and centroids (n, 2) of the 8-connected components, in label order."""
    labels, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2))
    index = np.arange(1, count + 1)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    centroids = np.array(ndimage.center_of_mass(binary, labels, index), dtype=np.float64)
    return areas, centroids


def _match(true_centroids: np.ndarray, pred_centroids: np.ndarray) -> np.ndarray:
    """For each true target, the index of the predicted component it takes, or -1."""
    taken = np.zeros(len(pred_centroids), dtype=bool)
    matched = np.full(len(true_centroids), -1, dtype=np.int64)
    for i, centroid in enumerate(true_centroids):
        distance = np.linalg.norm(pred_centroids - centroid, axis=1)
        candidates = np.flatnonzero(~taken & (distance < MATCH_DISTANCE))
        if candidates.size:
            matched[i] = candidates[0]
            taken[candidates[0]] = True
    return matched


def _as_batch(values: Any, name: str) -> np.ndarray:
    """A numpy (N, H, W) view of an (H, W), (N, H, W) or (N, 1, H, W) array or tensor."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().float().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be (H, W), (N, H, W) or (N, 1, H, W), got {array.shape}")
    return array


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0
