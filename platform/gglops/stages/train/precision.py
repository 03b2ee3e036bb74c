"""`train.precision`: which autocast dtype a worker trains and validates in.

`auto` picks bf16 where the hardware computes it natively (a CPU with avx512_bf16 or AMX, a
GPU of compute capability 8.0 or newer), fp16 with a gradient scaler on older GPUs, and fp32
elsewhere: bf16 on a CPU without native support is emulated and slower than fp32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
_CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return not _CPU_BF16_FLAGS.isdisjoint(flags)


def resolve_precision(setting: str, device: torch.device) -> str:
    """The concrete precision (fp32, bf16, fp16) that `setting` means on `device`."""
    if setting != "auto":
        return setting
    if device.type == "cuda":
        major, _minor = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of a concrete precision (disabled for fp32)."""
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def needs_scaler(device: torch.device, precision: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range."""
    return precision == "fp16" and device.type == "cuda"
