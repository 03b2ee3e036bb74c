"""One worker's training machinery, independent of Ray so that it can be tested in-process.

`build_session` wires model, optimiser, loss, LR schedule, AMP and the data shard for one
rank; `TrainSession.train_epoch` and `.validate` do the work. The Ray glue (`loop.py`)
passes `prepare_model` / `prepare_loader` from `ray.train.torch`; tests pass nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from gglnet import LOSSES, GGLNet
from gglops.core.metrics import IRSTDMetrics, MetricState
from gglops.core.params import Params, TrainParams
from gglops.model.bundle import unwrap
from gglops.stages.train.averaging import WeightAverage
from gglops.stages.train.precision import autocast, needs_scaler, resolve_precision

if TYPE_CHECKING:
    from gglops.data.selection import SelectionSplits

Wrap = Callable[[Any], Any]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]

# train.lr_schedule → scheduler, stepped once per epoch. "none" is a constant schedule so that
# every run has scheduler state to checkpoint.
SCHEDULES: dict[str, SchedulerFactory] = {
    "none": lambda opt, epochs: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
    "cosine": lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
    "step": lambda opt, epochs: torch.optim.lr_scheduler.StepLR(
        opt, step_size=max(1, epochs // 3), gamma=0.1
    ),
}


# train.optimizer → its torch class; both take (params, lr=, weight_decay=).
OPTIMIZERS: dict[str, type[torch.optim.Adam] | type[torch.optim.AdamW]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


class LossDivergedError(Exception):
    """The loss or the weights became nan/inf: every rank stops at the same step (the flag is
    all-reduced), before anything of the diverged model is reported or checkpointed."""

    def __init__(self, what: str, epoch: int, step: int) -> None:
        super().__init__(f"{what} at epoch {epoch} step {step}")

    @classmethod
    def loss(cls, value: float, epoch: int, step: int) -> LossDivergedError:
        shown = f"{value}" if not math.isfinite(value) else "non-finite on another rank"
        return cls(f"loss became {shown}", epoch, step)


# (step, steps, summed loss so far as a tensor, images so far) after each training step.
StepHook = Callable[[int, int, torch.Tensor, int], None]


@dataclass(frozen=True)
class EpochStats:
    loss: float
    images: int  # images this rank trained on
    seconds: float  # wall time of the training phase (no validation, no checkpoint)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python/numpy/torch; deterministic mode also pins the algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class TrainSession:
    model: nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loader: DataLoader
    dataset: Any  # a gglops.data.dataset.TrainDataset
    sampler: DistributedSampler
    eval_set: Any  # a gglops.data.dataset.EvalDataset: this rank's shard of the selection split
    device: torch.device
    train: TrainParams
    width_mult: float
    rank: int
    world_size: int
    average: WeightAverage | None = None  # train.ema > 0

    @property
    def precision(self) -> str:
        """The concrete precision of `train.precision` on this device (fp32, bf16, fp16)."""
        return resolve_precision(self.train.precision, self.device)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.train.channels_last else torch.contiguous_format

    @property
    def net(self) -> GGLNet:
        net = unwrap(self.model)
        assert isinstance(net, GGLNet)  # built by build_session; DDP only wraps it
        return net

    @property
    def scored(self) -> nn.Module:
        """The network that validation scores and checkpoints ship: the weight average where
        `train.ema` keeps one, else the live network."""
        return self.average.net if self.average else self.net

    def train_epoch(self, epoch: int, on_step: StepHook | None = None) -> EpochStats:
        """One pass over this rank's shard; returns the mean loss and the phase's timing.
        `on_step(step, steps, loss_sum, images)` follows each step (loss_sum stays a tensor:
        the hook decides whether a host sync is worth it)."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)  # per-epoch augmentation draws
        total, images = torch.zeros((), device=self.device), 0
        start, steps = time.perf_counter(), len(self.loader)
        for step, (batch_images, batch_masks) in enumerate(self.loader):
            loss = self._step(batch_images, batch_masks).detach()
            if not _finite_everywhere(torch.isfinite(loss)):
                raise LossDivergedError.loss(loss.item(), epoch, step)
            total += loss * len(batch_images)
            images += len(batch_images)
            if on_step is not None:
                on_step(step + 1, steps, total, images)
        # A bounded loss (soft-IoU) can stay finite while the weights overflow: check them once
        # per epoch, before validation and the checkpoint.
        if not _finite_everywhere(_weights_finite(self.net)):
            raise LossDivergedError("weights became non-finite", epoch, len(self.loader) - 1)
        mean_loss = total.item() / max(images, 1)  # one host sync per epoch, not per step
        seconds = time.perf_counter() - start
        self.scheduler.step()
        return EpochStats(loss=mean_loss, images=images, seconds=seconds)

    def _step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        masks = masks.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            logits = self.model(images)
        # The loss sums probabilities over whole images: in float32, outside autocast, so
        # that fp16 rounding never decides whether a 1-px target's term counts.
        loss = self.loss_fn(logits.float(), masks)
        self.scaler.scale(loss).backward()
        if self.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.net)
        return loss

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Metrics over the WHOLE selection split (`data.selection`): each rank scores its
        shard, the sums are reduced."""
        from gglops.model.inference import predict_probs, torch_prob_fn

        net = self.scored
        _sync_buffers(net)  # BN running stats as rank 0 has them (what the checkpoint holds)
        net.eval()
        metrics = IRSTDMetrics()
        prob_fn = torch_prob_fn(net)
        with autocast(self.device, self.precision):  # validation in the training precision
            for index in range(len(self.eval_set)):
                image, mask, _stem = self.eval_set[index]
                metrics.update(predict_probs(prob_fn, image), mask[0])
        return _all_reduce(metrics.state(), self.device).scores()


def _weights_finite(net: nn.Module) -> torch.Tensor:
    """One boolean tensor: every floating parameter and buffer (BN statistics) is finite."""
    tensors = [t for t in net.state_dict().values() if t.is_floating_point()]
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()


def _finite_everywhere(finite: torch.Tensor) -> bool:
    """True when `finite` holds on every rank (one tiny all-reduce)."""
    flag = finite.to(torch.int32)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _sync_buffers(net: nn.Module) -> None:
    if dist.is_available() and dist.is_initialized():
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)


def _all_reduce(state: MetricState, device: torch.device) -> MetricState:
    if not (dist.is_available() and dist.is_initialized()):
        return state
    # float64 keeps integer pixel counts exact well beyond any test split.
    vector = torch.as_tensor(state.to_vector(), dtype=torch.float64, device=device)
    dist.all_reduce(vector, op=dist.ReduceOp.SUM)
    return MetricState.from_vector(vector.cpu().numpy())


def selection_of(data_root: Path, params: Params) -> SelectionSplits:
    """The train / selection / test samples of `data_root` under `params.data`."""
    from gglops.data.layouts import index_of
    from gglops.data.selection import selection_splits

    data = params.data
    index = index_of(data_root, data)
    return selection_splits(index, data.selection, data.holdout, data.holdout_seed)


def build_session(
    params: Params,
    data_root: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | None = None,
    prepare_model: Wrap | None = None,
    prepare_loader: Wrap | None = None,
) -> TrainSession:
    """Everything one rank needs to train and validate, seeded per rank."""
    from gglops.data.dataset import EvalDataset, TrainDataset

    train, data = params.train, params.data
    device = device or torch.device("cpu")
    seed_everything(train.seed + rank, train.deterministic)
    splits = selection_of(data_root, params)
    dataset = TrainDataset(
        splits.fit,
        image_size=data.train_size,
        fit=data.fit,
        augment_p=train.augment.p,
        augment_n=train.augment.n,
        seed=train.seed,
        target_p=data.crop_target_p,
    )
    # Our own sampler (not prepare_data_loader's) so that the shuffle seed is train.seed.
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=train.seed
    )
    loader = DataLoader(
        dataset,
        batch_size=train.batch_size,
        sampler=sampler,
        num_workers=data.loader_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=data.loader_workers > 0,
        drop_last=False,  # the reference keeps the last partial batch
    )
    model = GGLNet(width_mult=params.model.width_mult).to(device)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    model = prepare_model(model) if prepare_model else model
    if train.compile:
        # The training step only: validation runs the eager network (`net`), whose image
        # sizes vary and would recompile the graph for every new shape.
        model = torch.compile(model)  # type: ignore[assignment]  # a module in behaviour
    average = WeightAverage(unwrap(model), train.ema) if train.ema > 0 else None
    optimizer = OPTIMIZERS[train.optimizer](
        model.parameters(), lr=train.lr, weight_decay=train.weight_decay
    )
    return TrainSession(
        model=model,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(
            device.type, enabled=needs_scaler(device, resolve_precision(train.precision, device))
        ),
        scheduler=SCHEDULES[train.lr_schedule](optimizer, train.epochs),
        loss_fn=LOSSES[train.loss],
        loader=prepare_loader(loader) if prepare_loader else loader,
        dataset=dataset,
        sampler=sampler,
        eval_set=EvalDataset(splits.select[rank::world_size], data.eval_size),
        device=device,
        train=train,
        width_mult=params.model.width_mult,
        rank=rank,
        world_size=world_size,
        average=average,
    )
