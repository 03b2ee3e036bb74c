"""IRSTD metrics against hand-computed cases."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from gglops.core.metrics import IRSTDMetrics, MetricState

SIZE = 32
PIXELS = SIZE * SIZE


def blank() -> np.ndarray:
    return np.zeros((SIZE, SIZE), dtype=np.float32)


def with_pixels(*points: tuple[int, int], value: float = 1.0) -> np.ndarray:
    image = blank()
    for row, col in points:
        image[row, col] = value
    return image


def scores(probs: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    metrics = IRSTDMetrics()
    metrics.update(probs, mask)
    return metrics.compute()


# A 10-pixel component with centroid (20, 12.9): row 20 cols 10..17, plus (19, 10), (21, 11).
COMPONENT_12_9 = [(20, c) for c in range(10, 18)] + [(19, 10), (21, 11)]


def test_perfect_prediction() -> None:
    mask = blank()
    mask[5:8, 5:8] = 1
    assert scores(mask * 0.9, mask) == {"miou": 1.0, "niou": 1.0, "pd": 1.0, "fa": 0.0}


def test_missed_target() -> None:
    mask = blank()
    mask[5:7, 5:7] = 1
    assert scores(blank(), mask) == {"miou": 0.0, "niou": 0.0, "pd": 0.0, "fa": 0.0}


def test_threshold_is_strictly_above_half() -> None:
    mask = with_pixels((4, 4))
    assert scores(with_pixels((4, 4), value=0.5), mask)["pd"] == 0.0
    assert scores(with_pixels((4, 4), value=0.51), mask)["pd"] == 1.0


@pytest.mark.parametrize(("true_col", "distance", "detected"), [(10, 2.9, True), (16, 3.1, False)])
def test_centroid_distance_decides_detection(
    true_col: int, distance: float, detected: bool
) -> None:
    probs = with_pixels(*COMPONENT_12_9)
    mask = with_pixels((20, true_col))
    assert abs(12.9 - true_col) == pytest.approx(distance)
    result = scores(probs, mask)
    assert result["pd"] == (1.0 if detected else 0.0)
    # An unmatched predicted component counts all its pixels as false alarms.
    assert result["fa"] == (0.0 if detected else 10 / PIXELS)
    # IoU is pixel-based: the true pixel lies inside the prediction either way.
    assert result["miou"] == pytest.approx(1 / 10)


def test_two_predictions_near_one_target_match_once() -> None:
    mask = with_pixels((10, 10))
    probs = with_pixels((10, 11), (12, 10))  # two components, both within 3 px
    metrics = IRSTDMetrics()
    metrics.update(probs, mask)
    result = metrics.compute()
    assert result["pd"] == 1.0
    assert result["fa"] == 1 / PIXELS
    assert metrics.state().false_alarm_pixels == 1
    assert metrics.state().detected == 1


def test_pure_false_alarm_and_empty_images() -> None:
    probs = blank()
    probs[2:5, 2:5] = 1.0  # 9 px, no target anywhere
    metrics = IRSTDMetrics()
    metrics.update(probs, blank())
    assert metrics.compute() == {"miou": 0.0, "niou": 0.0, "pd": 0.0, "fa": 9 / PIXELS}
    mask = with_pixels((8, 8), (8, 9))
    metrics.update(mask, mask)  # perfect, IoU 1
    metrics.update(blank(), blank())  # neither target nor prediction: IoU counts 0
    result = metrics.compute()
    assert result["niou"] == pytest.approx(1 / 3)
    assert result["miou"] == pytest.approx(2 / 11)
    assert result["pd"] == 1.0
    assert result["fa"] == pytest.approx(9 / (3 * PIXELS))


def test_multiple_targets_and_records() -> None:
    mask = blank()
    mask[2:4, 2:4] = 1  # 4 px, found
    mask[20:23, 20:23] = 1  # 9 px, missed
    mask[10, 25] = 1  # 1 px, found by a shifted prediction
    probs = blank()
    probs[2:4, 2:5] = 0.8
    probs[11, 26] = 0.7
    metrics = IRSTDMetrics()
    metrics.update(probs, mask)
    assert metrics.compute()["pd"] == pytest.approx(2 / 3)
    assert sorted(metrics.target_records()) == [(1, True), (4, True), (9, False)]


def random_batch(seed: int, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 1, SIZE, SIZE), dtype=np.float32)
    for image in masks:
        for _ in range(rng.integers(0, 4)):
            r, c = rng.integers(1, SIZE - 3, size=2)
            image[0, r : r + rng.integers(1, 3), c : c + rng.integers(1, 3)] = 1
    noise = rng.uniform(0, 0.3, size=masks.shape) + rng.uniform(0, 1, size=masks.shape) ** 8
    probs = np.clip(masks * rng.uniform(0.3, 1.0, size=masks.shape) + noise, 0, 1)
    return probs.astype(np.float32), masks


def test_numpy_torch_and_shapes_agree() -> None:
    probs, masks = random_batch(0)
    reference = IRSTDMetrics()
    reference.update(probs, masks)
    variants = [
        (torch.from_numpy(probs), torch.from_numpy(masks)),
        (probs[:, 0], masks[:, 0]),
        (torch.from_numpy(probs).double(), masks.astype(bool)),
    ]
    for p, m in variants:
        metrics = IRSTDMetrics()
        metrics.update(p, m)
        assert metrics.state() == reference.state()
    per_image = IRSTDMetrics()
    for p, m in zip(probs, masks, strict=True):
        per_image.update(p[0], torch.from_numpy(m[0]))
    assert per_image.compute() == reference.compute()
    assert per_image.target_records() == reference.target_records()
    assert reference.state().targets > 0 and 0 < reference.compute()["miou"] < 1


def test_merging_halves_equals_one_pass() -> None:
    probs, masks = random_batch(1, n=8)
    whole = IRSTDMetrics()
    whole.update(probs, masks)
    first, second = IRSTDMetrics(), IRSTDMetrics()
    first.update(probs[:4], masks[:4])
    second.update(probs[4:], masks[4:])
    assert same(first.state() + second.state(), whole.state())
    merged = IRSTDMetrics.from_states([first.state(), second.state()])
    assert merged.compute() == pytest.approx(whole.compute())
    # What distributed validation does: all-reduce (sum) the vectors of the workers.
    reduced = torch.from_numpy(first.state().to_vector() + second.state().to_vector())
    assert same(MetricState.from_vector(reduced), whole.state())
    first.merge(second)
    assert same(first.state(), whole.state())
    assert first.target_records() == whole.target_records()
    assert whole.state().images == 8 and whole.state().targets > 0


def same(a: MetricState, b: MetricState) -> bool:
    """Equal sums; the float IoU sum only up to the order of additions."""
    return asdict(a) == pytest.approx(asdict(b))


def test_reset_and_empty() -> None:
    metrics = IRSTDMetrics()
    assert metrics.compute() == {"miou": 0.0, "niou": 0.0, "pd": 0.0, "fa": 0.0}
    metrics.update(with_pixels((1, 1)), with_pixels((1, 1)))
    metrics.reset()
    assert metrics.state() == MetricState()
    assert metrics.target_records() == []


def test_bad_shapes_are_refused() -> None:
    metrics = IRSTDMetrics()
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.update(blank(), np.zeros((SIZE, SIZE + 1)))
    with pytest.raises(ValueError, match="probs must be"):
        metrics.update(np.zeros((2, 3, SIZE, SIZE)), np.zeros((2, 3, SIZE, SIZE)))
