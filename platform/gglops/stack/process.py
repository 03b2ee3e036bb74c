"""Detached service processes with pid files; nothing is killed unless it is verifiably ours."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gglops.errors import ServiceError


@dataclass(frozen=True)
class PidRecord:
    """What `up` started: the process group leader and a string its cmdline must contain."""

    pid: int
    marker: str

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_ours(record: PidRecord | None) -> bool:
    """Alive and still the process we started (a recycled pid has another cmdline)."""
    return record is not None and record.marker in cmdline(record.pid)


def spawn(command: Sequence[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (so its children go with it), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
        )
    return proc


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(record: PidRecord, timeout: float = 15.0) -> bool:
    """SIGTERM the process group we started, SIGKILL what is left; False if not ours."""
    if not is_ours(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not _group_alive(record.pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    _reap(record.pid)
    return True


def wait_until(
    probe: Callable[[], bool], *, timeout: float, what: str, alive: Callable[[], bool], log: Path
) -> float:
    """Poll `probe` until True; fail fast if the process died. Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - start
        if not alive():
            raise ServiceError(f"{what} exited during start-up; see {log}")
        time.sleep(0.2)
    raise ServiceError(f"{what} not healthy after {timeout:.0f} s; see {log}")


def pids_matching(marker: str) -> list[int]:
    """Every process whose command line contains `marker` (e.g. one Ray head's temp dir)."""
    own = os.getpid()
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [pid for pid in pids if pid != own and marker in cmdline(pid)]


def stop_matching(marker: str, timeout: float = 15.0) -> int:
    """SIGTERM the processes that carry `marker`, SIGKILL survivors; returns how many."""
    pids = pids_matching(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pids_matching(marker):
        time.sleep(0.2)
    for pid in pids_matching(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
