"""Model bundle: a directory with `model.pt` (GGLNet state dict) and `model.json`.

The format is in docs/architecture.md. A Ray Train checkpoint directory is a bundle too
(it may hold `train_state.pt` beside these two files, which this module ignores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from gglnet import GGLNet
from gglops.core.errors import UsageError, first_line
from gglops.core.files import atomic_path, atomic_write

WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"


class BundleMeta(BaseModel):
    """Contents of `model.json`: what it takes to rebuild the network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    in_channels: int = Field(default=3, gt=0)
    width_mult: float = Field(gt=0)


def save_bundle(model: nn.Module, directory: str | Path, width_mult: float) -> Path:
    """Write `model` as a bundle into `directory` (created if needed); returns the directory.

    Accepts a DDP- or torch.compile-wrapped model; tensors are stored on the CPU. Each
    file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    net = unwrap(model)
    own_width = getattr(net, "width_mult", width_mult)
    if own_width != width_mult:
        raise ValueError(f"width_mult {width_mult} differs from the model's own {own_width}")
    meta = BundleMeta(in_channels=getattr(net, "in_channels", 3), width_mult=width_mult)
    state = {key: tensor.detach().cpu() for key, tensor in net.state_dict().items()}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        torch.save(state, tmp)
    atomic_write(directory / META_FILE, meta.model_dump_json())
    return directory


def load_bundle(directory: str | Path) -> GGLNet:
    """The bundle's GGLNet, on the CPU in eval mode; a bad bundle raises UsageError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"model bundle {directory} is not a directory")
    meta = read_meta(directory)
    model = GGLNet(in_channels=meta.in_channels, width_mult=meta.width_mult)
    weights = directory / WEIGHTS_FILE
    state = _load_state(weights)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        summary = first_line(exc)
        shape = f"in_channels={meta.in_channels}, width_mult={meta.width_mult}"
        raise UsageError(f"{weights} does not fit GGLNet({shape}): {summary}") from exc
    return model.eval()


def read_meta(directory: str | Path) -> BundleMeta:
    """Parse `model.json` of a bundle; a missing or invalid file raises UsageError."""
    path = Path(directory) / META_FILE
    try:
        return BundleMeta.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise UsageError(f"{path} is missing: not a model bundle") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise UsageError(
            f"{path} is not a valid bundle description ({where}: {first['msg']})"
        ) from exc


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap(inner)
    return model


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UsageError(f"{path} is missing: not a model bundle") from exc
    except Exception as exc:  # the unpickler raises anything (IndexError, ...) on garbage
        raise UsageError(f"{path} is not a readable torch state dict (corrupt or foreign)") from exc
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
