"""train.ema: the weight average that validation scores and checkpoints ship."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers.training import tiny_params
from torch import nn

from gglops.model.bundle import load_bundle
from gglops.stages.train.averaging import WARMUP, WeightAverage
from gglops.stages.train.checkpointing import restore_checkpoint, save_checkpoint
from gglops.stages.train.session import build_session


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))


def test_update_moves_each_float_tensor_toward_the_live_one_by_one_minus_decay() -> None:
    live = _net()
    average = WeightAverage(live, decay=0.9)
    before = {k: v.clone() for k, v in average.net.state_dict().items()}
    with torch.no_grad():
        for param in live.parameters():
            param.add_(1.0)
    live.train()(torch.randn(4, 1, 5, 5))  # moves BN's running stats and its batch count
    expected_decay = min(0.9, 1 / WARMUP)  # the first update is in the warm-up
    average.update(live)
    for key, value in average.net.state_dict().items():
        target = live.state_dict()[key]
        if value.is_floating_point():
            want = before[key] + (target - before[key]) * (1 - expected_decay)
            torch.testing.assert_close(value, want)
        else:
            assert torch.equal(value, target)  # num_batches_tracked is copied
    assert not any(p.requires_grad for p in average.net.parameters())
    # Past the warm-up the set decay holds.
    average.updates = 1000
    assert average.current_decay() == 0.9


def test_validation_scores_the_average_and_a_checkpoint_resumes_it_exactly(
    synth_data: Path, tmp_path: Path
) -> None:
    params = tiny_params(synth_data, **{"train.epochs": 2, "train.ema": 0.9})
    straight = build_session(params, synth_data)
    assert straight.average is not None
    straight.train_epoch(0)
    live_after_one = {k: v.clone() for k, v in straight.net.state_dict().items()}
    save_checkpoint(tmp_path, straight, 0, [], [])
    # The bundle ships the average, not the live weights.
    shipped = load_bundle(tmp_path).state_dict()
    for key, value in straight.average.net.state_dict().items():
        assert torch.equal(shipped[key], value)
    assert any(
        not torch.equal(shipped[k], v) for k, v in live_after_one.items() if v.is_floating_point()
    )
    straight.train_epoch(1)

    resumed = build_session(params, synth_data)
    restore_checkpoint(tmp_path, resumed, restore_rng=True)
    assert resumed.average is not None
    assert resumed.average.updates == straight.average.updates - len(straight.loader)
    for key, value in resumed.net.state_dict().items():
        assert torch.equal(value, live_after_one[key])
    resumed.train_epoch(1)
    for key, value in straight.average.net.state_dict().items():
        assert torch.equal(resumed.average.net.state_dict()[key], value), key
    assert straight.validate() == resumed.validate()
