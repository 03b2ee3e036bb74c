"""Experiment parameters (params.yaml, DVC params) as validated pydantic models.

Every command that reads params takes `--params FILE` and `--set section.key=value`
overrides; `resolve` builds a command's final params from all of its sources in one
documented order. Any problem (unknown key, wrong type, negative lr) becomes one UsageError
line that names the source (file, `--set`, flag) and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gglops.core.errors import UsageError

LayoutName = Literal["auto", "nuaa-sirst", "irstd-1k", "dnanet", "basicirstd", "msda-net", "custom"]
# original: predict each test image at its own size (ours); resized: test images and masks
# resized to data.image_size first, Fa over the resized pixels (the GGL-Net authors' code).
EvalProtocol = Literal["original", "resized"]
# Which split chooses the model (best epoch, early stopping, the Tune objective): `val` (a
# validation list, or a seeded part of train held out where the split ships none) or the
# literature's `test` (train on train+val, choose on test), a named protocol for reproducing
# published numbers.
Selection = Literal["val", "test"]
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class ParamsLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's underscore and base-60 numbers: `50_50` (a DNANet split)
    would read as the int 5050 and `1:1` as 61; both stay strings, like YAML 1.2 reads them."""


ParamsLoader.yaml_implicit_resolvers = {
    first: [
        (tag, re.compile("^(?!.*[_:])" + rx.pattern[1:], rx.flags) if tag in _NUMBER_TAGS else rx)
        for tag, rx in resolvers
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """Parse params-like YAML (params.yaml, best.yaml, --set values) with `ParamsLoader`."""
    return yaml.load(text, Loader=ParamsLoader)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomLayout(_Section):
    """A folder layout described in params.yaml (`data.layout: custom`); paths relative to
    data.root. The mask of stem S is `S<mask_suffix>` with any image extension."""

    images: str
    masks: str
    mask_suffix: str = ""
    train: str
    val: str | None = None
    test: str


class DataParams(_Section):
    dataset: str = "synthetic-sirst"
    root: str = "data/raw/synthetic-sirst"
    layout: LayoutName = "auto"
    split: str | None = None  # e.g. idx_427, 50_50, NUAA-SIRST; None = the layout's default
    custom: CustomLayout | None = None  # the folders and split files of `layout: custom`
    image_size: Annotated[int, Field(gt=0, multiple_of=16)] = 256
    # resize: every image to image_size² (the reference); pad: zero-pad to image_size and take
    # a random image_size² window; crop: one random patch_size² patch per image and epoch
    # (zero-padded where the image is smaller), on a target with probability crop_target_p.
    fit: Literal["resize", "pad", "crop"] = "resize"
    patch_size: Annotated[int, Field(gt=0, multiple_of=16)] | None = None
    crop_target_p: Annotated[float, Field(ge=0, le=1)] = 0.5
    loader_workers: Annotated[int, Field(ge=0)] = 0
    eval_protocol: EvalProtocol = "original"
    selection: Selection = "val"
    # Without a validation list, this fraction of train (seeded by holdout_seed, the same for
    # every training seed) is held out to choose the model.
    holdout: Annotated[float, Field(gt=0, lt=1)] = 0.1
    holdout_seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> DataParams:
        if self.layout == "custom" and self.custom is None:
            raise ValueError("layout 'custom' needs a data.custom section (images, masks, ...)")
        if self.fit == "crop" and self.patch_size is None:
            raise ValueError("fit 'crop' needs data.patch_size (a multiple of 16)")
        return self

    @property
    def train_size(self) -> int:
        """Side of the training samples: the patch for fit=crop, else image_size."""
        return self.patch_size if self.fit == "crop" and self.patch_size else self.image_size

    @property
    def eval_size(self) -> int | None:
        """Side that test images and masks are resized to before prediction; None = own size."""
        return self.image_size if self.eval_protocol == "resized" else None


class ModelParams(_Section):
    width_mult: Annotated[float, Field(gt=0, le=4)] = 1.0


class AugmentParams(_Section):
    """The reference's block: with probability p, n transforms drawn from its menu."""

    p: Annotated[float, Field(ge=0, le=1)] = 0.5  # 0 disables augmentation
    n: Annotated[int, Field(ge=1, le=12)] = 3


class TrainParams(_Section):
    epochs: Annotated[int, Field(gt=0)] = 500
    batch_size: Annotated[int, Field(gt=0)] = 4
    lr: Annotated[float, Field(gt=0)] = 1e-4
    optimizer: Literal["adam", "adamw"] = "adam"  # adamw: decoupled weight decay (PAL)
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    loss: Literal["soft_iou", "bce_soft_iou", "batch_soft_iou", "bce_batch_soft_iou"] = "soft_iou"
    lr_schedule: Literal["none", "cosine", "step"] = "none"
    grad_clip: Annotated[float, Field(ge=0)] = 0.0  # 0 disables clipping
    seed: int = 42
    deterministic: bool = False
    workers: Annotated[int, Field(gt=0)] = 1
    # CPUs Ray reserves per worker; the worker's torch threads follow it (a 2-core laptop
    # trains ~1.7x faster with both cores in one worker than with one).
    cpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    use_gpu: bool = False
    # auto: bf16 where the hardware computes it natively (CPU avx512_bf16/AMX, GPU Ampere+),
    # fp16 with a grad scaler on older GPUs, fp32 elsewhere. The loss stays in float32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = False  # NHWC activations: faster convolutions on GPUs (recipes)
    compile: bool = False  # torch.compile (inductor) of the training step
    # Decay per step of an average of the weights that validation scores and checkpoints
    # ship (stages/train/averaging.py); 0 scores the live weights, as the reference does.
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.0
    max_failures: Annotated[int, Field(ge=0)] = 2
    keep_checkpoints: Annotated[int, Field(gt=0)] = 2
    run_name: str = "gglnet"
    augment: AugmentParams = AugmentParams()


class SearchDim(_Section):
    kind: Literal["loguniform", "uniform", "choice", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> SearchDim:
        if self.kind == "choice":
            if not self.values:
                raise ValueError("a 'choice' dimension needs a non-empty 'values' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a '{self.kind}' dimension needs low < high")
        elif self.kind == "loguniform" and self.low <= 0:
            raise ValueError("a 'loguniform' dimension needs low > 0")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a range dimension (the validator guarantees both are set)."""
        if self.low is None or self.high is None:
            raise ValueError(f"a '{self.kind}' dimension has no range")
        return self.low, self.high


class TuneParams(_Section):
    samples: Annotated[int, Field(gt=0)] = 8
    max_concurrent: Annotated[int, Field(gt=0)] = 2
    search_alg: Literal["optuna", "random", "grid"] = "optuna"
    epochs: Annotated[int, Field(gt=0)] = 20  # max epochs per trial (ASHA max_t)
    grace_period: Annotated[int, Field(gt=0)] = 2
    reduction_factor: Annotated[int, Field(ge=2)] = 2
    workers_per_trial: Annotated[int, Field(gt=0)] = 1
    cpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    metric: str = "val_miou"
    # Keys are dotted params paths (train.lr, model.width_mult, train.augment.p).
    space: dict[str, SearchDim] = Field(default_factory=dict)


class GateParams(_Section):
    min_miou: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_pd: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_fa: Annotated[float, Field(ge=0)] = 1e-3  # fraction of pixels (report ×1e-6)
    tolerance: Annotated[float, Field(ge=0)] = 0.01


class SynthParams(_Section):
    """Size of the synthetic dataset of the default pipeline (`gglops data synth`)."""

    n: Annotated[int, Field(ge=2)] = 96
    size: Annotated[int, Field(ge=16)] = 64
    seed: int = 7


class Params(_Section):
    data: DataParams = DataParams()
    synth: SynthParams = SynthParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    tune: TuneParams = TuneParams()
    gates: GateParams = GateParams()

    def flat(self) -> dict[str, Any]:
        """Flattened `section.key` view: MLflow params, tune search keys."""
        return flatten(self.model_dump(mode="json"))

    def digest(self) -> str:
        """Stable sha256 of the params (the `params_hash` tag)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "overrides") -> Params:
        """A copy with dotted-key overrides applied and re-validated; errors name `source`."""
        raw = self.model_dump(mode="json")
        for key, value in overrides.items():
            set_dotted(raw, key, value, source)
        return _validate(raw, source)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, source: str = "--set") -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"{source}: {dotted}: '{part}' is not a section")
    node[leaf] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`section.key=value` strings → dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected section.key=value")
        out[key.strip()] = load_yaml(value) if value else ""
    return out


def _validate(raw: Any, source: str) -> Params:
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UsageError(f"{source}: {where}: {err['msg']}") from None


def resolve(
    params_file: str | Path | None = "params.yaml",
    tuned_file: str | Path | None = None,
    sets: list[str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Params:
    """A command's final, validated params: built here once, and nowhere downstream.

    Sources, in order; a later one wins for the keys it names, every other key survives:

    1. `params_file`: params.yaml or `--params FILE` (None: the built-in defaults);
    2. `tuned_file`: `--best-params FILE`, the `section.key: value` YAML that `gglops tune`
       writes (a missing file is an error, never silently skipped);
    3. `sets`: `--set section.key=value`, left to right;
    4. `flags`: typed CLI flags by the key they set, e.g. `{"train.workers": 4}` for
       `--workers 4`; None means the flag was not given.

    Each source is validated as it is applied, so an error is one UsageError line naming
    that source (the file, `--set`, `command-line flag`) and the key.
    """
    params = (
        Params() if params_file is None else _validate(_read_yaml(params_file), str(params_file))
    )
    layers = [
        (str(tuned_file), _read_tuned(tuned_file) if tuned_file is not None else {}),
        ("--set", parse_overrides(sets)),
        ("command-line flag", _given(flags)),
    ]
    for source, overrides in layers:
        if overrides:
            params = params.with_overrides(overrides, source)
    return params


def load_params(
    path: str | Path | None = "params.yaml", overrides: list[str] | None = None
) -> Params:
    """params.yaml (None: defaults) then `--set` strings: `resolve` without the other sources."""
    return resolve(path, sets=overrides)


def _read_yaml(path: str | Path, what: str = "params") -> Any:
    try:
        return load_yaml(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{line}") from None


def _read_tuned(path: str | Path) -> dict[str, Any]:
    """Dotted keys of a tuned file; a nested section is flattened so that it replaces only
    the keys it names, not its whole section."""
    raw = _read_yaml(path, "best params")
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a mapping of dotted keys (train.lr: 0.002)")
    return flatten(raw)


def _given(flags: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flags that were given (not None); paths as the strings params hold."""
    return {
        key: str(value) if isinstance(value, PurePath) else value
        for key, value in (flags or {}).items()
        if value is not None
    }
