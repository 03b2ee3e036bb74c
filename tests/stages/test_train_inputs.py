"""`gglops train` refuses bad input with one line (exit 2) before any compute."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.training import settings_for, tiny_params

from gglops.core.errors import DataError, GGLOpsError, ServiceError, UsageError
from gglops.core.params import load_params
from gglops.core.settings import Settings
from gglops.stages.train import TrainRequest, run_training

GGLOPS = Path(sys.executable).parent / "gglops"


def _dead_uri() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _refused(request: TrainRequest, settings: Settings, error: type[GGLOpsError]) -> str:
    start = time.perf_counter()
    with pytest.raises(error) as info:
        run_training(request, settings)
    message = str(info.value)
    assert "\n" not in message
    assert time.perf_counter() - start < 20, "must fail before any training"
    return message


def test_cli_missing_data_root_exits_2_with_one_line(tmp_path: Path, reliability) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [str(GGLOPS), "train", "--params", "params.yaml", "--data", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and str(missing) in lines[0], done.stderr
    reliability("gglops train --data on a missing directory", f"exit 2; {lines[0]}")


def test_image_size_not_multiple_of_16_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"data\.image_size.*multiple of 16"):
        load_params("params.yaml", ["data.image_size=30"])


@pytest.mark.integration
def test_bad_environment_is_refused_before_compute(
    stack, ray_running, synth_data: Path, tmp_path: Path, reliability
) -> None:
    good = settings_for(stack, tmp_path / "ray")
    params = tiny_params(synth_data, **{"train.epochs": 1})

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = Settings(mlflow_tracking_uri=stack.mlflow_uri, storage_path=str(blocker / "ray"))
    line = _refused(TrainRequest(params=params), unwritable, UsageError)
    assert "GGLOPS_STORAGE_PATH" in line
    reliability("Ray storage path not writable", f"UsageError before compute; {line}")

    down = Settings(mlflow_tracking_uri=_dead_uri(), storage_path=str(tmp_path / "ray"))
    line = _refused(TrainRequest(params=params), down, ServiceError)
    assert "GGLOPS_MLFLOW_TRACKING_URI" in line
    reliability("MLflow tracking server down at train start", f"ServiceError; {line}")

    many = params.with_overrides({"train.workers": 64})
    line = _refused(TrainRequest(params=many), good, UsageError)
    assert line.startswith("train.workers=64 × 1 CPUs each but the Ray cluster has")
    reliability("train.workers above the Ray cluster's CPUs", f"UsageError; {line}")

    gone = params.with_overrides({"data.root": str(tmp_path / "gone")})
    line = _refused(TrainRequest(params=gone), good, DataError)
    assert str(tmp_path / "gone") in line
