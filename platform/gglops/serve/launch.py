"""`gglops serve` on the driver side: connect to Ray, check the release, run, wait, clean up.

The alias and its artifact are checked here first (one line, exit 2, when the alias is
missing or the artifact does not match its manifest), so a bad start never reaches Ray.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gglops.core.errors import ServiceError
from gglops.core.settings import Settings
from gglops.serve.verified import fetch_verified, require_alias_version

if TYPE_CHECKING:
    from gglops.serve.app import ServeConfig


@dataclass(frozen=True)
class ServeRequest:
    alias: str
    host: str
    port: int
    replicas: int
    address: str | None
    poll_s: float
    max_pixels: int | None = None  # None: contract.DEFAULT_MAX_PIXELS


def replica_config(request: ServeRequest, settings: Settings) -> ServeConfig:
    """The settings this shell resolved (no secrets), so replicas use the same services."""
    from gglops.serve.app import SHIPPED_SETTINGS, ServeConfig

    shipped = {name: str(getattr(settings, name)) for name in SHIPPED_SETTINGS}
    shipped["stack_dir"] = os.path.abspath(shipped["stack_dir"])  # replicas run elsewhere
    limit = {} if request.max_pixels is None else {"max_pixels": request.max_pixels}
    return ServeConfig(alias=request.alias, poll_s=request.poll_s, settings=shipped, **limit)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def serve_forever(request: ServeRequest, settings: Settings) -> None:
    version = require_alias_version(settings, request.alias)
    artifact = fetch_verified(settings, version)  # refuse before starting anything
    from gglops.adapters.raycluster import connect_ray

    # A replica takes one logical CPU; Serve's controller and proxy take none.
    connect_ray(settings, request.replicas, address=request.address, flag="--address")
    from ray import serve

    from gglops.serve.app import APP_NAME, build

    serve.start(http_options={"host": request.host, "port": request.port})
    app = build(replica_config(request, settings), request.replicas)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")
    except RuntimeError as exc:  # a replica failed to start: Serve says why in one line
        reason = str(exc).strip().splitlines()[-1][:240]
        _teardown()
        raise ServiceError(f"Ray Serve could not start {APP_NAME}: {reason}") from None
    url = f"http://{request.host}:{request.port}"
    print(
        f"serving models:/{settings.registered_model}@{request.alias} version {version} "
        f"(sha256 {artifact.sha256[:12]}…) at {url}: POST {url}/predict, GET {url}/healthz; "
        f"following the alias every {request.poll_s:g} s; Ctrl-C stops",
        flush=True,
    )
    try:
        _wait_for_signal()
    finally:
        _teardown()
    print("stopped", file=sys.stderr, flush=True)


def _teardown() -> None:
    """Delete our app; shut Serve down only when no other application is left on it."""
    from ray import serve

    from gglops.serve.app import APP_NAME

    serve.delete(APP_NAME)
    if not serve.status().applications:
        serve.shutdown()
