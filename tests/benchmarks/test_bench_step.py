"""bench/train_step.py and bench/gpu_check.py: the arithmetic, without timing anything."""

from __future__ import annotations

import math

import pytest

from bench import train_step as ts


def test_break_even_is_compile_time_over_the_time_saved_per_step() -> None:
    assert ts.break_even_steps(60.0, 1.0, 0.5) == pytest.approx(120.0)
    assert ts.break_even_steps(0.0, 1.0, 0.5) == 0.0
    assert ts.break_even_steps(-1.0, 1.0, 0.5) == 0.0  # noise below zero is no compile time
    assert ts.break_even_steps(60.0, 0.5, 0.5) == math.inf  # no faster: never pays off
    assert ts.break_even_steps(60.0, 0.5, 0.6) == math.inf
    assert ts.json_number(math.inf) == "never"
    assert ts.json_number(2.5) == 2.5


def test_compile_time_is_the_warm_up_beyond_steady_steps() -> None:
    assert ts.compile_seconds([30.0, 1.5, 0.5], 0.5) == pytest.approx(30.5)
    assert ts.compile_seconds([0.4, 0.4], 0.5) == 0.0


def test_fraction_of_peak_counts_forward_and_backward() -> None:
    # 10 GFLOP forward -> 30 GFLOP per trained image; 5 img/s = 150 GFLOP/s of 300 peak.
    assert ts.train_gflop_per_image(10.0) == 30.0
    assert ts.fraction_of_peak(10.0, 5.0, 300.0) == pytest.approx(0.5)


def test_rounds_rotate_the_order_and_the_best_is_the_fastest() -> None:
    names = ["a", "b", "c"]
    assert [ts.rotated(names, r) for r in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert ts.best_of({"fp32": 5.0, "bf16_cl_compile": 12.0, "bf16": 7.0}) == "bf16_cl_compile"


def test_variants_cover_the_issue_and_name_their_eager_twin() -> None:
    assert list(ts.BY_NAME) == [
        "fp32",
        "bf16",
        "fp32_cl",
        "bf16_cl",
        "fp32_compile",
        "bf16_compile",
        "bf16_cl_compile",
    ]
    assert ts.BY_NAME["bf16_cl_compile"].eager.name == "bf16_cl"
    assert ts.BY_NAME["fp32_compile"].eager.name == "fp32"
    laptop, demo = ts.RECIPES
    assert (laptop.size, laptop.batch, laptop.width) == (160, 8, 0.5)
    assert (demo.size, demo.batch, demo.width) == (64, 8, 0.5)


def _result(rates: dict[str, float], gflop: float) -> dict:
    return {
        "variants": {name: {"images_per_s": rate} for name, rate in rates.items()},
        "best": ts.best_of(rates),
        "forward_gflop_per_image": gflop,
    }


def test_figures_name_the_laptop_recipe_plainly_and_the_demo_with_a_prefix() -> None:
    from bench.run import FIGURES

    detail = {
        "matmul_peak_gflops": 200.0,
        "recipes": {
            "laptop": _result({"fp32": 4.0, "bf16": 5.0, "bf16_cl_compile": 10.0}, 5.0),
            "demo": _result({"fp32": 20.0, "bf16": 30.0, "bf16_cl_compile": 25.0}, 1.0),
        },
    }
    figures = ts.figures(detail)
    assert figures["train_step_images_per_s_fp32"] == 4.0
    assert figures["train_step_images_per_s_best"] == 10.0
    assert figures["train_speedup_vs_fp32_eager"] == pytest.approx(2.5)
    assert figures["train_fraction_of_peak"] == pytest.approx(3 * 5.0 * 10.0 / 200.0)
    assert figures["train_step_best_variant"] == "bf16_cl_compile"
    assert figures["train_step_demo_images_per_s_best"] == 30.0
    assert figures["train_step_demo_best_variant"] == "bf16"
    targeted = {n for n, f in FIGURES.items() if f.target and n.startswith("train_")}
    assert {"train_speedup_vs_fp32_eager", "train_fraction_of_peak"} <= targeted
    assert FIGURES["train_speedup_vs_fp32_eager"].target.bound == 2.5  # type: ignore[union-attr]
    assert FIGURES["train_fraction_of_peak"].target.bound == 0.30  # type: ignore[union-attr]


def test_the_interop_child_gets_the_same_plan_back() -> None:
    plan = ts.Plan.smoke()
    args = plan.args()
    assert args[0] == "--quick"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs["--threads"] == str(plan.threads)
    assert pairs["--variants"].split(",") == list(plan.variants)


def test_pal_projection_takes_epoch_zero_as_measured_and_the_rest_at_the_steady_mean() -> None:
    from bench.gpu_check import projection

    epochs = [
        {"train_s": 20.0, "validate_s": 5.0},
        {"train_s": 8.0, "validate_s": 2.0},
        {"train_s": 9.0, "validate_s": 1.0},
    ]
    out = projection(epochs, 400)
    assert out["epoch_s_steady"] == pytest.approx(10.0)
    assert out["projected_400_epochs_s"] == pytest.approx(25.0 + 399 * 10.0)
    assert out["projected_400_epochs_h"] == pytest.approx((25.0 + 3990.0) / 3600)
