"""DVC's S3 remote on the local stack's SeaweedFS: push, wipe, pull gives identical bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from devstack.dvc import configure_local_remote

DVC = str(Path(sys.executable).parent / "dvc")


def _run(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_push_wipe_pull_restores_identical_bytes(stack, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    _run([DVC, "remote", "add", "-d", "store", f"s3://{stack.bucket}/dvc-test"], repo)
    assert configure_local_remote(repo, stack.handle)
    # Keys only in the gitignored local config; the committed config has none.
    assert stack.secret_key in (repo / ".dvc" / "config.local").read_text()
    assert stack.secret_key not in (repo / ".dvc" / "config").read_text()
    assert "/config.local" in (repo / ".dvc" / ".gitignore").read_text()

    data = repo / "data"
    rng = np.random.default_rng(0)
    for i in range(5):
        (data / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        (data / f"part{i % 2}" / f"img{i}.bin").write_bytes(rng.bytes(20_000 + i))
    before = _digests(data)
    _run([DVC, "add", "-q", "data"], repo)
    _run([DVC, "push", "-q"], repo)

    shutil.rmtree(data)
    shutil.rmtree(repo / ".dvc" / "cache")
    _run([DVC, "pull", "-q"], repo)
    assert _digests(data) == before

    s3 = stack.s3_client()
    stored = s3.list_objects_v2(Bucket=stack.bucket, Prefix="dvc-test/")
    assert stored["KeyCount"] >= len(before)  # one object per file, plus the .dir manifest
