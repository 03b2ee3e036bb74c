"""Seeds: does every seed start and learn, in the platform and in a plain loop?

Both trainers train the full-width GGL-Net on one synthetic set written by `gglops data
synth` (MSDA-Net layout: train/ and test/ folders; 128 images at 64² give 102 train / 26
test), with the reference recipe: Adam 1e-4, batch 4, soft IoU, no LR schedule, no
clipping, the whole train folder trained on and the epoch chosen on test (the literature's
protocol, `data.selection: test`).

- platform: `gglops.stages.train.session.build_session` + `TrainSession.train_epoch` in this
  process: the code a `gglops train` worker runs each epoch (its data pipeline, seeding,
  sampler, augmentation `train.augment.p` 0.5, loss and step), without Ray, MLflow or
  checkpoints.
- plain: an authors-like loop that shares no data code with gglops: PIL reads the PNGs
  (RGB, /255, masks grey > 127.5), `torch.manual_seed(seed)` then the model, a DataLoader
  with `shuffle=True` on the global generator (as the authors' script), random flips
  (horizontal, vertical, p 0.5 each), `gglnet.soft_iou_loss`, Adam.

Both are scored after every epoch by the same function (`evaluate`: `IRSTDMetrics`,
threshold 0.5, each test image at its own size), which also counts the fraction of test
pixels predicted target. Per run: the chosen epoch (best test mIoU, as the authors choose),
the fraction predicted target after epoch 2, and the first epoch with mIoU ≥ 0.05; a run is
*stuck* when that epoch comes after ceil(epochs / 10) (or never), and *collapsed* (fails
the bench) when it stays below 0.05 from ceil(epochs / 10) to the end
(`bench.accuracy.collapsed`).

    python -m bench.seeds                         # 8 seeds × 2 trainers × 30 epochs (hours)
    python -m bench.seeds --seeds 1,2 --threads 2 # seeds 1 and 2 (~20 min on 2 idle cores)
    python -m bench.seeds --quick                 # smoke: 2 seeds, 2 epochs, 32², width 0.25
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from bench.common import BenchFailedError

ROOT = Path(__file__).resolve().parents[1]
MIN_MIOU = 0.05
METRICS = ("miou", "niou", "pd", "fa")
TRAINERS = ("platform", "plain")
Pair = tuple[np.ndarray, np.ndarray]  # image (3, H, W) float32 in [0, 1], mask (1, H, W) {0, 1}


@dataclass(frozen=True)
class Setup:
    """Everything that defines the comparison; recorded with the figures."""

    n: int = 128  # synth images: 102 train / 26 test at the default
    size: int = 64  # synth side = data.image_size = evaluation size
    data_seed: int = 5
    epochs: int = 30
    seeds: tuple[int, ...] = tuple(range(8))
    lr: float = 1e-4
    batch_size: int = 4
    width_mult: float = 1.0
    augment_p: float = 0.5  # platform: train.augment.p
    plain_augment: str = "flips"  # plain loop: none | flips | menu (gglops' menu, diagnosis)
    loss: str = "soft_iou"
    precision: str = "auto"  # platform: train.precision (auto: bf16 on a CPU with avx512_bf16)
    deterministic: bool = False
    threads: int = 1  # as a `gglops train` worker (1 CPU)
    min_miou: float = MIN_MIOU

    @classmethod
    def quick(cls) -> Setup:
        return cls(n=24, size=32, epochs=2, seeds=(0, 1), width_mult=0.25)


@dataclass
class RunResult:
    """One trainer × seed: per epoch (1-based) loss, test metrics and fraction predicted target."""

    trainer: str
    seed: int
    curve: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0

    def miou(self) -> list[float]:
        return [p["miou"] for p in self.curve]

    @property
    def chosen(self) -> dict[str, float]:
        """The epoch with the best test mIoU (the first of equals), as the authors choose."""
        return max(self.curve, key=lambda p: p["miou"])


# --- data ------------------------------------------------------------------------------------


def write_data(out: Path, setup: Setup) -> Path:
    """`gglops data synth OUT --n N --size S --seed D --layout msda-net`, in-process."""
    from gglops.data.synth import synthesize

    return synthesize(out, setup.n, setup.size, setup.data_seed, layout="msda-net")


def read_folder(folder: Path) -> list[Pair]:
    """MSDA-Net folder (image/ and mask/, same file names), sorted as the authors' dataset:
    RGB / 255, mask grey > 127.5. PIL only."""
    from PIL import Image

    pairs = []
    for path in sorted((folder / "image").iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
        grey = np.asarray(Image.open(folder / "mask" / path.name).convert("L"), np.float32)
        pairs.append((rgb.transpose(2, 0, 1).copy(), (grey > 127.5).astype(np.float32)[None]))
    return pairs


# --- evaluation (the same for both trainers) -------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, pairs: Sequence[Pair]) -> dict[str, float]:
    """IRSTD metrics at each image's own size (zero-padded to a multiple of 16, cropped back)
    and `pos`, the fraction of all test pixels predicted target (p > 0.5)."""
    from gglops.core.metrics import IRSTDMetrics

    metrics, positive, pixels = IRSTDMetrics(), 0, 0
    model.eval()
    for image, mask in pairs:
        h, w = image.shape[-2:]
        padded = np.pad(image, ((0, 0), (0, -h % 16), (0, -w % 16)))
        probs = torch.sigmoid(model(torch.from_numpy(padded)[None]))[0, 0, :h, :w].numpy()
        metrics.update(probs, mask[0])
        positive, pixels = positive + int((probs > 0.5).sum()), pixels + h * w
    return metrics.compute() | {"pos": positive / max(pixels, 1)}


# --- the two trainers ------------------------------------------------------------------------

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Trainer(Protocol):
    """What the benches need of a trainer: its model, a loss that can be wrapped (traced),
    and one training epoch (mean loss)."""

    loss_fn: LossFn

    @property
    def model(self) -> nn.Module: ...

    def train_epoch(self, epoch: int) -> float: ...


def reset_global_state(threads: int) -> None:
    """Each run starts from the same process-wide settings (a previous run's deterministic
    mode must not leak into the next)."""
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)


def resolved_precision(setup: Setup) -> str:
    """What the platform's `train.precision` means on this machine's CPU."""
    from gglops.stages.train.precision import resolve_precision

    return resolve_precision(setup.precision, torch.device("cpu"))


def platform_params(setup: Setup, root: Path, seed: int) -> dict[str, Any]:
    """params for `build_session`: the reference recipe on the synthetic files."""
    from gglops.core.params import DataParams

    data: dict[str, Any] = {"dataset": "synthetic-seeds", "root": str(root)}
    data |= {"layout": "msda-net", "image_size": setup.size, "fit": "resize"}
    data |= {"loader_workers": 0}
    if "selection" in DataParams.model_fields:
        data["selection"] = "test"  # train on the whole train folder, choose on test
    train = {
        "epochs": setup.epochs,
        "batch_size": setup.batch_size,
        "lr": setup.lr,
        "weight_decay": 0.0,
        "loss": setup.loss,
        "lr_schedule": "none",
        "grad_clip": 0.0,
        "seed": seed,
        "precision": setup.precision,
        "deterministic": setup.deterministic,
        "workers": 1,
        "use_gpu": False,
        "augment": {"p": setup.augment_p},
    }
    return {"data": data, "model": {"width_mult": setup.width_mult}, "train": train}


class PlatformTrainer:
    """The platform's per-worker training (`TrainSession`), in this process."""

    def __init__(self, root: Path, setup: Setup, seed: int) -> None:
        from gglops.core.params import Params
        from gglops.stages.train.session import build_session

        reset_global_state(setup.threads)
        params = Params.model_validate(platform_params(setup, root, seed))
        self.session = build_session(params, root)
        self.model = self.session.net

    @property
    def loss_fn(self) -> LossFn:
        return self.session.loss_fn

    @loss_fn.setter
    def loss_fn(self, fn: LossFn) -> None:
        self.session.loss_fn = fn

    @property
    def train_images(self) -> int:
        return len(self.session.dataset)

    def train_epoch(self, epoch: int) -> float:
        return self.session.train_epoch(epoch).loss


class PlainDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory pairs; `flips`: random horizontal and vertical flips (p 0.5 each); `menu`:
    gglops' reference menu (only to test whether augmentation content matters); `none`."""

    def __init__(self, pairs: list[Pair], augment: str, seed: int) -> None:
        if augment not in ("none", "flips", "menu"):
            raise ValueError(f"plain augmentation {augment!r}: none, flips or menu")
        self.pairs, self.augment = pairs, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pairs[index]
        if self.augment == "flips":
            for axis in (-1, -2):
                if self.rng.random() < 0.5:
                    image, mask = np.flip(image, axis), np.flip(mask, axis)
        elif self.augment == "menu":
            from gglops.data.transforms import apply_plan, draw_plan

            image, grid = apply_plan(image, mask[0] > 0.5, draw_plan(self.rng, 0.5, 3))
            mask = grid.astype(np.float32)[None]
        return torch.from_numpy(image.copy()), torch.from_numpy(mask.copy())


class PlainTrainer:
    """An authors-like loop: seed, model, Adam, a shuffling DataLoader, loss, step."""

    def __init__(self, root: Path, setup: Setup, seed: int) -> None:
        from gglnet import LOSSES, GGLNet

        reset_global_state(setup.threads)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.model = GGLNet(width_mult=setup.width_mult)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=setup.lr)
        self.loss_fn = LOSSES[setup.loss]
        pairs = read_folder(root / "train")
        self.train_images = len(pairs)
        self.loader = torch.utils.data.DataLoader(
            PlainDataset(pairs, setup.plain_augment, seed),
            batch_size=setup.batch_size,
            shuffle=True,  # the global generator, as the authors' script; last batch kept
        )

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        total, seen = 0.0, 0
        for images, masks in self.loader:
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(images), masks)
            loss.backward()
            self.optimizer.step()
            total, seen = total + loss.item() * len(images), seen + len(images)
        return total / max(seen, 1)


BUILDERS: dict[str, Callable[[Path, Setup, int], Trainer]] = {
    "platform": PlatformTrainer,
    "plain": PlainTrainer,
}


def train_run(trainer: str, root: Path, setup: Setup, seed: int, test: Sequence[Pair]) -> RunResult:
    """One trainer × seed for `setup.epochs`, scored after every epoch; one line per epoch."""
    start = time.perf_counter()
    run = BUILDERS[trainer](root, setup, seed)
    result = RunResult(trainer, seed)
    for epoch in range(setup.epochs):
        loss = run.train_epoch(epoch)
        point = {"epoch": epoch + 1, "loss": loss, **evaluate(run.model, test)}
        result.curve.append(point)
        print(f"[seeds] {trainer} seed {seed}: {epoch_text(point, setup.epochs)}", flush=True)
    result.wall_s = time.perf_counter() - start
    return result


def epoch_text(point: dict[str, float], epochs: int) -> str:
    return (
        f"epoch {point['epoch']}/{epochs}  loss {point['loss']:.4f}  mIoU {point['miou']:.4f}  "
        f"Pd {point['pd']:.3f}  Fa {point['fa'] * 1e6:.0f}e-6  target px {point['pos']:.1%}"
    )


# --- figures ---------------------------------------------------------------------------------


def first_reaching(miou: Sequence[float], floor: float) -> int | None:
    """First epoch (1-based) with mIoU ≥ floor; None if never."""
    return next((i + 1 for i, v in enumerate(miou) if v >= floor), None)


def stuck(miou: Sequence[float], epochs: int, floor: float = MIN_MIOU) -> bool:
    """Still below `floor` after ceil(epochs / 10) epochs (a slow start or a collapse)."""
    from bench.accuracy import collapse_from

    reached = first_reaching(miou, floor)
    return reached is None or reached > collapse_from(epochs)


def seed_row(run: RunResult, setup: Setup) -> dict[str, Any]:
    from bench.accuracy import collapsed

    chosen, miou = run.chosen, run.miou()
    after2 = run.curve[min(2, len(run.curve)) - 1]
    return {
        "trainer": run.trainer,
        "seed": run.seed,
        "chosen_epoch": int(chosen["epoch"]),
        "chosen_miou": chosen["miou"],
        "chosen_fa": chosen["fa"],
        "chosen_pd": chosen["pd"],
        "final_miou": miou[-1],
        "target_px_after_epoch_2": after2["pos"],
        "first_epoch_miou_ge_floor": first_reaching(miou, setup.min_miou),
        "stuck": stuck(miou, setup.epochs, setup.min_miou),
        "collapsed": collapsed(miou, setup.epochs, setup.min_miou),
        "wall_s": run.wall_s,
    }


def figures_of(runs: list[RunResult], setup: Setup, splits: dict[str, int]) -> dict[str, Any]:
    """results.json entries: per trainer mean and min of the chosen epoch's test mIoU, stuck
    and collapsed runs; the per-seed table and the curves as detail."""
    rows = [seed_row(r, setup) for r in runs]
    out: dict[str, Any] = {}
    for trainer in TRAINERS:
        mine = [r for r in rows if r["trainer"] == trainer]
        if not mine:
            continue
        chosen = [r["chosen_miou"] for r in mine]
        out[f"seeds_miou_mean_{trainer}"] = sum(chosen) / len(chosen)
        out[f"seeds_miou_min_{trainer}"] = min(chosen)
        out[f"seeds_target_px_epoch2_max_{trainer}"] = max(
            r["target_px_after_epoch_2"] for r in mine
        )
    plain = out.get("seeds_miou_mean_plain", 0.0)
    if "seeds_miou_mean_platform" in out and plain > 0:
        out["seeds_platform_vs_plain"] = out["seeds_miou_mean_platform"] / plain
    bad = [f"{r['trainer']} seed {r['seed']}" for r in rows if r["stuck"]]
    out["seeds_stuck_runs"] = {"value": len(bad), "runs": bad}
    protocol = {
        "data": f"gglops data synth --n {setup.n} --size {setup.size} --seed {setup.data_seed} "
        "--layout msda-net",
        "split_sizes": splits,
        "evaluation": "test split at its own size, IRSTDMetrics, threshold 0.5; chosen epoch "
        "= best test mIoU (the authors' choice); target px = fraction of test pixels p > 0.5",
        "stuck_rule": f"mIoU < {setup.min_miou} until after epoch ceil(epochs/10)",
        "platform_precision": resolved_precision(setup),
        "plain_precision": "fp32",
        **asdict(setup),
    }
    out["seeds_detail"] = {
        "protocol": protocol,
        "table": rows,
        "runs": [asdict(r) for r in runs],
    }
    return out


def table_text(figures: dict[str, Any]) -> str:
    rows = figures["seeds_detail"]["table"]
    lines = [
        "trainer   seed  chosen ep  chosen mIoU  final mIoU  target px ep2  first ≥0.05  stuck",
        *(
            f"{r['trainer']:<9} {r['seed']:>4}  {r['chosen_epoch']:>9}  {r['chosen_miou']:>11.4f}"
            f"  {r['final_miou']:>10.4f}  {r['target_px_after_epoch_2']:>13.1%}"
            f"  {r['first_epoch_miou_ge_floor'] or '-':>11}  {'yes' if r['stuck'] else 'no'}"
            for r in rows
        ),
    ]
    for trainer in TRAINERS:
        if f"seeds_miou_mean_{trainer}" in figures:
            lines.append(
                f"{trainer}: chosen test mIoU mean {figures[f'seeds_miou_mean_{trainer}']:.4f}, "
                f"min {figures[f'seeds_miou_min_{trainer}']:.4f}"
            )
    return "\n".join(lines)


def plot_curves(runs: list[RunResult], out_dir: Path) -> list[Path]:
    """One PNG per trainer: test mIoU and fraction of test pixels predicted target, per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for trainer in TRAINERS:
        mine = [r for r in runs if r.trainer == trainer]
        if not mine:
            continue
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        for r in mine:
            epochs = [p["epoch"] for p in r.curve]
            top.plot(epochs, r.miou(), label=f"seed {r.seed}")
            bottom.plot(epochs, [p["pos"] for p in r.curve])
        top.set_ylabel("test mIoU")
        top.legend(fontsize=7, ncol=4)
        bottom.set_ylabel("test pixels predicted target")
        bottom.set_yscale("symlog", linthresh=1e-4)  # zeros allowed
        bottom.set_xlabel("epoch")
        top.set_title(f"GGL-Net per seed: {trainer}")
        fig.tight_layout()
        path = out_dir / f"seeds_{trainer}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def check_stuck(figures: dict[str, Any]) -> None:
    """A collapsed run (never reaches the floor from a tenth of the epochs on) fails the bench."""
    bad = [
        f"{r['trainer']} seed {r['seed']}"
        for r in figures["seeds_detail"]["table"]
        if r["collapsed"]
    ]
    if bad:
        raise BenchFailedError(f"seeds: collapsed runs: {', '.join(bad)}", figures)


def measure(
    setup: Setup | None = None,
    trainers: Sequence[str] = TRAINERS,
    work: Path | None = None,
    plot_dir: Path | None = ROOT / "bench",
    check: bool = True,
) -> dict[str, Any]:
    """Synth once, then every trainer × seed one after the other (never two at once);
    `check`: a collapsed run raises `BenchFailedError` (off for smoke runs)."""
    setup = setup or Setup()
    with tempfile.TemporaryDirectory(prefix="gglops-seeds-") as tmp:
        root = write_data((work or Path(tmp)) / "data", setup)
        test = read_folder(root / "test")
        splits = {"train": len(read_folder(root / "train")), "test": len(test)}
        print(
            f"[seeds] {setup.n} synthetic {setup.size}² images ({splits['train']} train / "
            f"{splits['test']} test), {setup.epochs} epochs, seeds {list(setup.seeds)}, "
            f"width {setup.width_mult}, trainers {', '.join(trainers)}",
            flush=True,
        )
        runs = [train_run(t, root, setup, s, test) for s in setup.seeds for t in trainers]
    figures = figures_of(runs, setup, splits)
    if plot_dir is not None:
        figures["seeds_detail"]["plots"] = [str(p) for p in plot_curves(runs, plot_dir)]
    print(table_text(figures), flush=True)
    if check:
        check_stuck(figures)
    return figures


def _seed_list(text: str) -> tuple[int, ...]:
    """`8` → seeds 0..7; `1,2` → seeds 1 and 2."""
    if "," in text:
        return tuple(int(s) for s in text.split(",") if s.strip())
    return tuple(range(int(text)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = Setup()
    parser.add_argument("--quick", action="store_true", help="smoke: 2 seeds, 2 epochs, 32²")
    parser.add_argument("--seeds", help="a count (8 → 0..7) or a list (1,2; one seed: 3,)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--width-mult", type=float)
    parser.add_argument("--loss", choices=("soft_iou", "bce_soft_iou"), default=d.loss)
    parser.add_argument("--plain-augment", choices=("none", "flips", "menu"))
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision)
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    parser.add_argument("--work", type=Path, help="keep the synthetic data here (new dir)")
    parser.add_argument("--plots", type=Path, help="PNG folder (default bench/; --quick: none)")
    args = parser.parse_args(argv)
    setup = Setup.quick() if args.quick else d
    given = {
        "seeds": _seed_list(args.seeds) if args.seeds else None,
        "epochs": args.epochs,
        "n": args.n,
        "size": args.size,
        "width_mult": args.width_mult,
        "plain_augment": args.plain_augment,
    }
    setup = replace(setup, loss=args.loss, threads=args.threads, precision=args.precision)
    setup = replace(setup, **{k: v for k, v in given.items() if v is not None})
    plots = args.plots or (None if args.quick else ROOT / "bench")
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
    status = 0
    try:
        # A smoke run is too short to learn: it checks the plumbing, not the collapse rule.
        figures = measure(setup, args.trainers.split(","), args.work, plots, not args.quick)
    except BenchFailedError as exc:
        figures, status = exc.figures, 1
        print(f"[seeds] FAILED: {exc}", file=sys.stderr, flush=True)
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
