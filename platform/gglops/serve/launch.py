"""`gglops serve` on the driver side: connect to Ray, check the release, run, wait, clean up.

The alias and its artifact are checked here first (one line, exit 2, when the alias is
missing or the artifact does not match its manifest), so a bad start never reaches Ray. The
caller renders where the app serves (`ready`); the rest are log lines.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gglops.core.errors import ServiceError
from gglops.core.settings import Settings
from gglops.serve.verified import fetch_verified, require_alias_version

if TYPE_CHECKING:
    from gglops.serve.app import ServeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeRequest:
    alias: str
    host: str
    port: int
    replicas: int
    address: str | None
    poll_s: float
    max_pixels: int | None = None  # None: contract.DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Serving:
    """What is being served, and where."""

    model: str
    alias: str
    version: str
    sha256: str
    url: str
    poll_s: float


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


def serve_forever(
    request: ServeRequest, settings: Settings, ready: Callable[[Serving], None]
) -> None:
    """Serve until SIGINT/SIGTERM, then tear down; `ready` hears once the app answers."""
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
    model = settings.registered_model
    ready(Serving(model, request.alias, version, artifact.sha256, url, request.poll_s))
    try:
        _wait_for_signal()
    finally:
        _teardown()
    log.info("stopped")


def _teardown() -> None:
    """Delete our app; shut Serve down only when no other application is left on it."""
    from ray import serve

    from gglops.serve.app import APP_NAME

    serve.delete(APP_NAME)
    if not serve.status().applications:
        serve.shutdown()
