"""Process groups recorded by pid file, and whether a recorded group is still ours.

The local stack records what it starts; the Ray adapter asks whether a head is that one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from gglops.core.files import atomic_write


@dataclass(frozen=True)
class PidRecord:
    """What `up` started: the process group leader and a string its cmdline must contain."""

    pid: int
    marker: str

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self)))

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


def group_members(pgid: int) -> list[int]:
    """The pids in process group `pgid` (it outlives its leader: `ray start` exits)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def is_ours(record: PidRecord | None) -> bool:
    """Our group is still running: one member still has our marker in its command line
    (a recycled pid, or a foreign process on our port, does not)."""
    if record is None:
        return False
    return any(record.marker in cmdline(pid) for pid in group_members(record.pid))
