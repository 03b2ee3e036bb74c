"""End to end: the default DVC pipeline on real services (S3, MLflow server, a Ray head).

One `dvc repro` of the repository's own dvc.yaml, in a scratch git + DVC project at tiny
sizes (with the real-dataset subrepos beside it, as in the repo), is shared by the tests
below: what a user sees after the demo (`dvc status`, `dag`, `metrics show`, a no-op second
repro), `dvc exp run` experiments side by side with the baseline, and `dvc plots show`
rendered offline in headless Chromium (PNGs under $GGLOPS_SHOTS, default the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pipeline_tools import ink_fraction, merge, offline_plots_template, run, screenshot

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")

TINY = {
    "synth": {"n": 16, "size": 64, "seed": 3},
    "data": {"image_size": 32},
    "model": {"width_mult": 0.25},
    "train": {"epochs": 2, "batch_size": 4, "deterministic": True},
    "tune": {
        "samples": 2,
        "max_concurrent": 2,
        "epochs": 1,
        "grace_period": 1,
        "cpus_per_worker": 1.0,
    },
    "gates": {"min_miou": 0.0, "min_pd": 0.0, "max_fa": 1.0, "tolerance": 1.0},
}
DOWNSTREAM_OF_TRAIN = {"train", "evaluate", "register", "promote"}  # not synth, validate, tune
GIT = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]


@dataclass
class Demo:
    project: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]

    def dvc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([DVC, *args], self.project, self.env)


def ran_stages(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("'")[1] for line in done.stdout.splitlines() if "Running stage" in line}


def _copy_project(proj: Path) -> None:
    """The pipeline, the code it depends on, the subrepos and the plot template."""
    proj.mkdir()
    for name in ("dvc.yaml", "pyproject.toml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    skip = shutil.ignore_patterns("__pycache__", "dvc.lock", "tmp", "cache")
    for name in ("platform", "models", "pipelines"):
        shutil.copytree(ROOT / name, proj / name, ignore=skip)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [DVC, "init", "-q"]):
        subprocess.run(cmd, cwd=proj, check=True)
    shutil.copytree(ROOT / ".dvc" / "plots", proj / ".dvc" / "plots")


@pytest.fixture(scope="module")
def demo(stack, ray_head, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The default pipeline reproduced once, and committed (`dvc exp run` needs a commit).
    Its stages use the stack's Ray head, as `make demo` does (`gglops stack env`)."""
    base = tmp_path_factory.mktemp("e2e")
    proj = base / "proj"
    _copy_project(proj)
    from devstack import Stack

    env = {
        **os.environ,
        **Stack(ray_head.config).env(),  # what `eval "$(gglops stack env)"` sets
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GGLOPS_STORAGE_PATH": str(base / "ray"),
    }
    first = run([DVC, "repro"], proj, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    subprocess.run([*GIT, "add", "-A"], cwd=proj, check=True, capture_output=True)
    subprocess.run([*GIT, "commit", "-qm", "repro"], cwd=proj, check=True, capture_output=True)
    return Demo(proj, env, first)


@pytest.mark.integration
def test_default_pipeline_end_to_end(demo: Demo, stack) -> None:
    project = demo.project
    metrics = json.loads((project / "metrics.json").read_text())
    assert {"miou", "niou", "pd", "fa"} <= metrics.keys()
    best = yaml.safe_load((project / "params" / "best.yaml").read_text())
    assert "train.lr" in best
    decision = json.loads((project / "outputs/registry/promotion.json").read_text())
    assert decision["promoted"] is True and decision["gates"]["min_miou"] is True
    version = decision["version"]
    s3 = stack.s3_client()
    prefix = f"models/gglnet/{version}/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix)["Contents"]}
    assert {f"{prefix}model.onnx", f"{prefix}manifest.json"} <= keys

    # What a user sees right after the demo: only the default pipeline, all up to date.
    status = demo.dvc("status", "-q")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "up to date" in demo.dvc("status").stdout
    dag = demo.dvc("dag")
    assert "promote" in dag.stdout and "pipelines/" not in dag.stdout, dag.stdout
    shown = demo.dvc("metrics", "show")
    assert shown.returncode == 0 and "failed" not in shown.stdout + shown.stderr, shown
    assert "promotion.json" in shown.stdout and "metrics.json" in shown.stdout
    second = demo.dvc("repro")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Running stage" not in second.stdout, second.stdout


@pytest.mark.integration
def test_experiments_rerun_what_they_change_and_are_saved(demo: Demo) -> None:
    """A gate change makes only `promote` stale (`dvc status`, no run); `dvc exp run -S
    train.epochs` re-runs train and what follows it, not the sweep; a gate that says no is
    recorded, and the experiment saved beside the baseline."""
    params = demo.project / "params.yaml"
    original = params.read_text()
    edited = yaml.safe_load(original)
    edited["gates"]["tolerance"] = 0.5
    params.write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        stale = demo.dvc("status", "--json")
    finally:
        params.write_text(original)
    assert stale.returncode == 0, stale.stderr
    assert set(json.loads(stale.stdout)) == {"promote"}, stale.stdout

    longer = demo.dvc(
        "exp", "run", "-n", "longer", "-S", "train.epochs=3", "-S", "gates.min_miou=0.99"
    )
    assert longer.returncode == 0, longer.stdout[-3000:] + longer.stderr[-3000:]
    # evaluate re-runs only when the best checkpoint changed (epoch 3 may not beat epoch 2).
    ran = ran_stages(longer)
    assert {"train", "register", "promote"} <= ran <= DOWNSTREAM_OF_TRAIN, longer.stdout
    decision = json.loads((demo.project / "outputs/registry/promotion.json").read_text())
    assert decision["promoted"] is False and decision["gates"]["min_miou"] is False
    assert any(r.startswith("min_miou:") for r in decision["reasons"])

    shown = demo.dvc("exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    exps = {
        exp["name"]: exp["data"]
        for rev in json.loads(shown.stdout)
        for exp_rev in rev.get("experiments") or []
        for exp in exp_rev["revs"]
    }
    assert "longer" in exps, shown.stdout[:2000]
    saved = exps["longer"]
    assert saved["params"]["params.yaml"]["data"]["train"]["epochs"] == 3
    assert saved["metrics"]["metrics.json"]["data"]["miou"] >= 0
    assert saved["metrics"]["outputs/registry/promotion.json"]["data"]["promoted"] is False

    table = demo.dvc("exp", "show", "--no-pager", "--md").stdout
    assert "workspace" in table and "longer" in table, table
    diff = demo.dvc("metrics", "diff", "--md")  # HEAD (the baseline) vs the workspace (longer)
    assert diff.returncode == 0 and "promoted" in diff.stdout and "HEAD" in diff.stdout, diff
    print(f"dvc exp show:\n{table}\ndvc metrics diff:\n{diff.stdout}")


@pytest.mark.integration
def test_plots_render_offline(demo: Demo, tmp_path: Path) -> None:
    """`dvc plots show` with an inline Vega bundle, screenshotted; each plot also to PNG."""
    import vl_convert

    shots = Path(os.environ.get("GGLOPS_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    template = offline_plots_template(tmp_path / "offline.html")
    out = tmp_path / "dvc_plots"
    shown = demo.dvc("plots", "show", "--html-template", str(template), "-o", str(out))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    page = screenshot(out / "index.html", shots / "dvc_plots.png")
    assert ink_fraction(page) > 0.005  # four charts drawn (blank if Vega did not load)

    specs = json.loads(demo.dvc("plots", "show", "--json").stdout)["data"]
    marks = {}
    for name in ("size_recall", "tune_trials", "training", "pr_curve"):
        spec = specs[name][0]["content"]
        marks[name] = json.dumps(spec.get("mark") or [layer.get("mark") for layer in spec["layer"]])
        png = shots / f"dvc_plot_{name}.png"
        png.write_bytes(vl_convert.vegalite_to_png(spec, scale=1.5))
        assert ink_fraction(png) > 0.02, name  # axes, labels and marks
    assert '"bar"' in marks["size_recall"] and '"point"' in marks["tune_trials"]
    training = specs["training"][0]["content"]["data"]["values"]
    assert {row["field"] for row in training} >= {"val_miou", "val_niou", "val_pd", "train_loss"}
