"""A multi-node rehearsal: a head and two worker nodes (`ray.cluster_utils.Cluster`), a 2-worker
training, one worker node lost mid-epoch and a new one joining a moment later. The run
finishes, at most the lost epoch is trained again, and MLflow holds one run. The killed
worker *process* case is `test_train.py::test_two_workers_learn_survive_a_killed_worker...`.
The finishing workers' placement shows the spread over nodes (a 0-CPU head, 1-CPU nodes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.training import tiny_params
from helpers.waiting import wait_for
from mlflow.tracking import MlflowClient

from gglops.core.settings import Settings
from gglops.stages.train import TrainRequest, run_training

EPOCHS = 3  # the node dies in epoch 1: at least one epoch is left after it, however fast
# Epochs of a few seconds on 2 cores, so that the kill lands inside one.
NODES_PARAMS: dict[str, Any] = {
    "data.image_size": 64,
    "train.batch_size": 2,
    "train.epochs": EPOCHS,
    "train.workers": 2,
    "train.max_failures": 2,
}
# The head notices a lost node within ~5 s (the defaults take ~15 s).
FAST_HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}
NODE_BACK_AFTER_S = 3.0


@pytest.fixture(scope="module")
def node_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gglops.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("nodes") / "synthetic-sirst", 48, 64, 5)


def _epochs_done(storage: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in storage.rglob("epoch-*") if p.is_dir())


@dataclass
class Timeline:
    t0: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def note(self, event: str) -> None:
        self.events.append((round(time.monotonic() - self.t0, 1), event))

    def show(self) -> str:
        return "\n".join(f"  {at:6.1f}  {event}" for at, event in self.events)


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `fn` in a thread; its return value or exception lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as exc:  # re-raised by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _lose_a_node(cluster: Any, node: Any, storage: Path, trainer: threading.Thread,
                 timeline: Timeline) -> list[int]:  # fmt: skip
    """Once epoch 0 is checkpointed, 1 s into epoch 1: kill `node`; a new node joins
    NODE_BACK_AFTER_S later. Returns the epochs checkpointed when the node died."""
    wait_for(lambda: bool(_epochs_done(storage)) or not trainer.is_alive(), 180, threading.Event())
    timeline.note(f"epoch 0 checkpointed (checkpoints: epochs {_epochs_done(storage)})")
    time.sleep(1.0)
    killed_at = _epochs_done(storage)
    cluster.remove_node(node, allow_graceful=False)
    timeline.note(f"worker node killed (checkpoints then: epochs {killed_at})")
    time.sleep(NODE_BACK_AFTER_S)
    cluster.add_node(num_cpus=1)
    timeline.note("a new worker node joined")
    return killed_at


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_lost_worker_node_costs_at_most_one_epoch(
    stack, ray_local, node_data: Path, tmp_path: Path, reliability
) -> None:
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the shared local Ray; `ray_running` brings it back for later tests
    storage, timeline = tmp_path / "ray", Timeline()
    run_name = f"t-nodes-{time.monotonic_ns() % 10**8}"
    params = tiny_params(node_data, **NODES_PARAMS, **{"train.run_name": run_name})
    settings = Settings(mlflow_tracking_uri=stack.mlflow_uri, storage_path=str(storage))
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": FAST_HEALTH}
    )
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        timeline.note("head + 2 worker nodes up")
        # Ray adds nodes only from the main thread (signal handlers): training runs in one.
        trainer, outcome = _in_thread(
            lambda: run_training(TrainRequest(params=params, echo=False), settings)
        )
        killed_at = _lose_a_node(cluster, nodes[0], storage, trainer, timeline)
        trainer.join(timeout=200)
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        timeline.note(f"training finished: epochs {[r.epoch for r in result.history]}, the "
                      f"finishing attempt from epoch {result.start_epoch}")  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"timeline (s since the test began starting the cluster):\n{timeline.show()}")

    # The kill came after epoch 0's checkpoint, and the run finished.
    assert killed_at == [0], timeline.show()
    assert result.epochs == EPOCHS and [r.epoch for r in result.history] == list(range(EPOCHS))
    # The finishing attempt restarted from the newest checkpoint: epoch 0's, so epoch 1 was
    # redone (the usual case), or epoch 1's when that epoch completed in the instant between
    # the check and the kill (seen once on a quiet machine: epochs of ~1 s). Never earlier.
    restored_from = result.start_epoch - 1
    assert restored_from in (0, 1), result.start_epoch
    # Its two workers are spread over the two live nodes (the head has no CPUs).
    assert len(set(result.node_ids)) == 2 and nodes[0].node_id not in result.node_ids
    # MLflow: one run of this name, each epoch's metrics once.
    client = MlflowClient(tracking_uri=stack.mlflow_uri)
    runs = client.search_runs(
        [client.get_run(result.run_id).info.experiment_id],
        filter_string=f"tags.ray_run_name = '{result.run_name}'",
    )
    assert [r.info.run_id for r in runs] == [result.run_id]
    steps = [m.step for m in client.get_metric_history(result.run_id, "val_miou")]
    assert sorted(steps) == list(range(EPOCHS)), steps
    seconds = timeline.events[-1][0] - timeline.events[0][0]
    reliability(
        "a worker node lost mid-epoch (head + 2 nodes, 2 workers)",
        f"node killed in epoch 1 of {EPOCHS}, a new one {NODE_BACK_AFTER_S:.0f} s later; "
        f"restored from the epoch-{restored_from} checkpoint ({1 - restored_from} epoch "
        f"redone), {seconds:.0f} s in all; one MLflow run",
    )
