"""The model a replica serves, and the loop that keeps it on the registry alias.

Every `poll_s` the loop resolves the alias; when it points at another version, that version
is downloaded, verified (sha256 vs manifest), loaded into a new onnxruntime session and run
once, and only then swapped in with one reference assignment. A batch takes the current
model once, so in-flight requests finish on the session they started with and no request
fails during a switch. A version that cannot be served leaves the old one serving; the
reason is logged (once per distinct reason) and shown in /healthz.

Bound on a switch: poll_s + load time (download + hash + session + warm-up run).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gglops.core.errors import GGLOpsError
from gglops.core.settings import Settings
from gglops.serve.verified import ArtifactRefusedError, fetch_verified, require_alias_version

# Serve routes this logger to the replica log (and its stderr); ours would go nowhere.
log = logging.getLogger("ray.serve")
WARMUP_SHAPE = (1, 3, 32, 32)  # one small run: onnxruntime allocates its plan before traffic

Batch = Callable[[np.ndarray], np.ndarray]  # float32 (N, 3, H, W) → probs (N, 1, H, W)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    sha256: str
    run: Batch
    load_s: float


def load_release(settings: Settings, version: str, threads: int | None = None) -> LoadedModel:
    """A verified, warmed-up session on `version`'s released ONNX file."""
    from gglops.model.export import onnx_prob_fn

    t0 = time.monotonic()
    artifact = fetch_verified(settings, version)
    with tempfile.TemporaryDirectory(prefix="gglops-serve-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(artifact.body)
        try:
            run = onnx_prob_fn(path, threads)  # the measured session settings (gglops.model.onnxrt)
            run(np.zeros(WARMUP_SHAPE, np.float32))
        except GGLOpsError as exc:
            reason = str(exc).replace(str(path), "model.onnx")
            raise ArtifactRefusedError(f"version {version}: {artifact.url}: {reason}") from None
    return LoadedModel(version, artifact.sha256, run, time.monotonic() - t0)


class Follower:
    """Holds `current` and moves it to wherever `alias` points (see the module docstring)."""

    def __init__(
        self, settings: Settings, alias: str, poll_s: float, threads: int | None = None
    ) -> None:
        self.settings, self.alias, self.poll_s, self.threads = settings, alias, poll_s, threads
        self.current = load_release(settings, require_alias_version(settings, alias), threads)
        self.refused: str | None = None
        self._stop = threading.Event()

    def check_once(self) -> bool:
        """Follow the alias one step; True when a new version was swapped in."""
        try:
            version = require_alias_version(self.settings, self.alias)
            if version == self.current.version:
                self.refused = None
                return False
            loaded = load_release(self.settings, version, self.threads)
        except GGLOpsError as exc:  # unreachable service, missing alias, refused artifact
            self._refuse(str(exc))
            return False
        old, self.current, self.refused = self.current, loaded, None  # the swap: one assignment
        log.info(
            "alias %s: now serving version %s (was %s; loaded in %.2f s)",
            self.alias, loaded.version, old.version, loaded.load_s,
        )  # fmt: skip
        return True

    def _refuse(self, reason: str) -> None:
        if reason != self.refused:
            log.error("still serving version %s: %s", self.current.version, reason)
        self.refused = reason

    def start(self) -> None:
        threading.Thread(target=self._loop, name="gglops-follow", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check_once()
            except Exception:  # a bug must not end the loop: the old version keeps serving
                log.exception("follow loop: unexpected error")
