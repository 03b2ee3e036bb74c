"""`gglops tune` on real Ray and a real MLflow server.

Two sweeps keep the Ray cost down: one in-process grid sweep (3 trials, 2 at a time) checked
for ASHA, nested runs and outputs; one CLI sweep interrupted with Ctrl+C and resumed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from gglops.core.params import Params
from gglops.core.settings import Settings
from gglops.stages.tune import TuneRequest, TuneResult, run_tuning

BIN = Path(sys.executable).parent
BAD_LR = 1e-7  # learns nothing: its loss stays where it started

# Deterministic, 32 px, a quarter-width model: with seed 42 the first epoch's train loss is
# ~0.979 (lr 1e-2), ~0.987 (3e-3) and ~0.989 (1e-7), so ASHA's first rung drops the last.
TINY: dict[str, Any] = {
    "data.image_size": 32,
    "data.layout": "auto",
    "data.split": None,
    "model.width_mult": 0.25,
    "train.batch_size": 4,
    "train.loss": "soft_iou",
    "train.lr_schedule": "none",
    "train.grad_clip": 1.0,
    "train.deterministic": True,
    "train.augment.p": 0.0,
    "train.keep_checkpoints": 1,
    "train.max_failures": 0,
    "tune.workers_per_trial": 1,
    "tune.grace_period": 1,
    "tune.reduction_factor": 2,
}


@pytest.fixture(scope="module")
def tune_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic images (38 train): ~10 steps per epoch, enough to move the loss."""
    from gglops.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("tune") / "synthetic-sirst", 48, 64, 3)


def tiny_params(data_root: Path, **overrides: Any) -> Params:
    return Params().with_overrides({**TINY, "data.root": str(data_root), **overrides})


@pytest.fixture(scope="module")
def grid_sweep(
    stack: Any, ray_local: None, tune_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TuneResult, Path, Path, float]:
    """One 3-trial grid sweep (lr 1e-2, 3e-3, then the bad 1e-7), 2 trials at a time."""
    out = tmp_path_factory.mktemp("sweep")
    params = tiny_params(
        tune_data,
        **{
            "train.run_name": "t-tune",
            "tune.search_alg": "grid",
            "tune.metric": "train_loss",
            "tune.epochs": 3,
            "tune.max_concurrent": 2,
            "tune.space": {"train.lr": {"kind": "choice", "values": [1e-2, 3e-3, BAD_LR]}},
        },
    )
    settings = Settings(mlflow_tracking_uri=stack.mlflow_uri, storage_path=str(out / "ray"))
    request = TuneRequest(params=params, best_out=out / "best.yaml", plots=out / "plots")
    start = time.perf_counter()
    result = run_tuning(request, settings)
    return result, out / "best.yaml", out / "plots", time.perf_counter() - start


@pytest.mark.integration
def test_asha_stops_the_bad_trial_and_the_best_runs_to_max_t(grid_sweep) -> None:
    result, _, _, wall = grid_sweep
    by_lr = {t.params["train.lr"]: t for t in result.trials}
    assert sorted(by_lr) == [BAD_LR, 3e-3, 1e-2]
    bad = by_lr[BAD_LR]
    assert bad.status == "stopped" and bad.epochs < 3, bad
    best = next(t for t in result.trials if t.params == result.best_params)
    assert best.epochs == 3 and best.status == "completed"
    assert result.best_params["train.lr"] != BAD_LR
    assert result.best_metrics["train_loss"] == min(t.best["train_loss"] for t in result.trials)
    busy = sum(t.duration_s for t in result.trials)
    print(f"\nsweep wall {wall:.0f} s (fit {result.wall_s:.0f} s), trials {busy:.0f} s")


@pytest.mark.integration
def test_trials_are_nested_mlflow_runs_with_epoch_metrics(grid_sweep, stack: Any) -> None:
    result, _, _, _ = grid_sweep
    client = MlflowClient(tracking_uri=stack.mlflow_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {"git_commit", "data_hash", "dataset"} <= parent.data.tags.keys()
    assert parent.data.tags["sweep"] == result.sweep
    assert float(parent.data.params["train.lr"]) == result.best_params["train.lr"]
    assert parent.data.metrics["best_train_loss"] == pytest.approx(
        result.best_metrics["train_loss"]
    )
    assert "tune/tune_trials.csv" in [
        a.path for a in client.list_artifacts(parent.info.run_id, "tune")
    ]
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert sorted(c.info.run_id for c in children) == sorted(t.run_id for t in result.trials)
    for trial in result.trials:
        child = client.get_run(trial.run_id)
        assert float(child.data.params["train.lr"]) == trial.params["train.lr"]
        steps = sorted(m.step for m in client.get_metric_history(trial.run_id, "val_miou"))
        # Each epoch once. A stopped trial may log the epoch it was in when ASHA's stop landed.
        assert steps == list(range(len(steps))), (trial, steps)
        assert len(steps) == trial.epochs if trial.status == "completed" else len(steps) >= 1
        assert child.data.tags["trial_status"] == trial.status
    assert client.get_run(result.trials[-1].run_id).info.status == "KILLED"  # the bad one


@pytest.mark.integration
def test_best_params_yaml_and_plots(grid_sweep) -> None:
    result, best_yaml, plots, _ = grid_sweep
    text = best_yaml.read_text()
    assert yaml.safe_load(text) == result.best_params
    assert text == yaml.safe_dump(result.best_params, sort_keys=True)  # byte-stable
    rows = (plots / "tune_trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,train_loss,epochs,status")
    assert len(rows) == 1 + len(result.trials)
    assert (plots / "tune_trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "gglops"), "tune", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _finished_children(client: MlflowClient, storage: Path) -> list[Any]:
    sweeps = sorted(p.name for p in storage.glob("tune-*"))
    if not sweeps:
        return []
    experiment = client.get_experiment_by_name("gglnet")
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.sweep = '{sweeps[-1]}' and attributes.status = 'FINISHED'",
    )
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # trials, not the parent


def _tune_recorded_a_finished_trial(storage: Path) -> bool:
    return any(b"TERMINATED" in p.read_bytes() for p in storage.rglob("experiment_state*.json"))


@pytest.mark.integration
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(
    stack: Any, ray_local: None, tune_data: Path, tmp_path: Path, reliability
) -> None:
    import ray

    params = tiny_params(
        tune_data,
        **{
            "train.run_name": "t-resume",
            "tune.epochs": 1,
            "tune.max_concurrent": 1,
            "tune.samples": 2,
            "tune.space": {"train.lr": {"kind": "loguniform", "low": 1e-3, "high": 1e-2}},
        },
    )
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    storage = tmp_path / "ray"
    env = {
        **os.environ,
        **stack.env,
        "GGLOPS_STORAGE_PATH": str(storage),
        "GGLOPS_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
    }
    args = ["--params", str(params_file), "--best-out", str(tmp_path / "best.yaml")]
    client = MlflowClient(tracking_uri=stack.mlflow_uri)

    first = _cli(args, env)
    deadline = time.monotonic() + 300
    while not _finished_children(client, storage) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[0][-2000:]
        time.sleep(1)
    # MLflow says FINISHED a moment before Tune's own state does; interrupting in between
    # makes Tune (rightly) run that trial again, which is not what this test is about.
    recorded = time.monotonic() + 30
    while not _tune_recorded_a_finished_trial(storage) and time.monotonic() < recorded:
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # Ctrl+C while the second trial runs
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 130, output[-2000:]
    message = output.strip().splitlines()[-1]
    assert "interrupted" in message and "--resume" in message
    # The console without a terminal: our line per trial epoch and per finished trial, not
    # Tune's 30-s tables, TensorBoard hints or Optuna's INFO lines.
    assert re.search(r"^trial-\S+ lr=\S+  epoch 1/1  loss ", output, re.M), output[-3000:]
    assert re.search(r"^trial-\S+ lr=\S+  finished: best val_miou ", output, re.M), output
    noise = ("Trial status:", "TensorBoard", "A new study created", "Reporting training",
             "View run", "INFO mlflow", "core_worker", "PreemptionWatcher",
             "PlacementGroupCleaner", "Traceback")  # fmt: skip
    assert not [line for line in noise if line in output], output[-3000:]
    # Ray's own lines are in its logs folder, named once.
    logs = re.findall(r"^logs: (\S+) ", output, re.M)
    assert len(logs) == 1 and any(Path(logs[0]).glob("*.log")), output[-3000:]
    done = _finished_children(client, storage)
    assert len(done) == 1
    finished_id, finished_end = done[0].info.run_id, done[0].info.end_time

    resumed = _cli([*args, "--resume", "--out", str(tmp_path / "out.json")], env)
    output = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, output[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == result["best_params"]
    assert len(result["trials"]) == 2
    assert all(t["status"] == "completed" for t in result["trials"])
    # The trial that had finished was not run again: its run is untouched, one epoch logged.
    again = client.get_run(finished_id)
    assert again.info.end_time == finished_end
    assert len(client.get_metric_history(finished_id, "val_miou")) == 1
    assert len(_finished_children(client, storage)) == 2
    reliability(
        "Ctrl+C during a tune sweep, then `gglops tune --resume`",
        f"exit 130 ({message}); resume ran only the unfinished trial, exit 0",
    )


def test_unknown_search_key_exits_2_with_one_line(tmp_path: Path, reliability) -> None:
    raw = Params().model_dump(mode="json")
    raw["tune"]["space"] = {"train.lrate": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [str(BIN / "gglops"), "tune", "--params", str(params_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1 and "tune.space.train.lrate" in lines[0], done.stderr
    assert "train.lr" in lines[0]  # the suggestion
    reliability("unknown key in tune.space", f"exit 2: {lines[0]}")


@pytest.mark.integration
def test_trial_larger_than_the_cluster_is_refused_before_compute(
    stack: Any, ray_local: None, tune_data: Path, tmp_path: Path
) -> None:
    from gglops.core.errors import UsageError

    space = {"train.lr": {"kind": "choice", "values": [1e-2]}}
    params = tiny_params(tune_data, **{"tune.cpus_per_worker": 64.0, "tune.space": space})
    settings = Settings(mlflow_tracking_uri=stack.mlflow_uri, storage_path=str(tmp_path / "ray"))
    request = TuneRequest(params=params, best_out=tmp_path / "best.yaml", plots=tmp_path / "p")
    with pytest.raises(UsageError) as refused:
        run_tuning(request, settings)
    assert str(refused.value).startswith("tune.workers_per_trial=1 × 64 CPUs each but the Ray")
    assert not (tmp_path / "best.yaml").exists()
