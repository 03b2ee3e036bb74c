"""bench/step_profile.py: operators land in the right category and the shares add up."""

from __future__ import annotations

import pytest

from bench import step_profile


@pytest.mark.parametrize(
    ("op", "category"),
    [
        ("aten::convolution_backward", "convolution"),
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::native_batch_norm_backward", "batch norm"),
        ("aten::upsample_bilinear2d", "resample and pool"),
        ("aten::max_pool2d_with_indices", "resample and pool"),
        ("aten::bmm", "attention products"),
        ("aten::_fused_adamw_", "optimiser and clipping"),
        ("aten::copy_", "copies and layout"),
        ("aten::threshold_backward", "element-wise and activations"),
        ("aten::sigmoid", "element-wise and activations"),
        ("aten::as_strided", "other"),
    ],
)
def test_each_operator_lands_in_its_category(op: str, category: str) -> None:
    assert step_profile.category(op) == category


def test_a_profiled_step_accounts_for_its_time() -> None:
    from bench.train_step import Recipe, Variant

    result = step_profile.profile(Recipe("quick", 32, 2, 0.25), Variant("fp32"), steps=2)
    assert sum(result["shares"].values()) == pytest.approx(1.0)
    assert result["shares"]["convolution"] > 0.1 and result["conv_gflops"] > 0
    assert 0 < result["op_seconds_per_wall_second"] <= 1.05
