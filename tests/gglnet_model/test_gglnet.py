"""GGL-Net: faithfulness to the reference (parameter count), shapes, gradient branch, losses."""

from __future__ import annotations

import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from torch import nn

import gglnet
from gglnet import LOSSES, GGLNet, ProbabilityModel, gradient_magnitude
from gglnet.blocks import ChannelGate, SpatialGate
from gglnet.losses import (
    batch_soft_iou_loss,
    bce_batch_soft_iou_loss,
    bce_soft_iou_loss,
    soft_iou_loss,
)
from gglops.core.params import TrainParams

REFERENCE_PARAMETERS = 8_988_093


@pytest.fixture(scope="module")
def default_model() -> GGLNet:
    torch.manual_seed(0)
    return GGLNet().eval()


def test_default_model_has_the_reference_parameter_count(default_model: GGLNet) -> None:
    assert gglnet.count_parameters(default_model) == REFERENCE_PARAMETERS


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 3, 256, 256), (1, 1, 256, 256)), ((2, 3, 64, 96), (2, 1, 64, 96))],
)
def test_output_shape(default_model: GGLNet, shape: tuple, expected: tuple) -> None:
    with torch.no_grad():
        logits = default_model(torch.rand(shape))
    assert tuple(logits.shape) == expected
    assert torch.isfinite(logits).all()


def test_sizes_not_divisible_by_16_are_refused(default_model: GGLNet) -> None:
    with pytest.raises(ValueError, match=r"divisible by 16, got 100×100; pad or resize"):
        default_model(torch.rand(1, 3, 100, 100))
    with pytest.raises(ValueError, match=r"got 64×72"):
        default_model(torch.rand(1, 3, 64, 72))


def test_gradient_magnitude_by_hand() -> None:
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    # gx² + gy², computed by hand with zero padding outside the image.
    squares = torch.tensor([[5.0, 7.25, 10.0], [15.25, 10.0, 15.25], [20.0, 7.25, 25.0]])
    assert torch.allclose(gradient_magnitude(x)[0, 0], squares.sqrt())
    # Per channel: a second channel does not change the first.
    pair = torch.cat([x, torch.zeros_like(x)], dim=1)
    g = gradient_magnitude(pair)
    assert torch.allclose(g[:, :1], gradient_magnitude(x))
    assert torch.count_nonzero(g[:, 1]) == 0


def test_gradient_magnitude_of_a_single_spot() -> None:
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 2.0
    g = gradient_magnitude(x)[0, 0]
    expected = torch.zeros(5, 5)
    expected[1, 2] = expected[3, 2] = expected[2, 1] = expected[2, 3] = 1.0
    assert torch.allclose(g, expected)


def test_soft_iou_loss_values() -> None:
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, :2, :2] = 1
    perfect = torch.where(target > 0, 30.0, -30.0)
    assert soft_iou_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    opposite = -perfect
    # Nothing overlaps: 1 − (0 + 1) / (12 + 4 + 1).
    assert soft_iou_loss(opposite, target).item() == pytest.approx(1 - 1 / 17, abs=1e-6)
    # p = 0.5 everywhere: Σp = 8, Σt = 4, Σp·t = 2 → 1 − 3 / 11.
    half = torch.zeros_like(target)
    assert soft_iou_loss(half, target).item() == pytest.approx(8 / 11)
    assert bce_soft_iou_loss(half, target).item() == pytest.approx(math.log(2) + 8 / 11)


def test_soft_iou_is_a_mean_of_per_image_ratios() -> None:
    target = torch.zeros(2, 1, 4, 4)
    target[0, :, :2, :2] = 1  # image 2 has no target
    logits = torch.where(target > 0, 30.0, -30.0)
    # image 1 is perfect (ratio 1), image 2 empty/empty (ratio (0+1)/(0+1) = 1).
    assert soft_iou_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    logits[1, 0, 0, 0] = 30.0  # one false pixel in image 2: ratio 1/2
    assert soft_iou_loss(logits, target).item() == pytest.approx(0.25, abs=1e-6)


def test_batch_soft_iou_is_one_ratio_over_the_batch() -> None:
    target = torch.zeros(2, 1, 4, 4)
    target[0, :, :2, :2] = 1  # image 2 has no target
    logits = torch.where(target > 0, 30.0, -30.0)
    logits[1, 0, 0, 0] = 30.0  # one false pixel in image 2: (4 + 1) / (5 + 1) over the batch
    assert batch_soft_iou_loss(logits, target).item() == pytest.approx(1 / 6, abs=1e-6)
    half = torch.zeros_like(target)  # Σp = 16, Σt = 4, Σp·t = 2 → 1 − 3 / 19
    assert bce_batch_soft_iou_loss(half, target).item() == pytest.approx(math.log(2) + 16 / 19)


def _pulls(loss_fn: gglnet.Loss) -> tuple[float, float]:
    """(mean |gradient| on the target pixels, mean |gradient| on the empty crop's pixels) for
    a crop holding a 3x3 target beside a crop without one, every logit at −8 (p ≈ 3e-4: where
    the stalled SIRST run's logits sat after two epochs)."""
    target = torch.zeros(2, 1, 32, 32)
    target[0, :, 10:13, 10:13] = 1
    logits = torch.full_like(target, -8.0, requires_grad=True)
    loss_fn(logits, target).backward()
    assert logits.grad is not None
    grad = logits.grad.abs()
    return grad[0][target[0] > 0].mean().item(), grad[1].mean().item()


def test_an_empty_crop_outpulls_the_target_per_image_but_not_over_the_batch() -> None:
    # Why patch training uses the batch-level ratio (docs/recipe.md): per image, the empty
    # crop's background is pushed down harder than the target is pulled up.
    target_pull, empty_push = _pulls(soft_iou_loss)
    assert empty_push > target_pull
    target_pull, empty_push = _pulls(batch_soft_iou_loss)
    assert target_pull > 10 * empty_push


def test_losses_mapping_matches_params_names() -> None:
    assert set(LOSSES) == set(typing.get_args(TrainParams.model_fields["loss"].annotation))
    assert LOSSES["soft_iou"] is gglnet.soft_iou_loss


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_gradients_reach_every_parameter(loss_name: str) -> None:
    torch.manual_seed(0)
    model = GGLNet(width_mult=0.25).train()
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 10:13, 20:23] = 1
    loss = LOSSES[loss_name](model(torch.rand(2, 3, 32, 32)), target)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(p.grad.abs().sum().item() for p in model.parameters()) > 0


def test_small_width_runs_and_is_much_smaller() -> None:
    small = GGLNet(width_mult=0.25).eval()
    assert gglnet.count_parameters(small) < REFERENCE_PARAMETERS / 10
    tiny = GGLNet(width_mult=0.01).eval()  # every width clamps to 1 channel
    with torch.no_grad():
        assert small(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)
        assert tiny(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_single_channel_input() -> None:
    model = GGLNet(in_channels=1, width_mult=0.25).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_probability_model_is_the_sigmoid_of_the_logits() -> None:
    model = GGLNet(width_mult=0.25).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        probs = ProbabilityModel(model)(x)
        assert torch.allclose(probs, torch.sigmoid(model(x)))
    assert probs.min() >= 0 and probs.max() <= 1


def test_initialisation_follows_the_reference() -> None:
    model = GGLNet(width_mult=0.25)
    gates = [m for m in model.modules() if isinstance(m, ChannelGate | SpatialGate)]
    gate_convs = {id(c) for g in gates for c in g.modules() if isinstance(c, nn.Conv2d)}
    # The reference never initialises its attention gates: PyTorch's default (a uniform bias
    # for the spatial 7×7 conv, weights within ±1/sqrt(fan_in)), 3 convs per fusion module.
    assert len(gate_convs) == 3 * len(model.fusions)
    spatial = [g.conv for g in gates if isinstance(g, SpatialGate)]
    assert all(torch.count_nonzero(c.bias) > 0 for c in spatial)
    for conv in (c for g in gates for c in g.modules() if isinstance(c, nn.Conv2d)):
        fan_in = conv.weight[0].numel()
        assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-6
    # The prediction conv (16 → 1): fan-in, so no seed starts with saturated logits, and a
    # bias calibrated to the prior (test_every_seed_starts_at_the_prior).
    prediction = model.head[-1]
    assert prediction.weight.std().item() == pytest.approx(math.sqrt(2 / 4), rel=0.5)  # 4 in
    assert prediction.bias.item() != 0
    skip = gate_convs | {id(prediction)}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in skip]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs if m.bias is not None)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)
    # Kaiming fan_out: std ≈ sqrt(2 / (out_channels · k²)) for the widest 3×3 conv.
    widest = max(convs, key=lambda m: m.weight.numel())
    fan_out = widest.out_channels * widest.kernel_size[0] * widest.kernel_size[1]
    assert widest.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)


def test_gglnet_never_imports_gglops() -> None:
    sources = Path(gglnet.__file__).parent.glob("*.py")
    assert not [p.name for p in sources if "gglops" in p.read_text()]
    code = "import sys, gglnet; print(sorted(m for m in sys.modules if m.startswith('gglops')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _synthetic_batch(tmp_path: Path) -> torch.Tensor:
    from gglops.data.dataset import load_pair
    from gglops.data.layouts import resolve_layout
    from gglops.data.synth import synthesize

    root = synthesize(tmp_path / "s", 12, 64, 3)
    return torch.stack([load_pair(s)[0] for s in resolve_layout(root).train[:2]])


def test_every_seed_starts_at_the_prior(tmp_path: Path) -> None:
    """On real images in train mode (what the first training step sees), over seeds 0..15:

    - ours (fan-in weights, `calibrate_prior`): the mean start logit is logit(PRIOR) within
      0.75 and under 15 % of pixels are predicted target;
    - the same weights with bias 0 start half the seeds with most pixels predicted target,
      which soft IoU drains only slowly;
    - the reference's fan-out puts whole images many logits away (the collapse of seed 1).
    (docs/recipe.md)"""
    from gglnet.model import PRIOR, init_weights

    images = _synthetic_batch(tmp_path)
    prior_logit = math.log(PRIOR / (1 - PRIOR))
    starts, zero_bias, fan_out = [], [], []
    for seed in range(16):
        torch.manual_seed(seed)
        net = GGLNet().train()
        with torch.no_grad():
            logits = net(images)
            starts.append((logits.mean().item(), (logits > 0).float().mean().item()))
            net.head[-1].bias.zero_()
            zero_bias.append((net(images) > 0).float().mean().item())
            init_weights(net.head[-1])  # the reference's fan-out on the same network
            fan_out.append(net(images).mean().item())
    assert all(abs(mean - prior_logit) < 0.75 for mean, _ in starts), starts
    assert max(positive for _, positive in starts) < 0.15, starts
    assert sum(positive > 0.5 for positive in zero_bias) >= 4, zero_bias
    assert max(abs(v) for v in fan_out) > 5, fan_out


def test_calibration_keeps_seeding_and_batchnorm_state() -> None:
    from gglnet.model import calibrate_prior

    net = GGLNet(width_mult=0.25).eval()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(int(m.num_batches_tracked) == 0 for m in norms)  # the probe pass left no trace
    assert all(torch.all(m.running_mean == 0) and torch.all(m.running_var == 1) for m in norms)
    state = torch.get_rng_state()
    calibrate_prior(net, 0.01)
    assert torch.equal(state, torch.get_rng_state())  # no global draw: seeding is unchanged
    assert not net.training
    bias = net.head[-1].bias.item()
    calibrate_prior(net, 0.01)  # idempotent
    assert net.head[-1].bias.item() == pytest.approx(bias, abs=1e-5)
    with pytest.raises(ValueError, match="prior"):
        calibrate_prior(net, 1.0)
