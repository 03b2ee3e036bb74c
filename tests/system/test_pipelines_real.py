"""End to end: each real-dataset pipeline (`pipelines/<dataset>/`, a DVC subrepo) passes
every stage, and the default pipeline's `dvc status` does not see it.

NUAA-SIRST runs on the real published files: its pipeline's fetch stage reads them from the
local copy (`NUAA_SOURCE`, as offline users do), with the laptop recipe shrunk (32² patches,
width 0.25, one epoch, one tune trial, gates open). The other two datasets cannot be fetched
here, so their tests write synthetic data in that dataset's published layout where the
pipeline expects it (`data/raw/<dataset>`, as after `dvc add`) and shrink their params
(tiny images, the `resized` protocol). Each pipeline is copied into a scratch git + DVC
project at the same relative place and runs `dvc repro` in its folder against the real S3
and MLflow server; the three run at the same time (as three users would), each with its own
model name and Ray instance. IRSTD-1k's pipeline differs from NUDT-SIRST's only in its data
stage (layout, split, root), so only that stage of it runs here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import pytest
import yaml
from pipeline_tools import merge, run

from gglops.core.params import load_params

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The layout each dataset is published in, as `gglops data synth --layout` writes it.
LAYOUTS = {"nuaa-sirst": "nuaa-sirst", "nudt-sirst": "dnanet", "irstd-1k": "irstd-1k"}
STAGES = ("validate", "train", "evaluate", "register", "report")
TARGETS = {"irstd-1k": ["validate"]}  # `dvc repro` targets; the others run whole
NUAA_STAGES = ("fetch", "validate", "tune", "train", "evaluate", "register", "promote", "report")
# Synthetic images are 48 px and the recipe resizes them to 32: the `resized` protocol acts.
SYNTH_N, SYNTH_SIZE = 12, 48
TINY = {
    "data": {"image_size": 32, "loader_workers": 0},
    "model": {"width_mult": 0.25},
    "train": {"epochs": 1, "batch_size": 4, "use_gpu": False, "workers": 1},
    "gates": {"min_miou": 0.0, "min_pd": 0.0, "max_fa": 1.0, "tolerance": 1.0},
}
TINY_LAPTOP = merge(
    {"data": {"patch_size": 32}, "tune": {"samples": 1, "epochs": 1, "grace_period": 1}},
    TINY,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch git + DVC project for the three pipelines (the repo's own layout)."""
    proj = tmp_path_factory.mktemp("real") / "proj"
    proj.mkdir()
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=proj, check=True)
    return proj


def _place(project: Path, dataset: str, sirst: Path) -> Path:
    """The pipeline with shrunk params, and its data where it expects it."""
    source = ROOT / "pipelines" / dataset
    pipeline = project / "pipelines" / dataset
    shutil.copytree(
        source, pipeline, ignore=shutil.ignore_patterns("params.yaml", "dvc.lock", "tmp")
    )
    if dataset == "nuaa-sirst":
        recipe = pipeline / "recipes" / "laptop.yaml"
        shrunk = merge(load_params(recipe).model_dump(mode="json"), TINY_LAPTOP)
        recipe.write_text(yaml.safe_dump(shrunk, sort_keys=False))
        (pipeline / "params.yaml").write_text(yaml.safe_dump({"recipe": "laptop"}))
        return pipeline
    shrunk = merge(load_params(source / "params.yaml").model_dump(mode="json"), TINY)
    (pipeline / "params.yaml").write_text(yaml.safe_dump(shrunk, sort_keys=False))
    root = (pipeline / shrunk["data"]["root"]).resolve()
    subprocess.run(
        [str(BIN / "gglops"), "data", "synth", str(root), "--layout", LAYOUTS[dataset],
         "--n", str(SYNTH_N), "--size", str(SYNTH_SIZE), "--seed", "11"],
        check=True, capture_output=True,
    )  # fmt: skip
    return pipeline


@dataclass
class Repro:
    """One pipeline's `dvc repro`, started in the background."""

    pipeline: Path
    model: str
    env: dict[str, str]
    proc: Popen[bytes]
    logs: tuple[Path, Path]  # stdout, stderr: files, so no pipe fills while another is read
    took_s: float = 0.0

    def wait(self, since: float) -> subprocess.CompletedProcess[str]:
        self.proc.wait(timeout=900)
        self.took_s = time.monotonic() - since
        out, err = (log.read_text() for log in self.logs)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def _start(project: Path, dataset: str, stack, scratch: Path, sirst: Path) -> Repro:
    model = f"gglnet-{dataset}-{uuid.uuid4().hex[:8]}"  # aliases of its own on the shared stack
    pipeline = _place(project, dataset, sirst)
    env = {
        **os.environ,
        **stack.env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GGLOPS_STORAGE_PATH": str(scratch / dataset),
        "GGLOPS_REGISTERED_MODEL": model,
        "NUAA_SOURCE": str(sirst),  # the fetch stage reads the local copy
    }
    logs = (scratch / f"{dataset}.out", scratch / f"{dataset}.err")
    with logs[0].open("w") as out, logs[1].open("w") as err:
        cmd = [str(BIN / "dvc"), "repro", *TARGETS.get(dataset, [])]
        proc = Popen(cmd, cwd=pipeline, env=env, stdout=out, stderr=err)
    return Repro(pipeline, model, env, proc, logs)


@pytest.fixture(scope="module")
def repros(
    project: Path, stack, tmp_path_factory: pytest.TempPathFactory, nuaa_sirst_source: Path
) -> dict[str, tuple[Repro, subprocess.CompletedProcess[str]]]:
    """`dvc repro` of the three pipelines, started together, each waited for."""
    scratch = tmp_path_factory.mktemp("real-ray")
    t0 = time.monotonic()
    started = {
        dataset: _start(project, dataset, stack, scratch, nuaa_sirst_source)
        for dataset in sorted(LAYOUTS)
    }
    return {dataset: (repro, repro.wait(t0)) for dataset, repro in started.items()}


@pytest.mark.integration
def test_irstd_1k_data_stage_reads_its_published_layout(project: Path, repros: dict) -> None:
    repro, done = repros["irstd-1k"]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert _ran(done) == {"validate"}, done.stdout
    manifest = json.loads((repro.pipeline / "outputs/data/manifest.json").read_text())
    assert manifest["layout"] == "irstd-1k" and manifest["data_hash"]


@pytest.mark.integration
def test_real_dataset_pipeline_passes_every_stage(project: Path, repros: dict) -> None:
    dataset = "nudt-sirst"
    repro, done = repros[dataset]
    pipeline, model, env = repro.pipeline, repro.model, repro.env
    params = load_params(pipeline / "params.yaml")
    assert params.data.eval_protocol == "resized" and params.data.image_size == 32
    assert params.data.split == {"nudt-sirst": "50_50"}.get(dataset, params.data.split)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert _ran(done) == set(STAGES), done.stdout
    _check_subrepo(project, pipeline, env)

    metrics = json.loads((pipeline / "metrics.json").read_text())
    assert metrics["eval_protocol"] == "resized" and metrics["eval_size"] == 32
    assert metrics["n_pixels"] == metrics["n_images"] * 32 * 32
    candidate = json.loads((pipeline / "outputs/registry/candidate.json").read_text())
    assert candidate["tags"]["data_eval_protocol"] == "resized"
    report = _check_report(pipeline, model, done)
    assert "`data.eval_protocol = resized`" in report and "`resized` protocol (" in report
    print(f"{dataset}: dvc repro done {repro.took_s:.0f} s after the three started")  # -s / -rA


@pytest.mark.integration
def test_nuaa_sirst_pipeline_runs_on_the_published_files(project: Path, repros: dict) -> None:
    """fetch (from the local copy) → … → promote → report, on the real images: test at
    native resolution, the model chosen on the val list, every record says so."""
    repro, done = repros["nuaa-sirst"]
    pipeline, model, env = repro.pipeline, repro.model, repro.env
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert _ran(done) == set(NUAA_STAGES), done.stdout
    _check_subrepo(project, pipeline, env)
    assert len(list((pipeline / "data/nuaa-sirst/images").glob("*.png"))) == 427
    assert "Misc_111_pixels0.png: mask is 592x400" in done.stderr  # the documented rule

    metrics = json.loads((pipeline / "metrics.json").read_text())
    assert metrics["eval_protocol"] == "original" and metrics["n_images"] == 86
    assert metrics["model_selection"] == "val"
    result = json.loads((pipeline / "outputs/train/result.json").read_text())
    assert result["model_selection"] == "val: val split (85 images)"
    candidate = json.loads((pipeline / "outputs/registry/candidate.json").read_text())
    assert candidate["tags"]["data_selection"] == "val"
    promotion = json.loads((pipeline / "outputs/registry/promotion.json").read_text())
    assert promotion["promoted"] is True, promotion
    _check_report(pipeline, model, done)
    _check_console(done.stdout + done.stderr)
    print(f"nuaa-sirst: dvc repro done {repro.took_s:.0f} s after the three started")


# Ray's own lines that must stay in its logs folder, off a user's console.
RAY_NOISE = (
    "Checkpoint successfully created", "Reporting training result", "core_worker",
    "PreemptionWatcher", "PlacementGroupCleaner", "TrainController", "TensorBoard",
    "Traceback", "(RayTrainWorker", "Trial status:",
)  # fmt: skip


def _check_console(output: str) -> None:
    """`dvc repro` into a file, as CI sees it: tune's and train's plain lines, one per epoch,
    none of Ray's, nothing redrawn; each Ray run names its logs folder, which holds its lines."""
    assert not [noise for noise in RAY_NOISE if noise in output], output[-4000:]
    assert "\r" not in output and "\x1b" not in output
    assert len(re.findall(r"^\[gglops\] epoch \d+/1 ", output, re.M)) == 1, output[-4000:]
    assert re.search(r"^trial-\S+ lr=\S+  epoch 1/1  loss ", output, re.M), output[-4000:]
    logs = [Path(p) for p in re.findall(r"^logs: (\S+) ", output, re.M)]
    assert len(logs) == 2, output[-4000:]  # tune's Ray, then train's
    worker_out = "".join(f.read_text(errors="replace") for f in logs[1].glob("worker-*.out"))
    assert "[gglops] epoch 1/1" in worker_out


def _ran(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("'")[1] for line in done.stdout.splitlines() if "Running stage" in line}


def _check_subrepo(project: Path, pipeline: Path, env: dict[str, str]) -> None:
    """The subrepo is its own project: the repo root's DVC does not collect its stages, and
    its own `dvc status` is clean after the run."""
    root_stages = run([str(BIN / "dvc"), "stage", "list", "-R", "."], project, env)
    assert root_stages.returncode == 0 and "validate" not in root_stages.stdout, root_stages
    status = run([str(BIN / "dvc"), "status", "-q"], pipeline, env)
    assert status.returncode == 0, status.stdout + status.stderr


def _check_report(pipeline: Path, model: str, done: subprocess.CompletedProcess[str]) -> str:
    candidate = json.loads((pipeline / "outputs/registry/candidate.json").read_text())
    report = (pipeline / "report" / "report.md").read_text()
    assert f"# Reproducibility report: {model} version {candidate['version']}" in report
    assert "| GGL-Net published (" in report
    assert "GGL-Net published (" in done.stdout  # the report stage prints the comparison
    return report
