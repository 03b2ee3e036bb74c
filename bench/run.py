"""`make bench`: run the benchmarks, merge their figures into bench/results.json, and write
the table (bench/results.md, also pasted into docs/performance.md) and a PNG.

Each figure is a ratio or a pair measured in the same run, because these machines are
noisy. `--only onnx,loader` reruns a subset: its figures replace the stored ones, the rest
are kept, and every figure carries its own timestamp and machine. `--with-demo` also times
`make demo` on a fresh clone (~10 min); without it the demo figure comes from the last
recorded timing (bench/demo_timing.json), with its source. The accuracy bench (~25 min)
trains GGL-Net with `gglops train` and with a plain torch loop; a collapsed run fails it.
The real_accuracy bench (~2.4 h) does the same on the real NUAA-SIRST with the laptop
recipe; a platform more than 0.02 test mIoU below the plain loop fails it.
The seeds bench (`--only seeds`, 16 runs of 30 epochs: hours on 2 cores, so not in the
default set) holds the platform against an authors-like loop over 8 seeds. The train_step
bench (`--only train_step`, ~15-40 min, mostly cold torch.compile on CPU, so not in the default
set) times the training step's precision / channels_last / compile variants side by side.

A bench whose figures show a failure raises `BenchFailedError`: its figures are still saved, the
other benches still run, and `make bench` exits 1 at the end naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BenchFailedError, machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
TABLE = ROOT / "bench" / "results.md"
PLOT = ROOT / "bench" / "throughput.png"
# The measurements page: its block between the markers is this table, generated, never edited.
PAGE = ROOT / "docs" / "performance.md"
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Target:
    """A figure's goal: `value >= bound` (higher is better) or `value <= bound`."""

    bound: float
    higher_is_better: bool = True

    def met(self, value: float) -> bool:
        return value >= self.bound if self.higher_is_better else value <= self.bound

    def text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.bound:g}"


@dataclass(frozen=True)
class Figure:
    """A headline figure of the table: how it is measured, and its target if it has one."""

    how: str
    target: Target | None = None


AT_LEAST, AT_MOST = Target, lambda bound: Target(bound, higher_is_better=False)
FIGURES: dict[str, Figure] = {
    "ray_train_throughput_ratio": Figure(
        "Ray Train (1 worker, 2 CPUs) ÷ bare torch loop, images/s; same model (width 0.5), "
        "data (256 train images, 64²), batch 8, steps and grad clipping; "
        "train+checkpoint+report, validation and epoch 0 excluded; median of 3 alternating "
        "runs each",
        AT_LEAST(0.97),
    ),
    "ray_train_phase_throughput_ratio": Figure(
        "as above, training phase only (the rate `gglops train` prints)"
    ),
    "ray_startup_s": Figure("`fit()` called → first epoch starts (worker, DDP group, data)"),
    "ray_init_s": Figure("`ray.init()` of a local cluster"),
    "onnxruntime_speedup_vs_torch_256": Figure(
        "torch eager ms ÷ ORT ms, batch 1, 256², 2 threads, interleaved, median of 10",
        AT_LEAST(2.0),
    ),
    "onnxruntime_speedup_vs_torch_512": Figure("as above at 512²"),
    "onnxruntime_speedup_vs_torch_256_1thread_cpu": Figure(
        "as at 256², 1-thread CPU time (robust to other load)"
    ),
    "onnx_fraction_of_peak_256": Figure(
        "FLOPs/image ÷ ORT latency ÷ fp32 2048² matmul peak, same run", AT_LEAST(0.75)
    ),
    "onnx_fraction_of_peak_512": Figure("as above at 512²"),
    "onnx_max_abs_diff": Figure("max abs(ORT − torch) probability, 64², 256², 512²"),
    "onnx_mask_mismatch_pixels": Figure("mask pixels (p > 0.5) that differ, same inputs"),
    "loader_vs_step_64": Figure(
        "training loader images/s (cached, full augmentation) ÷ default-model training step "
        "images/s, batch 4, 64²",
        AT_LEAST(2.0),
    ),
    "loader_vs_step_256": Figure("as above at 256²", AT_LEAST(2.0)),
    "cli_help_s": Figure("median of 5 `gglops --help`", AT_MOST(0.5)),
    "dvc_repro_noop_s": Figure(
        "median of 3 no-op `dvc repro validate` in a fresh clone after a real repro "
        "(synth + validate stages)",
        AT_MOST(2.0),
    ),
    "dvc_repro_noop_full_s": Figure(
        "no-op `dvc repro` of the whole pipeline right after the timed demo", AT_MOST(2.0)
    ),
    "fresh_setup_s": Figure(
        "`make setup` into a new venv with an empty uv cache (from requirements.lock)",
        AT_MOST(180.0),
    ),
    "demo_s": Figure("`make demo` in a fresh clone (see its source)", AT_MOST(600.0)),
    "scaling_2_vs_1_workers": Figure(
        "Ray Train images/s, 2 workers ÷ 1 worker, 1 CPU each (ideal 2; 2 cores in all)"
    ),
    "train_speedup_vs_fp32_eager": Figure(
        "bare training step of GGL-Net (forward, fp32 loss outside autocast, backward, grad clip "
        "1, AdamW), laptop recipe (160², batch 8, width 0.5), 2 torch threads: best variant "
        "(bf16 autocast / channels_last / torch.compile, alone and stacked) ÷ fp32 eager "
        "images/s; interleaved rounds in one process, medians (bench/train_step.py)",
        AT_LEAST(2.5),
    ),
    "train_fraction_of_peak": Figure(
        "3 × forward FLOPs per image × images/s of the best variant ÷ fp32 2048² matmul peak "
        "measured in the same rounds",
        AT_LEAST(0.30),
    ),
    "train_step_best_variant": Figure("the fastest variant at the laptop recipe"),
    **{
        f"train_step{tag}_images_per_s_{label}": Figure(f"{what}, {recipe}, as above")
        for tag, recipe in [("", "laptop recipe"), ("_demo", "demo recipe (64², batch 8)")]
        for label, what in [
            ("fp32", "fp32 eager images/s"),
            ("bf16", "bf16 autocast images/s"),
            ("best", "best variant images/s"),
        ]
    },
    "train_demo_speedup_vs_fp32_eager": Figure("best ÷ fp32 eager, demo recipe, as above"),
    "train_demo_fraction_of_peak": Figure("fraction of peak, demo recipe, as above"),
    "train_step_demo_best_variant": Figure("the fastest variant at the demo recipe"),
    "train_loader_vs_step": Figure(
        "`TrainDataset(fit=crop, 160²)` + DataLoader (workers 0) images/s on one thread from "
        "NUAA-SIRST (idx_427 train, cached after the first pass) ÷ best step images/s"
    ),
    "gpu_amp_channels_last_images_per_s": Figure(
        "1 GPU, AMP + channels-last, default model, batch 8, 256²"
    ),
    "serve_throughput_vs_ort": Figure(
        "`gglops serve` requests/s over HTTP (loopback, 8 keep-alive clients, 256² PNGs, "
        "batch-1 requests, @serve.batch, 1 replica) ÷ a bare onnxruntime session's images/s "
        "on the same PNGs in one process (decode + run + targets; the faster of a run before "
        "and one after), width 0.5",
        AT_LEAST(0.8),
    ),
    "serve_p50_ms": Figure("median request latency at that load"),
    "serve_p99_ms": Figure("99th percentile request latency at that load"),
    "accuracy_platform_vs_baseline": Figure(
        "test mIoU of `gglops train` ÷ a plain torch loop (PIL reader, flips only), final epoch, "
        "mean of seeds 0 and 1; default GGL-Net (width 1), 300 synthetic 128² images "
        "(240 train / 60 test, synth seed 7), 8 epochs, Adam 1e-4, batch 4, soft-IoU, "
        "1 thread each; scored by IRSTDMetrics at original size (protocol in results.json)",
        AT_LEAST(1.0),
    ),
    "accuracy_collapsed_runs": Figure(
        "runs (2 trainers × 2 seeds) whose test mIoU is < 0.05 at every epoch from "
        "ceil(epochs/10) on; any fails the bench",
        AT_MOST(0),
    ),
    "seeds_platform_vs_plain": Figure(
        "chosen-epoch test mIoU of the platform (`TrainSession`, in-process) ÷ an authors-like "
        "plain loop, mean of 8 seeds; default GGL-Net, 128 synthetic 64² images (102 train / "
        "26 test, synth seed 5, MSDA-Net layout), 30 epochs, Adam 1e-4, batch 4, soft IoU; "
        "epoch chosen on test (bench/seeds.py)"
    ),
    **{
        f"seeds_miou_{stat}_{trainer}": Figure(f"chosen-epoch test mIoU, {stat} of 8 seeds, {who}")
        for stat in ("mean", "min")
        for trainer, who in [("platform", "platform"), ("plain", "plain loop")]
    },
    **{
        f"seeds_target_px_epoch2_max_{trainer}": Figure(
            f"largest fraction of test pixels predicted target after epoch 2 over the seeds, {who}"
        )
        for trainer, who in [("platform", "platform"), ("plain", "plain loop")]
    },
    "seeds_stuck_runs": Figure(
        "runs (2 trainers × 8 seeds) still below test mIoU 0.05 after ceil(epochs/10) epochs"
    ),
    **{
        f"accuracy_{metric}_{trainer}": Figure(f"{label}, {who}, as above")
        for metric, label in [
            ("miou", "test mIoU"),
            ("niou", "test nIoU"),
            ("pd", "test Pd"),
            ("fa", "test Fa (fraction of pixels)"),
        ]
        for trainer, who in [("platform", "`gglops train`"), ("baseline", "plain torch loop")]
    },
    "real_miou_platform_minus_baseline": Figure(
        "real NUAA-SIRST (idx_427: 256 train / 85 val / 86 test), laptop recipe (width 0.5, "
        "uniform 160² patches, batch 8, AdamW 1e-3 cosine ending at epoch 12, BCE + soft IoU "
        "summed over the batch, 12 epochs, bf16 + channels_last where native): mean test mIoU "
        "of `gglops train` + `gglops evaluate` (the authors' augmentation menu) minus a plain "
        "torch loop (own PIL reader, flips only), seeds 0–7, model chosen on val, test at "
        "native resolution (padded to 32, fp32), 2 threads each, one run at a time "
        "(bench/real_accuracy.py; "
        "curves in bench/real_accuracy.png)",
        AT_LEAST(-0.02),
    ),
    "real_miou_worst_seed_gap": Figure(
        "worst seed's test mIoU, platform minus plain loop, as above", AT_LEAST(-0.03)
    ),
    **{
        f"real_miou_min_{trainer}": Figure(f"real test mIoU, worst of the seeds, {who}")
        for trainer, who in [("platform", "`gglops train`"), ("baseline", "plain torch loop")]
    },
    "real_platform_vs_baseline": Figure("test mIoU, platform ÷ plain loop, as above"),
    **{
        f"real_{metric}_{trainer}": Figure(f"{label}, {who}, as above")
        for metric, label in [
            ("miou", "real test mIoU"),
            ("niou", "real test nIoU"),
            ("pd", "real test Pd"),
            ("fa", "real test Fa (fraction of pixels)"),
        ]
        for trainer, who in [("platform", "`gglops train`"), ("baseline", "plain torch loop")]
    },
}


def _platform(_: bool) -> dict[str, Any]:
    from bench import platform_times

    return platform_times.measure()


def _loader(_: bool) -> dict[str, Any]:
    from bench import loader_vs_step

    return loader_vs_step.measure()


def _onnx(_: bool) -> dict[str, Any]:
    from bench import onnx_tuning

    return onnx_tuning.measure()


def _train(_: bool) -> dict[str, Any]:
    from bench import train_throughput

    return train_throughput.measure()


def _train_step(_: bool) -> dict[str, Any]:
    from bench import train_step

    return train_step.measure()


def _gpu(_: bool) -> dict[str, Any]:
    from bench import gpu_throughput

    return gpu_throughput.measure()


def _serve(_: bool) -> dict[str, Any]:
    from bench import serve

    return serve.measure()


def _demo(run_it: bool) -> dict[str, Any]:
    from bench import demo

    if run_it:
        demo.record(demo.time_demo())
    return demo.figures()


def _accuracy(_: bool) -> dict[str, Any]:
    from bench import accuracy

    return accuracy.measure()


def _real_accuracy(_: bool) -> dict[str, Any]:
    from bench import real_accuracy

    return real_accuracy.measure()


def _seeds(_: bool) -> dict[str, Any]:
    from bench import seeds

    return seeds.measure()


BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "platform": _platform,
    "loader": _loader,
    "onnx": _onnx,
    "train": _train,
    "train_step": _train_step,
    "gpu": _gpu,
    "accuracy": _accuracy,
    "real_accuracy": _real_accuracy,
    "seeds": _seeds,
    "serve": _serve,
    "demo": _demo,
}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _row(name: str, entry: dict[str, Any]) -> str:
    figure, value = FIGURES[name], entry["value"]
    target, met = "", ""
    if figure.target:
        target = figure.target.text()
        numeric = isinstance(value, int | float)
        met = ("yes" if figure.target.met(value) else "no") if numeric else "—"
    how = figure.how + (f"; source: {entry['source']}" if "source" in entry else "")
    when = (
        f"{entry['measured']} (load {entry['load']:.1f})" if "load" in entry else entry["measured"]
    )
    return f"| `{name}` | {_fmt(value)} | {target} | {met} | {how} | {when} |"


def markdown_table(figures: dict[str, dict[str, Any]]) -> str:
    """The headline figures (FIGURES order) that results.json holds."""
    rows = [
        "| figure | value | target | met | how measured | measured (1-min load, 2 cores) |",
        "|---|---|---|---|---|---|",
        *(_row(name, figures[name]) for name in FIGURES if name in figures),
    ]
    # Where the figures were measured: a "not measured" placeholder ran nothing anywhere.
    measured = [e for e in figures.values() if not str(e["value"]).startswith("not measured")]
    machines = {json.dumps(e["machine"], sort_keys=True) for e in measured}
    described = "; ".join(
        f"{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}"
        for m in map(json.loads, sorted(machines))
    )
    rows += [
        "",
        f"Machine: {described}. Every figure and the detail behind it (per-round rates, "
        "latencies in ms, matmul peak, load average at measurement) is in "
        "`bench/results.json`; throughput per configuration: "
        "[bench/throughput.png](../bench/throughput.png).",
    ]
    return "\n".join(rows) + "\n"


def plot_throughput(figures: dict[str, dict[str, Any]]) -> Path | None:
    """Bar chart of every images/s figure in results.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {
        k.removesuffix("_images_per_s"): e["value"]
        for k, e in sorted(figures.items())
        if k.endswith("images_per_s") and isinstance(e["value"], int | float)
    }
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(bars) + 1.5))
    ax.barh(list(bars), list(bars.values()), color="#4477aa")
    ax.set_xlabel("images / s")
    ax.set_title("GGL-Net throughput per configuration (bench/results.json)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)
    return PLOT


def _write(path: Path, text: str) -> None:
    """Temp + rename: an interrupted bench never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def update_page(table: str) -> None:
    text = PAGE.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        return
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    _write(PAGE, f"{head}{MARK_BEGIN}\n{table}{MARK_END}{tail}")


def load_figures() -> dict[str, dict[str, Any]]:
    return json.loads(RESULTS.read_text())["figures"] if RESULTS.exists() else {}


def save(figures: dict[str, dict[str, Any]]) -> str:
    """results.json, results.md, the docs/performance.md block and the PNG, all from `figures`."""
    _write(RESULTS, json.dumps({"figures": figures}, indent=2, sort_keys=True) + "\n")
    table = markdown_table(figures)
    _write(TABLE, table)
    update_page(table)
    plot_throughput(figures)
    return table


def _entries(raw: dict[str, Any], bench: str, host: dict[str, Any]) -> dict[str, Any]:
    """Each figure with its timestamp, machine and 1-min load average at the end of its bench
    (a value may bring its own source, timestamp and machine)."""
    stamp, load = time.strftime("%Y-%m-%d %H:%M"), round(os.getloadavg()[0], 2)
    entries = {}
    for name, value in raw.items():
        entry = value if isinstance(value, dict) and "value" in value else {"value": value}
        entries[name] = {"measured": stamp, "machine": host, "bench": bench, "load": load, **entry}
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    optional = ("demo", "seeds", "train_step")
    default = [name for name in BENCHES if name not in optional] + ["demo"]
    parser.add_argument("--only", default=",".join(default), help="comma-separated subset")
    parser.add_argument("--with-demo", action="store_true", help="also time `make demo`")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    figures, failed = load_figures(), []
    for name in names:
        start = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        try:
            raw = BENCHES[name](args.with_demo)
        except BenchFailedError as exc:
            raw = exc.figures
            failed.append(f"{name} ({exc})")
            print(f"[bench] {name} FAILED: {exc}", flush=True)
        figures |= _entries(raw, name, machine())
        save(figures)  # after every bench: an interrupted run keeps what it measured
        print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", flush=True)
    print(markdown_table(figures))
    if failed:
        raise SystemExit(f"[bench] failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
