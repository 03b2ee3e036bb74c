"""`gglops train` under faults, on real Ray, MLflow and SeaweedFS: a diverging loss, S3
stopped during checkpoint upload, a full disk before and during training.

Each test runs the real CLI in this process (the shared local Ray; no interpreter start-up)
and records what it observed in docs/reliability.md's table.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pyarrow.fs as pafs
import pytest
import torch
from helpers.waiting import wait_for
from mlflow.tracking import MlflowClient

from gglops.adapters.raystorage import Storage, resolve_storage
from gglops.core.settings import Settings
from gglops.model.bundle import load_bundle
from gglops.stages.train.checkpointing import checkpoint_problem, newest_complete_checkpoint
from gglops.stages.train.trainer import pending_file

ROOT = Path(__file__).resolve().parents[2]
# Small and quick; keep_checkpoints=1 so that a tmpfs can hold exactly what the run needs.
TINY_SETS = {
    "data.image_size": "32",
    "data.loader_workers": "0",
    "model.width_mult": "0.25",
    "train.batch_size": "4",
    "train.loss": "bce_soft_iou",
    "train.lr_schedule": "none",
    "train.augment.p": "0",
    "train.keep_checkpoints": "1",
    "train.max_failures": "1",
}
LEAVE_FREE = 10 * 2**20  # one width-0.25 checkpoint is ~7 MiB


def train_args(data: Path, **sets: str) -> list[str]:
    args = ["train", "--params", str(ROOT / "params.yaml"), "--data", str(data)]
    for key, value in {**TINY_SETS, **sets}.items():
        args += ["--set", f"{key}={value}"]
    return args


def error_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


def epoch_dirs(run_root: Path) -> list[Path]:
    return sorted(run_root.glob("*/epoch-*"))


@contextmanager
def in_background(action: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run `action(stop)` in a thread for the duration of the block, then stop and join it."""
    stop = threading.Event()
    thread = threading.Thread(target=action, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def assert_loadable(checkpoint: Path) -> int:
    """The checkpoint loads, its weights are finite; returns the epoch it holds."""
    net = load_bundle(checkpoint)
    assert all(torch.isfinite(t).all() for t in net.state_dict().values() if t.is_floating_point())
    state = torch.load(checkpoint / "train_state.pt", map_location="cpu", weights_only=False)
    return int(state["epoch"])


class _Forward(BaseHTTPRequestHandler):
    """Forwards every request to `upstream`, noting (path, Authorization header) first."""

    upstream: ClassVar[str] = ""
    seen: ClassVar[list[tuple[str, str]]] = []

    def _forward(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        request = urllib.request.Request(
            self.upstream + self.path, data=body, headers=headers, method=self.command
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 (http.server's names)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@contextmanager
def recording_proxy(upstream: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """An HTTP proxy in front of the MLflow server: its URL and the requests it saw."""
    handler = type("Forward", (_Forward,), {"upstream": upstream, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fault_env(stack_env, ray_running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The stack's environment, local storage in tmp, no Ray address (the shared local Ray)."""
    monkeypatch.delenv("GGLOPS_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("GGLOPS_STORAGE_PATH", str(tmp_path / "ray"))
    monkeypatch.chdir(tmp_path)  # outputs/mlflow-pending lands in tmp
    return stack_env


@pytest.mark.integration
def test_diverging_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    fault_env, synth_data: Path, tmp_path: Path, monkeypatch, gglops_cli, reliability
) -> None:
    # Soft-IoU loss, lr=1000, no clipping: on this data epochs 0-1 stay finite, then the weights
    # overflow (the bounded loss itself may stay finite: the weight check catches that).
    sets = {"train.loss": "soft_iou", "train.lr": "1000", "train.grad_clip": "0"}
    args = train_args(synth_data, **sets, **{"train.epochs": "4", "train.run_name": "nan"})
    # Also: the tracking token set only as GGLOPS_MLFLOW_TRACKING_TOKEN is the bearer of every
    # MLflow API call, the driver's and rank 0's (it travels in the loop config, not the
    # runtime env). "" so that monkeypatch restores the variable the CLI sets in-process.
    token = f"sentinel-{uuid.uuid4().hex}"
    monkeypatch.setenv("GGLOPS_MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")
    with recording_proxy(fault_env.mlflow_uri) as (proxy_uri, seen):
        monkeypatch.setenv("GGLOPS_MLFLOW_TRACKING_URI", proxy_uri)
        code, out = gglops_cli(args)
    api_calls = [(path, auth) for path, auth in seen if "/api/" in path]
    batches = [p for p, auth in api_calls if p.endswith("/runs/log-batch")]
    assert len(batches) >= 2, seen  # the driver's params and rank 0's per-epoch metrics
    assert all(auth == f"Bearer {token}" for _, auth in api_calls), api_calls
    line = error_line(out)
    assert code == 2, out
    assert "Traceback" not in out
    match = re.search(
        r"(loss became (?:nan|inf|-inf)|weights became non-finite) at epoch (\d+) step \d+; "
        r"last good checkpoint: (\S+)",
        line,
    )
    assert match, line
    epoch, checkpoint = int(match[2]), Path(match[3])
    assert epoch >= 1, line
    # The newest checkpoint is the last finite epoch's, and no later one was written.
    assert assert_loadable(checkpoint) == epoch - 1
    assert [d.name for d in epoch_dirs(tmp_path / "ray")] == [checkpoint.name]
    reliability(
        "NaN/inf loss or weights (train.lr=1000, no grad clipping, soft_iou)",
        f"exit {code}; {line}; that checkpoint loads with finite weights",
    )
    reliability(
        "MLflow token set (GGLOPS_MLFLOW_TRACKING_TOKEN), not in Ray's runtime env",
        f"bearer of all {len(api_calls)} MLflow API calls, the driver's and rank 0's "
        f"({len(batches)} log-batch calls)",
    )


@pytest.mark.integration
def test_full_disk_is_refused_before_compute(
    fault_env, synth_data: Path, tmp_path: Path, monkeypatch, gglops_cli, reliability
) -> None:
    with tmpfs(tmp_path / "small", "2m") as mount:
        monkeypatch.setenv("GGLOPS_STORAGE_PATH", str(mount / "ray"))
        start = time.perf_counter()
        code, out = gglops_cli(train_args(synth_data, **{"train.epochs": "1"}))
        seconds = time.perf_counter() - start
        line = error_line(out)
        left = sorted(p.name for p in (mount / "ray").iterdir())
    assert code == 2, out
    assert f"GGLOPS_STORAGE_PATH={mount / 'ray'} has" in line and "MiB free" in line, line
    assert left == [], left  # no Ray run directory: refused before the trainer started
    assert seconds < 30
    reliability(
        "storage path on a 2 MiB tmpfs (too small for the checkpoints)",
        f"exit {code} after {seconds:.1f} s, before Ray started; {line}",
    )


@pytest.mark.integration
def test_disk_full_during_a_checkpoint_write_keeps_the_earlier_checkpoint(
    fault_env, synth_data: Path, tmp_path: Path, monkeypatch, gglops_cli, reliability
) -> None:
    with tmpfs(tmp_path / "small", "24m") as mount:
        storage = mount / "ray"
        monkeypatch.setenv("GGLOPS_STORAGE_PATH", str(storage))
        filled: list[str] = []

        def fill_when_the_run_starts(stop: threading.Event) -> None:
            """Another process's file takes the space once the preflight has passed (Ray has
            made the run directory), leaving room for one checkpoint (~7 MiB) but not two."""
            if wait_for(lambda: storage.is_dir() and any(storage.iterdir()), 300, stop):
                free = _free_bytes(mount)
                (mount / "filler").write_bytes(b"\0" * max(free - LEAVE_FREE, 0))
                filled.append(f"{free / 2**20:.1f} MiB")

        args = train_args(synth_data, **{"train.epochs": "3", "train.run_name": "full"})
        with in_background(fill_when_the_run_starts):
            code, out = gglops_cli(args)
        first = storage.glob("*/epoch-0000")
        kept = [assert_loadable(d) for d in first]
    line = error_line(out)
    assert filled, out
    assert code == 2, out
    assert "GGLOPS_STORAGE_PATH" in line, line
    assert kept == [0]
    reliability(
        f"disk full during a checkpoint write (tmpfs left with {LEAVE_FREE // 2**20} MiB free: one "
        "checkpoint fits, the second does not)",
        f"exit {code}; {line}; the epoch-0 checkpoint still loads",
    )


def _free_bytes(path: Path) -> int:
    import shutil

    return shutil.disk_usage(path).free


@pytest.mark.integration
def test_s3_stopped_during_checkpoint_upload(
    fault_env, synth_data: Path, tmp_path: Path, monkeypatch, gglops_cli, reliability
) -> None:
    prefix = f"{fault_env.bucket}/faults-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GGLOPS_STORAGE_PATH", f"s3://{prefix}")
    storage = resolve_storage(Settings())
    stopped: list[float] = []

    def stop_s3_after_first_checkpoint(stop: threading.Event) -> None:
        """SeaweedFS goes away once epoch 0 is in the bucket, while later uploads are due."""
        if wait_for(lambda: newest_complete_checkpoint(*_fs(storage)) is not None, 300, stop):
            fault_env.stop_s3()
            stopped.append(time.perf_counter())

    # Many short epochs: uploads keep coming after the stop.
    args = train_args(synth_data, **{"train.epochs": "40", "train.run_name": "s3"})
    start = time.perf_counter()
    try:
        with in_background(stop_s3_after_first_checkpoint):
            code, out = gglops_cli(args)
        seconds = time.perf_counter() - start
    finally:
        fault_env.start_s3()
    line = error_line(out)
    assert stopped, out
    assert code == 2, out
    assert "Traceback" not in out
    assert f"GGLOPS_STORAGE_PATH=s3://{prefix}" in line, line
    # Back up: the checkpoints already uploaded are listed and the newest complete one loads.
    newest = newest_complete_checkpoint(*_fs(storage))
    assert newest is not None
    local = tmp_path / "downloaded"
    local.mkdir()
    pafs.copy_files(newest, str(local), source_filesystem=storage.filesystem)
    epoch = assert_loadable(local)
    reliability(
        "S3 (SeaweedFS) stopped during checkpoint upload",
        f"exit {code} {seconds - (stopped[0] - start):.0f} s after the stop; {line}; after "
        f"restart the epoch-{epoch} checkpoint in the bucket lists and loads",
    )


def _fs(storage: Storage) -> tuple[pafs.FileSystem, str]:
    """The storage's filesystem and the one run directory under it (or the storage root)."""
    selector = pafs.FileSelector(storage.path, allow_not_found=True)
    runs = [
        i.path for i in storage.filesystem.get_file_info(selector) if i.type.name == "Directory"
    ]
    return storage.filesystem, runs[0] if runs else storage.path


@pytest.mark.integration
def test_mlflow_stopped_mid_training(
    fault_env, synth_data: Path, tmp_path: Path, gglops_cli, reliability
) -> None:
    storage, epochs = tmp_path / "ray", 16
    seen: dict[str, int] = {}  # the newest checkpointed epoch when MLflow went down / came up

    def newest_epoch() -> int:
        return max((int(d.name.split("-")[1]) for d in epoch_dirs(storage)), default=-1)

    def outage(stop: threading.Event) -> None:
        """MLflow goes down once epoch 0 is checkpointed and comes back after epoch 2's."""
        try:
            if wait_for(lambda: newest_epoch() >= 0, 300, stop):
                fault_env.stop_mlflow()
                seen["down"] = newest_epoch()
                wait_for(lambda: newest_epoch() >= 2, 300, stop)
        finally:
            fault_env.start_mlflow()
            seen["up"] = newest_epoch()

    args = train_args(synth_data, **{"train.epochs": str(epochs), "train.run_name": "mlf"})
    with in_background(outage):
        code, out = gglops_cli(args)
    assert code == 0, out
    assert "down" in seen, out
    assert seen["up"] >= seen["down"] + 2, seen  # epochs trained while MLflow was down
    run_id = re.search(r"runs:/(\w+)/model", out)
    assert run_id, out
    client = MlflowClient(tracking_uri=fault_env.mlflow_uri)
    steps = sorted(m.step for m in client.get_metric_history(run_id[1], "val_miou"))
    assert steps == list(range(epochs)), steps
    assert client.get_run(run_id[1]).info.status == "FINISHED"
    assert not pending_file(run_id[1]).exists()
    newest = max(epoch_dirs(storage), key=lambda d: d.name)
    assert assert_loadable(newest) == epochs - 1
    reliability(
        f"MLflow server stopped mid-training, restarted ≥ 2 epochs later ({epochs}-epoch run)",
        f"exit {code}; training went on: MLflow stopped after epoch {seen['down']}, back after "
        f"epoch {seen['up']}; all {epochs} epochs' val_miou delivered (steps "
        f"0-{steps[-1]}), run FINISHED, no pending file left, final checkpoint loads",
    )


@pytest.mark.integration
def test_corrupted_newest_checkpoint_falls_back_to_the_intact_one(
    fault_env, synth_data: Path, tmp_path: Path, gglops_cli, reliability
) -> None:
    # Epochs 0-1 checkpointed (both kept), then epoch 1's train state is damaged in place
    # (same size: only the manifest's sha256 can tell). Ray has registered epoch 1.
    sets = {"train.run_name": "corrupt", "train.keep_checkpoints": "2"}
    code, out = gglops_cli(train_args(synth_data, **sets, **{"train.epochs": "2"}))
    assert code == 0, out
    run_id = re.search(r"runs:/(\w+)/model", out)
    assert run_id, out
    bad = next((tmp_path / "ray").glob("corrupt-*/epoch-0001")) / "train_state.pt"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    bad.write_bytes(bytes(data))

    code, out = gglops_cli([*train_args(synth_data, **sets, **{"train.epochs": "3"}), "--resume"])
    assert code == 0, out
    assert "Traceback" not in out and "WorkerGroupError" not in out
    # Rank 0 says it on its stdout, which a CLI run shows as "(RayTrainWorker pid=…) …";
    # the shared test Ray keeps worker output in its session logs instead.
    skipped = [line for line in _worker_lines(str(bad.parent)) if "skipping checkpoint" in line]
    assert len(skipped) == 1 and "sha256" in skipped[0], skipped
    client = MlflowClient(tracking_uri=fault_env.mlflow_uri)
    steps = sorted(m.step for m in client.get_metric_history(run_id[1], "val_miou"))
    assert steps == [0, 1, 2], steps  # epoch 1 retrained, logged once
    assert client.get_run(run_id[1]).info.status == "FINISHED"
    kept = epoch_dirs(tmp_path / "ray")  # the damaged one was retrained or pruned
    assert kept and all(checkpoint_problem(d) is None for d in kept), kept
    assert max(assert_loadable(d) for d in kept) == 2
    print(skipped[0])
    reliability(
        "newest checkpoint corrupted in place (registered by Ray, same size), then --resume",
        f"exit {code}; one line: {skipped[0].strip()[:170]}; resumed from epoch 0, each MLflow "
        "step logged once (0, 1, 2), run FINISHED, no worker traceback",
    )


def test_a_second_train_of_a_run_in_progress_is_refused(
    stack_env, synth_data: Path, tmp_path: Path, monkeypatch, gglops_cli, reliability
) -> None:
    # The first `gglops train --resume` holds the run's lock (here: this test holds it); a
    # second one must stop before it restores or writes anything. Local storage and S3.
    from gglops.adapters.raystorage import run_lock
    from gglops.core.errors import UsageError
    from gglops.core.settings import load_settings

    monkeypatch.setenv("GGLOPS_STORAGE_PATH", str(tmp_path / "ray"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    run = "busy-20260101-000000-abcd"
    (tmp_path / "ray" / run).mkdir(parents=True)
    args = [*train_args(synth_data, **{"train.run_name": "busy", "train.epochs": "1"}), "--resume"]
    with run_lock(resolve_storage(settings), run, settings):
        start = time.perf_counter()
        code, out = gglops_cli(args)
        seconds = time.perf_counter() - start
    line = error_line(out)
    assert code == 2 and run in line and "Traceback" not in out, out
    assert sorted(p.name for p in (tmp_path / "ray" / run).iterdir()) == []  # nothing written
    s3 = resolve_storage(settings, f"s3://{stack_env.bucket}/locks-{uuid.uuid4().hex[:8]}")
    with run_lock(s3, run, settings), pytest.raises(UsageError) as refused:  # noqa: SIM117
        with run_lock(s3, run, settings):  # the second holder, while the first holds it
            pass
    assert run in str(refused.value), refused.value
    with run_lock(s3, run, settings):  # released on exit: the next one gets it
        pass
    reliability(
        "two `gglops train --resume` of the same run at once (local storage and S3)",
        f"the second exits {code} after {seconds:.1f} s, before Ray, nothing written; {line}",
    )


def _worker_lines(needle: str) -> list[str]:
    """Lines of the shared local Ray's worker logs that contain `needle`."""
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return [
        line
        for log in sorted(logs.glob("worker-*.out"))
        for line in log.read_text(errors="replace").splitlines()
        if needle in line
    ]


def test_runs_left_running_by_a_dead_driver_are_marked_killed(
    stack_env, tmp_path: Path, monkeypatch, reliability
) -> None:
    # Two RUNNING MLflow runs: one's driver is alive (holds the run's training lock), the
    # other's was killed (-9: lock gone). Only the second is marked.
    from gglops.adapters.raystorage import run_lock
    from gglops.core.settings import load_settings
    from gglops.stages.train.abandoned import ABANDONED_TAG, mark_abandoned

    experiment = f"abandoned-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GGLOPS_EXPERIMENT_NAME", experiment)
    monkeypatch.setenv("GGLOPS_STORAGE_PATH", str(tmp_path / "ray"))
    settings = load_settings()
    storage = resolve_storage(settings)
    client = MlflowClient(tracking_uri=stack_env.mlflow_uri)
    exp_id = client.create_experiment(experiment)
    alive = client.create_run(exp_id, run_name="alive-1").info.run_id
    dead = client.create_run(exp_id, run_name="dead-1").info.run_id
    with run_lock(storage, "alive-1", settings):
        marked = mark_abandoned(settings, storage)
    assert [m.run_id for m in marked] == [dead], marked
    assert client.get_run(dead).info.status == "KILLED"
    assert ABANDONED_TAG in client.get_run(dead).data.tags
    assert client.get_run(alive).info.status == "RUNNING"
    reliability(
        "MLflow run left RUNNING by a driver killed with -9",
        "mark_abandoned: that run KILLED + tag gglops.abandoned (its training lock was free); "
        "a run whose driver holds the lock stays RUNNING",
    )
