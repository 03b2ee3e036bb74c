"""Start, stop and inspect the local stack; state (pid files, logs) under the stack dir."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack.config import StackConfig, port_in_use
from devstack.process import last_line, spawn, stop_group
from devstack.services import SERVICES, Service
from gglops.core.credentials import Credentials, load_or_create
from gglops.core.errors import ServiceError
from gglops.core.pids import PidRecord, is_ours
from gglops.core.settings import Settings

ALL = ("s3", "mlflow", "ray")


@dataclass(frozen=True)
class ServiceState:
    name: str
    url: str
    pid: int | None
    ours: bool
    healthy: bool


@dataclass(frozen=True, eq=False)
class Launch:
    service: Service
    proc: subprocess.Popen[bytes]
    t0: float

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def problem(self) -> str | None:
        """Why this start failed (its process died, or it is too slow), or None."""
        code = self.proc.poll()
        if code is not None and not (self.service.detaches and code == 0):
            return f"exited during start-up (code {code})"
        if self.elapsed() > self.service.start_timeout:
            return f"not healthy after {self.service.start_timeout:.0f} s"
        return None


@dataclass(frozen=True)
class UpResult:
    name: str
    url: str
    action: str  # "started" | "already running" | "running (not ours)": healthy, left alone
    seconds: float


class Stack:
    """The embedded stack for one stack dir: what `gglops stack` and the test fixture drive."""

    def __init__(self, config: StackConfig, creds: Credentials | None = None) -> None:
        self.config = config
        self.creds = creds or load_or_create(config.stack_dir)
        self.services: dict[str, Service] = {
            name: cls(config, self.creds) for name, cls in SERVICES.items()
        }
        # Warnings from the last `up` (e.g. a token file that was readable by others).
        self.notes: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Stack:
        return cls(StackConfig.from_settings(settings))

    def _pidfile(self, name: str) -> Path:
        return self.config.path(f"{name}.pid")

    def log(self, name: str) -> Path:
        return self.config.path(f"logs/{name}.log")

    def record(self, name: str) -> PidRecord | None:
        return PidRecord.load(self._pidfile(name))

    # -- up ---------------------------------------------------------------------------------

    def up(
        self, names: Iterable[str] = ALL, on_ready: Callable[[UpResult], None] = lambda _: None
    ) -> list[UpResult]:
        """Start what is not healthy yet, all at once, and wait for all of them together;
        `on_ready(result)` as each one is found running or becomes healthy."""
        names = list(names)
        self.config.ports.check(with_ray="ray" in names)
        self.config.stack_dir.mkdir(parents=True, exist_ok=True)
        results: dict[str, UpResult] = {}
        to_start: list[Service] = []
        for name in names:
            service = self.services[name]
            if service.healthy():
                action = "already running" if is_ours(self.record(name)) else "running (not ours)"
                results[name] = UpResult(name, service.url, action, 0.0)
                on_ready(results[name])
            else:
                to_start.append(self._check_free(service))
        launches: list[Launch] = []
        try:
            for service in to_start:
                launches.append(self._launch(service))
            ready = self._await_all(launches, on_ready)
        except BaseException:
            # Roll back: a half-up stack would be mistaken for a working one next time.
            for launch in launches:
                self.stop(launch.service.name)
            raise
        for launch, seconds in ready.items():
            results[launch.service.name] = UpResult(
                launch.service.name, launch.service.url, "started", seconds
            )
        return [results[name] for name in names]

    def _check_free(self, service: Service) -> Service:
        if port_in_use(service.port):
            raise ServiceError(
                f"{service.name}: port {service.port} is taken by a process that is not a "
                f"healthy {service.name} ({service.url}); free it or choose another port"
            )
        return service

    def _launch(self, service: Service) -> Launch:
        self.notes.extend(service.prepare())
        proc = spawn(service.command(), self.log(service.name), service.env())
        PidRecord(proc.pid, service.marker).save(self._pidfile(service.name))
        return Launch(service, proc, time.monotonic())

    def _await_all(
        self, launches: list[Launch], on_ready: Callable[[UpResult], None]
    ) -> dict[Launch, float]:
        """Poll every launch until healthy; a dead or slow one is stopped and reported."""
        pending, ready = list(launches), {}
        while pending:
            for launch in list(pending):
                if launch.service.healthy():
                    launch.service.after_healthy()
                    ready[launch] = launch.elapsed()
                    pending.remove(launch)
                    service = launch.service
                    on_ready(UpResult(service.name, service.url, "started", ready[launch]))
                elif problem := launch.problem():
                    self.stop(launch.service.name)  # leave nothing half-started behind
                    log = self.log(launch.service.name)
                    raise ServiceError(f"{launch.service.name} {problem}: {last_line(log)} "
                                       f"(log: {log})")  # fmt: skip
            time.sleep(0.2)
        return ready

    # -- down -------------------------------------------------------------------------------

    def stop(self, name: str) -> bool:
        """Stop one service if we started it (pid file + matching cmdline); True if stopped."""
        record = self.record(name)
        stopped = record is not None and stop_group(record)
        self._pidfile(name).unlink(missing_ok=True)
        return stopped

    def down(self, names: Iterable[str] = ALL) -> list[str]:
        """Stop what `up` started, in reverse order; returns the names stopped."""
        return [name for name in reversed(list(names)) if self.stop(name)]

    # -- status / env -----------------------------------------------------------------------

    def status(self, names: Iterable[str] = ALL) -> list[ServiceState]:
        states = []
        for name in names:
            service, record = self.services[name], self.record(name)
            ours = is_ours(record)
            pid = record.pid if record is not None and ours else None
            states.append(ServiceState(name, service.url, pid, ours, service.healthy()))
        return states

    def env(self, with_ray: bool = True) -> dict[str, str]:
        """The variables that point GGLOps and each tool at this stack (secrets included)."""
        cfg, secret = self.config, self.creds.secret_key.get_secret_value()
        env = {
            "GGLOPS_STACK_DIR": str(cfg.stack_dir),
            "GGLOPS_MLFLOW_TRACKING_URI": cfg.mlflow_uri,
            "GGLOPS_S3_ENDPOINT_URL": cfg.s3_endpoint,
            "GGLOPS_S3_BUCKET": cfg.bucket,
            "GGLOPS_AWS_ACCESS_KEY_ID": self.creds.access_key,
            "GGLOPS_AWS_SECRET_ACCESS_KEY": secret,
            "MLFLOW_TRACKING_URI": cfg.mlflow_uri,
            "MLFLOW_S3_ENDPOINT_URL": cfg.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.creds.access_key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": cfg.region,
        }
        if with_ray:
            env |= {
                "GGLOPS_RAY_ADDRESS": cfg.ray_gcs,
                "RAY_ADDRESS": cfg.ray_gcs,
                "GGLOPS_RAY_DASHBOARD_URL": cfg.ray_dashboard,
                # The head runs with token auth; Ray's clients send the token only in this mode.
                "RAY_AUTH_MODE": "token",
                # The head's node IP is 127.0.0.1 (RayService.env); clients must agree.
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            }
        return env
