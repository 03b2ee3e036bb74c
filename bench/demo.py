"""`make demo` wall time on a fresh clone, and the whole pipeline's no-op `dvc repro` after it.

The demo takes ~10 minutes and needs the stack's ports free, so `make bench` does not run
it by default: it reads the last timing from bench/demo_timing.json (with its source).

    python -m bench.demo                      # clone HEAD, time `make demo`, record it
    python -m bench.demo --seconds 512 --source "make demo in /tmp/demo, fresh clone of 9c9021e"
                                              # record a timing measured by hand
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.platform_times import ROOT, clone_head, tool_env

RECORD = ROOT / "bench" / "demo_timing.json"


class DemoTiming(BaseModel):
    demo_s: float
    dvc_repro_noop_full_s: float | None = None
    measured: str
    source: str
    machine: dict[str, Any]


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return out.stdout.decode().strip()


def _run(cmd: list[str], cwd: Path, timeout: float) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, timeout=timeout, env=tool_env())
    return time.perf_counter() - start


def time_demo(timeout: float = 1800) -> DemoTiming:
    """Clone HEAD, `make demo` (setup, stack up, dvc repro, summary), then no-op repro ×3."""
    from bench.common import machine

    with tempfile.TemporaryDirectory() as tmp:
        repo = clone_head(Path(tmp) / "repo")
        print(f"[bench] demo: make demo in {repo} (~10 min)", flush=True)
        try:
            demo_s = _run(["make", "demo"], repo, timeout)
            dvc = str(repo / ".venv" / "bin" / "dvc")
            noop = statistics.median(_run([dvc, "repro"], repo, 120) for _ in range(3))
        finally:
            subprocess.run(["make", "clean-stack"], cwd=repo, env=tool_env(), check=False)
    return DemoTiming(
        demo_s=demo_s,
        dvc_repro_noop_full_s=noop,
        measured=time.strftime("%Y-%m-%d %H:%M"),
        source=f"bench.demo: `make demo` in a fresh clone of {_commit()}",
        machine=machine(),
    )


def record(timing: DemoTiming) -> None:
    tmp = RECORD.with_name(f".{RECORD.name}.tmp")
    tmp.write_text(timing.model_dump_json(indent=2) + "\n")
    tmp.replace(RECORD)


def figures() -> dict[str, Any]:
    """Results entries from the recorded timing, or a 'not measured' value."""
    if not RECORD.exists():
        return {"demo_s": "not measured: run `make bench BENCH_ARGS=--with-demo`"}
    timing = DemoTiming.model_validate_json(RECORD.read_text())
    meta = {"measured": timing.measured, "machine": timing.machine, "source": timing.source}
    out = {"demo_s": {"value": timing.demo_s, **meta}}
    if timing.dvc_repro_noop_full_s is not None:
        out["dvc_repro_noop_full_s"] = {"value": timing.dvc_repro_noop_full_s, **meta}
    return out


def main() -> None:
    from bench.common import machine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, help="record this timing instead of running")
    parser.add_argument("--noop-seconds", type=float, help="its whole-pipeline no-op repro")
    parser.add_argument("--source", default="measured by hand", help="how it was measured")
    args = parser.parse_args()
    if args.seconds is None:
        timing = time_demo()
    else:
        timing = DemoTiming(
            demo_s=args.seconds,
            dvc_repro_noop_full_s=args.noop_seconds,
            measured=time.strftime("%Y-%m-%d %H:%M"),
            source=args.source,
            machine=machine(),
        )
    record(timing)
    print(timing.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
