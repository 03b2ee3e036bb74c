"""A fault from outside, as the OOM killer or a lost node deals it: SIGKILL a training worker."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from helpers.waiting import wait_for

WORKER_TITLE = "ray::RayTrainWorker"  # the process title Ray gives a Train worker actor


@dataclass
class Kill:
    """What the killer did: the pid it killed and the checkpoints that existed at that time."""

    pid: int | None = None
    checkpoints: list[str] = field(default_factory=list)


def _workers() -> list[psutil.Process]:
    """This test process's own Train workers (its Ray is a child; other Rays are not)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if " ".join(proc.cmdline()).startswith(WORKER_TITLE):
                found.append(proc)
        except psutil.Error:
            continue
    return sorted(found, key=lambda p: p.pid)


@contextmanager
def kill_a_worker_after(storage: Path, checkpoint: str, timeout_s: float = 600) -> Iterator[Kill]:
    """SIGKILL one of this process's Train workers once `checkpoint` (e.g. epoch-0001) exists
    anywhere under `storage`; the block's training runs while the killer waits."""
    kill, stop = Kill(), threading.Event()

    def strike() -> None:
        if not wait_for(lambda: any(storage.rglob(checkpoint)), timeout_s, stop):
            return
        workers = _workers()
        if workers:
            kill.checkpoints = sorted(p.name for p in storage.rglob("epoch-*") if p.is_dir())
            kill.pid = workers[0].pid
            os.kill(kill.pid, signal.SIGKILL)

    thread = threading.Thread(target=strike, daemon=True)
    thread.start()
    try:
        yield kill
    finally:
        stop.set()
        thread.join()
