"""End to end: the default DVC pipeline on real services (S3, MLflow server, local Ray).

Runs `dvc repro` of the repository's own dvc.yaml in a scratch git+DVC project at tiny
sizes, then checks that a second repro is a no-op and that changing one param re-runs
only the stages that read it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_tools import merge, run

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

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


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch git + DVC project holding the pipeline and the code it depends on."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("dvc.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, proj / name)
    for name in ("platform", "models"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=proj, check=True)
    return proj


@pytest.mark.integration
def test_default_pipeline_end_to_end(project: Path, stack, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **stack.env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "GGLOPS_STORAGE_PATH": str(tmp_path / "ray"),
    }
    first = run([str(BIN / "dvc"), "repro"], project, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    metrics = json.loads((project / "metrics.json").read_text())
    assert {"miou", "niou", "pd", "fa"} <= metrics.keys()
    best = yaml.safe_load((project / "params" / "best.yaml").read_text())
    assert "train.lr" in best
    decision = json.loads((project / "outputs/registry/promotion.json").read_text())
    assert decision["passed"] is True
    version = decision["version"]
    s3 = stack.s3_client()
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"models/gglnet/{version}/")[
            "Contents"
        ]
    }
    assert {f"models/gglnet/{version}/model.onnx", f"models/gglnet/{version}/manifest.json"} <= keys

    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", "repro"], cwd=project, check=True, capture_output=True)
    second = run([str(BIN / "dvc"), "repro"], project, env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Running stage" not in second.stdout, second.stdout

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["gates"]["tolerance"] = 0.5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    diff = run([str(BIN / "dvc"), "params", "diff"], project, env)
    assert "gates.tolerance" in diff.stdout
    third = run([str(BIN / "dvc"), "repro"], project, env)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    ran = {line.split("'")[1] for line in third.stdout.splitlines() if "Running stage" in line}
    assert ran == {"promote"}, third.stdout
