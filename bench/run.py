"""`make bench`: run every benchmark in one process, write bench/results.json, a Markdown
table (bench/results.md, also pasted into the README "Performance" section) and a PNG.

Each figure is a ratio or a pair measured in the same run, because these machines are
noisy. `python -m bench.run --only onnx,loader` runs a subset; `--with-demo` adds the
(10-minute) demo timing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
TABLE = ROOT / "bench" / "results.md"
PLOT = ROOT / "bench" / "throughput.png"
README = ROOT / "README.md"
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


TARGETS: dict[str, Target] = {
    "ray_train_throughput_ratio": Target(0.97),
    "onnxruntime_speedup_vs_torch_256": Target(2.0),
    "onnx_fraction_of_peak_256": Target(0.75),
    "loader_vs_step_64": Target(2.0),
    "loader_vs_step_256": Target(2.0),
    "cli_help_s": Target(0.5, higher_is_better=False),
    "dvc_repro_noop_s": Target(2.0, higher_is_better=False),
    "fresh_setup_s": Target(180.0, higher_is_better=False),
    "demo_s": Target(600.0, higher_is_better=False),
}


def _platform_times(with_demo: bool) -> dict[str, Any]:
    from bench import platform_times as pt

    out: dict[str, Any] = {"cli_help_s": pt.cli_help_s(), "fresh_setup_s": pt.fresh_setup_s()}
    noop = pt.dvc_repro_noop_s()
    if noop is not None:
        out["dvc_repro_noop_s"] = noop
    if with_demo:
        out["demo_s"] = pt.demo_s()
    return out


def _module_measure(name: str) -> Callable[[bool], dict[str, Any]]:
    def run(_: bool) -> dict[str, Any]:
        return importlib.import_module(f"bench.{name}").measure()

    return run


BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "platform": _platform_times,
    "loader": _module_measure("loader_vs_step"),
    "onnx": _module_measure("onnx_latency"),
    "train": _module_measure("train_throughput"),
}


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(results: dict[str, Any]) -> str:
    rows = ["| figure | value | target | met |", "|---|---|---|---|"]
    for name, value in sorted(results["figures"].items()):
        target = TARGETS.get(name)
        if target and isinstance(value, int | float):
            rows.append(
                f"| `{name}` | {_fmt(value)} | {target.text()} | "
                f"{'yes' if target.met(value) else 'no'} |"
            )
        else:
            rows.append(f"| `{name}` | {_fmt(value)} | | |")
    meta = results["machine"]
    rows.append("")
    rows.append(
        f"Measured {results['date']} on {meta['cpus']} CPUs ({meta['processor']}), "
        f"Python {meta['python']}; source: `bench/results.json`."
    )
    return "\n".join(rows) + "\n"


def plot_throughput(figures: dict[str, Any]) -> Path | None:
    """Bar chart of every images/s figure measured in this run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {k: v for k, v in figures.items() if k.endswith("images_per_s") and v}
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(bars) + 1.5))
    ax.barh(list(bars), list(bars.values()), color="#4477aa")
    ax.set_xlabel("images / s")
    ax.set_title("GGL-Net throughput per configuration (same run)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)
    return PLOT


def update_readme(table: str) -> None:
    text = README.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        return
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    README.write_text(f"{head}{MARK_BEGIN}\n{table}{MARK_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--with-demo", action="store_true", help="also time `make demo`")
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text())["figures"] if RESULTS.exists() else {}
    figures: dict[str, Any] = dict(previous)
    for name in args.only.split(","):
        start = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        figures.update(BENCHES[name](args.with_demo))
        print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
            "python": platform.python_version(),
        },
        "figures": figures,
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    table = markdown_table(results)
    TABLE.write_text(table)
    update_readme(table)
    plot_throughput(figures)
    print(table)


if __name__ == "__main__":
    main()
