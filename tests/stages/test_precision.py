"""`train.precision`: what `auto` means per device, and that a step trains in it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gglops.stages.train.precision import (
    autocast,
    cpu_has_native_bf16,
    needs_scaler,
    resolve_precision,
)


def test_explicit_settings_are_kept_and_auto_follows_the_cpu(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    for setting in ("fp32", "bf16", "fp16"):
        assert resolve_precision(setting, cpu) == setting
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", cpu) == expected
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t: fpu sse avx512f avx512_bf16\n")
    assert cpu_has_native_bf16.__wrapped__(flags)
    flags.write_text("flags\t: fpu sse avx2\n")
    assert not cpu_has_native_bf16.__wrapped__(flags)
    assert not cpu_has_native_bf16.__wrapped__(tmp_path / "missing")


def test_only_fp16_on_a_gpu_needs_a_scaler() -> None:
    assert needs_scaler(torch.device("cuda"), "fp16")
    assert not needs_scaler(torch.device("cuda"), "bf16")
    assert not needs_scaler(torch.device("cpu"), "fp16")


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)]
)
def test_autocast_runs_convolutions_in_the_precision(precision: str, dtype: torch.dtype) -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(torch.device("cpu"), precision):
        out = conv(torch.rand(1, 3, 8, 8))
    assert out.dtype == dtype
