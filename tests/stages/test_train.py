"""Ray Train runs of GGL-Net on real Ray and a real MLflow server.

Few `fit()` calls (Ray's fixed costs dominate here), each checking several things: one
2-worker run that learns, survives a killed worker and is tracked in MLflow, then resumed
for two more epochs; one run across a two-node `ray.cluster_utils.Cluster`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
from helpers.killing import kill_a_worker_after
from helpers.training import settings_for, tiny_params
from mlflow.tracking import MlflowClient

from gglops.stages.train import TrainRequest, run_training
from gglops.stages.train.checkpointing import epoch_dir_name
from gglops.stages.train.session import build_session


@pytest.fixture(scope="module")
def learn_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 synthetic 64 px images (51 train / 13 test): enough steps per epoch to learn fast."""
    from gglops.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("learn") / "synthetic-sirst", 64, 64, 3)


# Learns within ~4 epochs on 2 workers (global batch 4, ~13 steps/epoch).
LEARN: dict[str, Any] = {
    "data.image_size": 64,
    "train.batch_size": 2,
    "train.lr": 0.005,
    "train.loss": "soft_iou",
    "train.run_name": "t-learn",
}


def test_same_seed_gives_identical_metrics(synth_data: Path) -> None:
    """Deterministic mode: two in-process runs of the worker code agree exactly."""
    params = tiny_params(synth_data, **{"train.epochs": 1})
    outcomes = []
    for _ in range(2):
        session = build_session(params, synth_data)
        stats = session.train_epoch(0)
        outcomes.append((stats.loss, session.validate()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] > 0


@pytest.mark.integration
def test_two_workers_learn_survive_a_killed_worker_and_resume(
    stack, ray_running, learn_data: Path, tmp_path: Path, reliability
) -> None:
    params = tiny_params(learn_data, **LEARN, **{"train.epochs": 5})
    settings = settings_for(stack, tmp_path / "ray")
    untrained = build_session(params, learn_data).validate()  # rank 0's initial weights
    two = params.with_overrides({"train.workers": 2})
    with kill_a_worker_after(tmp_path / "ray", epoch_dir_name(2)) as kill:
        result = run_training(TrainRequest(params=two, echo=False), settings)

    # A worker SIGKILLed once the epoch-2 checkpoint's folder appeared: the group restarted
    # from a checkpoint (the newest one the controller had registered) and finished.
    assert kill.pid is not None, "no training worker to kill"
    newest = max(int(name.split("-")[1]) for name in kill.checkpoints)
    assert result.epochs == 5
    assert [r.epoch for r in result.history] == [0, 1, 2, 3, 4]
    restored_from = result.start_epoch - 1
    # At most the epoch in flight is lost, and one more when the kill lands while the newest
    # checkpoint is still being written (its folder appears before its report is registered).
    assert 1 <= restored_from <= newest and newest - restored_from <= 1, (kill, restored_from)
    reliability(
        "a training worker SIGKILLed as the epoch-2 checkpoint is written (2 workers, 5 epochs)",
        f"newest checkpoint at the kill: epoch {newest}; restored from epoch {restored_from}, "
        f"finished {result.epochs} epochs; val_miou {result.metrics['miou']:.3f}",
    )
    # It learned: the best epoch's test-split mIoU is clearly above the untrained model's.
    assert result.metrics["miou"] > untrained["miou"] + 0.05, (result.metrics, untrained)
    assert result.images_per_s > 0
    assert Path(result.checkpoint, "model.pt").exists()
    assert Path(result.checkpoint, "train_state.pt").exists()

    client = MlflowClient(tracking_uri=stack.mlflow_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.005"
    assert run.data.params["model.width_mult"] == "0.25"
    assert run.data.tags["ray_run_name"] == result.run_name
    assert {"git_commit", "data_hash", "dataset", "params_hash"} <= run.data.tags.keys()
    for key in ("train_loss", "val_miou", "val_niou", "val_pd", "val_fa"):
        steps = [m.step for m in client.get_metric_history(result.run_id, key)]
        assert set(steps) == {0, 1, 2, 3, 4}, (key, steps)
        assert steps.count(4) == 1
    assert result.mlflow_pending == 0
    mlflow.set_tracking_uri(stack.mlflow_uri)
    version = mlflow.register_model(f"runs:/{result.run_id}/model", "gglnet-train-test")
    assert int(version.version) >= 1

    # --resume continues the same Ray run (and MLflow run) for exactly two more epochs.
    longer = two.with_overrides({"train.epochs": 7})
    resumed = run_training(TrainRequest(params=longer, resume=True, echo=False), settings)
    assert resumed.run_name == result.run_name
    assert resumed.run_id == result.run_id
    assert resumed.start_epoch == 5
    assert [r.epoch for r in resumed.history] == list(range(7))
    steps = [m.step for m in client.get_metric_history(result.run_id, "val_miou")]
    assert sorted(set(steps)) == list(range(7))
