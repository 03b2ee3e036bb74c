"""Logit trace: what the first training steps do to target and background logits.

For each trainer of `bench.seeds` (the platform's `TrainSession`, an authors-like plain
loop) and each seed, trains on the synthetic setup of `bench.seeds` for `--steps` steps and
records, on every training batch as the step sees it (train mode, before its update): the
mean logit on target pixels, the mean logit on background pixels, the fraction of pixels
with p > 0.5, and the loss. After every epoch it also records the test split's mIoU and
fraction of pixels predicted target (eval mode). Step s is the batch after s updates.

Switches, one at a time, to find what decides the start:

- `--head`: the 16 → 1 prediction conv as built (`model`: fan-in weights, bias calibrated
  to `gglnet.model.PRIOR`); `zero-bias` (the same weights, bias 0: the init before the
  calibration); `fanout` (the same weights × √16: the reference's Kaiming fan-out scale,
  bias 0); `prior` (bias −log((1 − π)/π) with π = `--prior`, no calibration);
  `calibrated` (bias calibrated to π = `--prior`); `retina` (weights N(0, 0.01²) from a
  generator of their own, prior bias).
- `--loss`, `--augment-p` (platform), `--plain-augment` (plain), `--deterministic`,
  `--precision` (platform: `auto` is bf16 autocast on a CPU with avx512_bf16; the plain loop
  runs fp32).

    python -m bench.logit_trace --seeds 1,2 --steps 200 --threads 2 --out /tmp/trace.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.seeds import (
    BUILDERS,
    TRAINERS,
    LossFn,
    Pair,
    Setup,
    evaluate,
    read_folder,
    resolved_precision,
    write_data,
)

REPORT_STEPS = (0, 25, 50, 100, 200)
HEADS = ("model", "zero-bias", "fanout", "prior", "retina", "calibrated")


class _TraceDoneError(Exception):
    """Raised from inside the traced loss once the step budget is traced."""


class StepTrace:
    """Wraps a trainer's loss: records the batch's logit statistics at every step."""

    def __init__(self, loss_fn: LossFn, steps: int) -> None:
        self.loss_fn, self.steps = loss_fn, steps
        self.points: list[dict[str, float]] = []

    def __call__(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = masks.to(logits.dtype) > 0.5
            point = {
                "step": float(len(self.points)),
                "target_logit": logits[target].mean().item() if target.any() else math.nan,
                "background_logit": logits[~target].mean().item(),
                "positive": (logits > 0).float().mean().item(),
            }
        loss = self.loss_fn(logits, masks)
        point["loss"] = loss.item()
        self.points.append(point)
        if len(self.points) > self.steps:
            raise _TraceDoneError
        return loss


def set_head(model: nn.Module, head: str, prior: float, seed: int = 0) -> None:
    """Re-initialise the prediction conv (`model.head[-1]`) as `head` says."""
    from gglnet import GGLNet
    from gglnet.model import calibrate_prior

    assert isinstance(model, GGLNet)
    conv = model.head[-1]
    assert isinstance(conv, nn.Conv2d) and conv.out_channels == 1 and conv.bias is not None
    weight, bias = conv.weight, conv.bias
    prior_logit = -math.log((1 - prior) / prior)
    with torch.no_grad():
        if head == "zero-bias":
            bias.zero_()
        elif head == "fanout":  # fan_out = 1 output × 1 × 1 vs fan_in = C_in: std × √C_in
            weight.mul_(math.sqrt(conv.in_channels))
            bias.zero_()
        elif head == "prior":
            bias.fill_(prior_logit)
        elif head == "retina":
            generator = torch.Generator().manual_seed(seed)
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.01)
            bias.fill_(prior_logit)
        elif head == "calibrated":
            calibrate_prior(model, prior)
        elif head != "model":
            raise ValueError(f"head {head!r}: one of {', '.join(HEADS)}")


def trace_run(
    trainer: str,
    root: Path,
    setup: Setup,
    seed: int,
    test: Sequence[Pair],
    steps: int,
    head: str = "model",
    prior: float = 0.01,
) -> dict[str, Any]:
    """One trainer × seed, `steps` steps: the per-step trace and the per-epoch test points."""
    start = time.perf_counter()
    run = BUILDERS[trainer](root, setup, seed)
    set_head(run.model, head, prior, seed)
    trace = StepTrace(run.loss_fn, steps)
    run.loss_fn = trace
    epochs = []
    for epoch in range(steps + 1):
        try:
            run.train_epoch(epoch)
        except _TraceDoneError:
            break
        scores = evaluate(run.model, test)
        epochs.append({"epoch": epoch + 1, "step": len(trace.points)} | scores)
    return {
        "trainer": trainer,
        "seed": seed,
        "head": head,
        "train_images": getattr(run, "train_images", None),
        "steps": trace.points,
        "epochs": epochs,
        "wall_s": time.perf_counter() - start,
    }


def summary(result: dict[str, Any], at: Sequence[int] = REPORT_STEPS) -> list[str]:
    """One line per report step: target / background mean logit, positive fraction, loss."""
    points = {int(p["step"]): p for p in result["steps"]}
    lines = []
    for step in at:
        if step in points:
            p = points[step]
            lines.append(
                f"  step {step:>3}: target {p['target_logit']:+7.2f}  "
                f"background {p['background_logit']:+7.2f}  positive {p['positive']:6.1%}  "
                f"loss {p['loss']:.4f}"
            )
    for e in result["epochs"]:
        lines.append(
            f"  after epoch {e['epoch']} (step {e['step']}): test mIoU {e['miou']:.4f}  "
            f"test px predicted target {e['pos']:.1%}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.logit_trace",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = Setup()
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--head", choices=HEADS, default="model")
    parser.add_argument("--prior", type=float, default=0.01, help="π of the prior bias")
    parser.add_argument("--loss", choices=("soft_iou", "bce_soft_iou"), default=d.loss)
    parser.add_argument("--augment-p", type=float, default=d.augment_p, help="platform")
    parser.add_argument("--plain-augment", choices=("none", "flips", "menu"), default="flips")
    parser.add_argument("--deterministic", action="store_true", help="platform")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default=d.precision, help="platform"
    )
    parser.add_argument("--width-mult", type=float, default=d.width_mult)
    parser.add_argument("--n", type=int, default=d.n)
    parser.add_argument("--size", type=int, default=d.size)
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--data", type=Path, help="an existing synth folder (msda-net layout)")
    parser.add_argument("--out", type=Path, help="write every trace here (JSON)")
    args = parser.parse_args(argv)
    setup = replace(
        d,
        n=args.n,
        size=args.size,
        width_mult=args.width_mult,
        loss=args.loss,
        augment_p=args.augment_p,
        plain_augment=args.plain_augment,
        deterministic=args.deterministic,
        precision=args.precision,
        threads=args.threads,
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="gglops-trace-") as tmp:
        root = args.data or write_data(Path(tmp) / "data", setup)
        test = read_folder(root / "test")
        for seed in seeds:
            for trainer in args.trainers.split(","):
                result = trace_run(
                    trainer, root, setup, seed, test, args.steps, args.head, args.prior
                )
                results.append(result)
                precision = resolved_precision(setup) if trainer == "platform" else "fp32"
                print(
                    f"[trace] {trainer} seed {seed} head {args.head} loss {args.loss} {precision} "
                    f"({result['train_images']} train images, {result['wall_s']:.0f} s)",
                    flush=True,
                )
                print("\n".join(summary(result)), flush=True)
    if args.out:
        record = {"setup": asdict(setup), "head": args.head, "prior": args.prior}
        args.out.write_text(json.dumps(record | {"runs": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
