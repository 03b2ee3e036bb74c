"""Training/eval datasets, augmentations and the pad → predict → crop round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gglops.data.dataset import EvalDataset, TrainDataset
from gglops.data.layouts import resolve_layout
from gglops.data.transforms import Affine, Flip, Rot90, Transpose, augment, draw_plan
from gglops.model.inference import pad_to_multiple, predict_probs, torch_prob_fn


@pytest.fixture(scope="module")
def samples(synth_data: Path):
    return resolve_layout(synth_data).train


def _epoch(dataset: TrainDataset, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dataset.set_epoch(epoch)
    return [dataset[i] for i in range(len(dataset))]


def test_augmentation_is_deterministic_per_seed_epoch_index(samples) -> None:
    a = TrainDataset(samples, image_size=32, augment_p=1.0, seed=7)
    b = TrainDataset(samples, image_size=32, augment_p=1.0, seed=7)
    first, again = _epoch(a, 3), _epoch(b, 3)
    assert all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
        for x, y in zip(first, again, strict=True)
    )
    later = _epoch(a, 4)
    assert (
        sum(not torch.equal(x[0], y[0]) for x, y in zip(first, later, strict=True))
        >= len(first) // 2
    )


def test_shapes_ranges_and_binary_masks(samples) -> None:
    dataset = TrainDataset(samples, image_size=48, augment_p=1.0, seed=0)
    for epoch in range(3):
        for image, mask in _epoch(dataset, epoch):
            assert image.shape == (3, 48, 48) and mask.shape == (1, 48, 48)
            assert image.dtype == mask.dtype == torch.float32
            assert image.min() >= 0 and image.max() <= 1
            assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_p_zero_is_a_plain_resize(samples) -> None:
    plain = TrainDataset(samples, image_size=64, augment_p=0.0, seed=1)
    eval_image, eval_mask, _ = EvalDataset(samples)[0]  # synth_data is 64 px already
    for epoch in (0, 5):
        image, mask = _epoch(plain, epoch)[0]
        assert torch.equal(image, eval_image) and torch.equal(mask, eval_mask)


def test_geometry_moves_image_and_mask_together() -> None:
    image = torch.zeros(3, 16, 16)
    mask = torch.zeros(1, 16, 16)
    image[:, 2, 5], mask[:, 2, 5] = 1.0, 1.0
    plan = (Flip(-1), Transpose(), Rot90(1), Affine(angle=10.0, scale=1.05))
    out_image, out_mask = augment(image, mask, plan)
    assert out_mask.sum() >= 1
    peak = np.unravel_index(int(out_image[0].argmax()), (16, 16))
    assert out_mask[0][peak] == 1.0


def test_plans_depend_only_on_the_generator() -> None:
    first = [draw_plan(np.random.default_rng(i)) for i in range(50)]
    again = [draw_plan(np.random.default_rng(i)) for i in range(50)]
    assert first == again and any(first) and not all(first)


def test_pad_mode_crops_without_rescaling(samples) -> None:
    dataset = TrainDataset(samples, image_size=80, fit="pad", augment_p=0.0, seed=0)
    image, mask = dataset[0]
    assert image.shape == (3, 80, 80) and mask.shape == (1, 80, 80)
    assert image[:, 64:, :].abs().sum() == 0 and image[:, :, 64:].abs().sum() == 0  # zero pad
    assert mask[:, 64:, :].sum() == 0


def test_set_epoch_reaches_persistent_workers(samples) -> None:
    dataset = TrainDataset(samples[:4], image_size=32, augment_p=1.0, seed=2)
    loader = DataLoader(dataset, batch_size=4, num_workers=1, persistent_workers=True)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        ((images, _),) = list(loader)
        expected = torch.stack([dataset[i][0] for i in range(4)])
        assert torch.equal(images, expected)


def test_eval_dataset_keeps_original_size(tmp_path: Path) -> None:
    from gglops.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=4, size=40, seed=0)
    image, mask, stem = EvalDataset(resolve_layout(root).test)[0]
    assert image.shape == (3, 40, 40) and mask.shape == (1, 40, 40) and stem.startswith("Misc_")


def test_predict_probs_pads_to_32_and_crops_back() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((3, 37, 50), dtype=np.float32)
    seen: list[tuple[int, ...]] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return batch[:, :1]  # "probability" = channel 0, so the crop must return the input

    probs = predict_probs(fn, torch.from_numpy(image))
    assert seen == [(1, 3, 64, 64)]
    np.testing.assert_array_equal(probs, image[0])
    padded, original = pad_to_multiple(image[None])
    assert original == (37, 50) and padded.shape == (1, 3, 64, 64)
    assert padded[..., 37:, :].sum() == 0 and padded[..., 50:].sum() == 0


def test_torch_prob_fn_applies_sigmoid_at_original_size() -> None:
    model = torch.nn.Conv2d(3, 1, 3, padding=1).eval()
    image = np.random.default_rng(1).random((3, 21, 30), dtype=np.float32)
    probs = predict_probs(torch_prob_fn(model), image)
    padded, _ = pad_to_multiple(image[None])
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(padded)))[0, 0, :21, :30].numpy()
    assert probs.shape == (21, 30)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
