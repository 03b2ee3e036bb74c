"""Every socket the local stack listens on is on loopback (DESIGN: stack services bind
127.0.0.1). Read from /proc for the process groups that `up` recorded in its pid files."""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gglops.core.pids import PidRecord, group_members

# Sockets that may listen beyond loopback, each with the reason it is safe. Empty: with the
# stack's settings (see RayService.env) Ray binds everything to 127.0.0.1 too.
EXCEPTIONS: dict[str, str] = {}

_LISTEN = "0A"  # TCP state in /proc/net/tcp{,6}


@dataclass(frozen=True)
class Listener:
    pid: int
    name: str
    ip: str
    port: int

    @property
    def loopback(self) -> bool:
        addr = ipaddress.ip_address(self.ip)
        mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (a dual-stack socket)
        return (mapped or addr).is_loopback

    def __str__(self) -> str:
        return f"{self.name}[{self.pid}] {self.ip}:{self.port}"


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    # /proc prints addresses as host-order 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _listening_inodes() -> dict[str, tuple[str, int]]:
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN:
                ip, port = fields[1].split(":")
                found[fields[9]] = (_hex_ip(ip), int(port, 16))
    return found


def listeners(pids: list[int]) -> list[Listener]:
    """The TCP sockets these processes listen on (from their fds and /proc/net/tcp*)."""
    inodes, out = _listening_inodes(), []
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            inode = target[len("socket:[") : -1] if target.startswith("socket:[") else ""
            if inode in inodes:
                out.append(Listener(pid, name, *inodes[inode]))
    return sorted(set(out), key=lambda item: (item.name, item.port))


def stack_listeners(stack_dir: Path, names: tuple[str, ...]) -> dict[str, list[Listener]]:
    result = {}
    for name in names:
        record = PidRecord.load(stack_dir / f"{name}.pid")
        assert record is not None, f"{name} has no pid file in {stack_dir}"
        result[name] = listeners(group_members(record.pid))
    return result


# Ray's processes that open ports after the dashboard answers (what `up` waits for).
RAY_LATE = {"raylet", "ray::DashboardA", "ray::RuntimeEnv"}


def settled_listeners(stack_dir: Path, timeout_s: float = 90.0) -> dict[str, list[Listener]]:
    """The listeners once Ray's late processes listen and two polls 3 s apart agree."""
    names, deadline = ("s3", "mlflow", "ray"), time.monotonic() + timeout_s
    last = stack_listeners(stack_dir, names)
    while time.monotonic() < deadline:
        time.sleep(3)
        now = stack_listeners(stack_dir, names)
        if now == last and {item.name for item in now["ray"]} >= RAY_LATE:
            return now
        last = now
    return last


def test_every_stack_socket_listens_on_loopback(stack, ray_head, reliability) -> None:
    found = settled_listeners(ray_head.stack_dir)
    assert {item.name for item in found["ray"]} >= RAY_LATE, found["ray"]
    for name, items in found.items():
        print(f"{name}: " + ", ".join(map(str, items)))
        assert items, f"{name} listens on nothing?"
    exposed = [
        item
        for items in found.values()
        for item in items
        if not item.loopback and item.name not in EXCEPTIONS
    ]
    assert not exposed, "listening beyond loopback: " + ", ".join(map(str, exposed))
    ray_ports = sorted(item.port for item in found["ray"])
    reliability(
        "stack's listening sockets (Ray: GCS, raylet, agents, metrics) beyond loopback",
        f"{sum(map(len, found.values()))} listening sockets of s3/mlflow/ray, all on "
        f"127.0.0.1 (Ray ports {ray_ports[:3]}...); none on 0.0.0.0 or the host's address",
    )
