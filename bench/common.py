"""What every bench module shares: the failure that still saves its figures, the baseline's
child process, a module's standalone `main`, and where a figure was measured.

Its own module, below `bench.run` (which runs every bench) and the bench modules (which
`bench.run` imports), so that none of them imports another for these."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any


class BenchFailedError(Exception):
    """A bench measured its figures and they show a failure (e.g. a collapsed training run):
    `main` saves `figures`, runs the other benches, then exits 1."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


def run_child(
    argv: list[str], prog: str, config_flag: str, train: Callable[[Path, str, int], Any]
) -> int:
    """A bench's baseline run in its own process: `--data ROOT --seed N <config_flag> JSON
    --out FILE` → `train(root, json_text, seed)`, whose dataclass result is written as JSON."""
    child = argparse.ArgumentParser(prog=prog)
    child.add_argument("--data", type=Path, required=True)
    child.add_argument("--seed", type=int, required=True)
    child.add_argument(config_flag, dest="config", required=True)
    child.add_argument("--out", type=Path, required=True)
    args = child.parse_args(argv)
    result = train(args.data, args.config, args.seed)
    args.out.write_text(json.dumps(asdict(result)))
    return 0


def run_standalone(
    measure: Callable[[], dict[str, Any]], prefix: str, out: Path | None, hidden: str = ""
) -> int:
    """A bench module's `main` after parsing: measure, write `out`, print the figures but
    the `hidden` key (a bulky detail); a BenchFailedError still saves them and returns 1."""
    status = 0
    try:
        figures = measure()
    except BenchFailedError as exc:
        figures, status = exc.figures, 1
        print(f"{prefix} FAILED: {exc}", file=sys.stderr, flush=True)
    text = json.dumps(figures, indent=2)
    if out:
        out.write_text(text + "\n")
    summary = {k: v for k, v in figures.items() if k != hidden}
    print(json.dumps(summary, indent=2))
    return status


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPUs this process may use, CPU model, Python."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
    }
