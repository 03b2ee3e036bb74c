"""`gglops serve` throughput and latency next to a bare onnxruntime session, in one run.

A stack of its own (S3 + MLflow in a temp dir, free ports) holds one release of the demo's
GGL-Net (width 0.5, random weights: speed does not depend on them) as `champion`; the real
Serve application (`gglops.serve.app`, one replica) serves it on a local Ray. Then, on the
same 256×256 PNGs:

- bare: one process, one `gglops.model.export.onnx_prob_fn` session (the same measured settings),
  batch 1, decode + pad + run + targets per image, sequentially: images/s;
- served: CLIENTS threads, each POSTing one image after the other over a keep-alive
  connection on loopback, REQUESTS in all or at most DURATION_S: requests/s, p50, p99.

    python -m bench.serve      # the figures as JSON

Both share the machine's cores with everything else (and the served run with its own load
generator, proxy and replica). The bare rate is measured before and after the served run
and the faster one is the denominator, so drift in the machine's load never flatters the
ratio; on a busy machine the two bare rates differ a lot (both are kept).
"""

from __future__ import annotations

import http.client
import io
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 256
CLIENTS = 8
REQUESTS = 240  # served requests in all (bounded in count)
DURATION_S = 60.0  # and in time
BARE_IMAGES = 60
WARMUP = 8
MODEL = "gglnet-bench-serve"
WIDTH = 0.5  # params.yaml's model.width_mult


def _images(n: int) -> list[bytes]:
    """`n` distinct 256² grey PNGs from the synthetic generator's own renderer."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        frame = 40 + 20 * rng.standard_normal((SIZE, SIZE))
        y, x = rng.integers(16, SIZE - 16, 2)
        yy, xx = np.mgrid[:SIZE, :SIZE]
        frame += 160 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 6.0)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _release(work: Path, settings: Any) -> Path:
    """Export the model, publish model.onnx + manifest as `promote` lays them out, alias it."""
    import torch
    from mlflow.tracking import MlflowClient

    from gglnet import GGLNet
    from gglops.adapters.s3 import ArtifactStore
    from gglops.core.files import sha256_file
    from gglops.model.export import export_onnx
    from gglops.stages.release import RELEASE_PREFIX, publish

    torch.manual_seed(0)
    onnx = export_onnx(GGLNet(width_mult=WIDTH).eval(), work / "model.onnx")
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    client.create_registered_model(MODEL)
    source = f"s3://{settings.s3_bucket}/models/{MODEL}"  # a local path needs a run
    version = str(client.create_model_version(MODEL, source=source).version)
    digest = sha256_file(onnx)
    manifest = json.dumps({"name": MODEL, "version": version, "sha256": digest}).encode()
    prefix = RELEASE_PREFIX.format(model=MODEL, version=version)
    publish(ArtifactStore(settings), prefix, onnx, digest, manifest)
    client.set_registered_model_alias(MODEL, "champion", version)
    return onnx


def _bare(onnx: Path, images: list[bytes]) -> float:
    """images/s of decode + pad + one batch-1 session run + targets, in this process."""
    from gglops.model.export import onnx_prob_fn
    from gglops.model.inference import pad_to_multiple
    from gglops.serve.contract import decode_image, find_targets

    fn = onnx_prob_fn(onnx)

    def one(body: bytes) -> None:
        padded, (h, w) = pad_to_multiple(decode_image(body))
        find_targets(fn(padded[None])[0, 0][:h, :w])

    for body in images[:WARMUP]:
        one(body)
    t0 = time.perf_counter()
    for i in range(BARE_IMAGES):
        one(images[i % len(images)])
    return BARE_IMAGES / (time.perf_counter() - t0)


class _Load:
    """CLIENTS keep-alive clients; stops at REQUESTS answers or DURATION_S, whichever first."""

    def __init__(self, port: int, images: list[bytes]) -> None:
        self.port, self.images = port, images
        self.latencies: list[float] = []
        self.failed = 0
        self.lock = threading.Lock()
        self.sent = 0

    def _next(self) -> int | None:
        with self.lock:
            if self.sent >= REQUESTS or time.perf_counter() > self.deadline:
                return None
            self.sent += 1
            return self.sent

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while (i := self._next()) is not None:
            start = time.perf_counter()
            conn.request("POST", "/predict", body=self.images[i % len(self.images)])
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            with self.lock:
                self.latencies.append(elapsed)
                self.failed += response.status != 200
        conn.close()

    def run(self) -> float:
        self.deadline = time.perf_counter() + DURATION_S
        threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(self.latencies) / (time.perf_counter() - t0)


def _served(settings: Any, images: list[bytes]) -> dict[str, float]:
    import ray
    from ray import serve

    from devstack.config import free_port
    from gglops.serve.app import APP_NAME, build
    from gglops.serve.launch import ServeRequest, replica_config

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        request = ServeRequest("champion", "127.0.0.1", port, 1, None, 60.0)
        serve.run(build(replica_config(request, settings)), name=APP_NAME, route_prefix="/")
        for body in images[:WARMUP]:  # one at a time: the session's first runs, not the load
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/predict", body=body)
            conn.getresponse().read()
            conn.close()
        load = _Load(port, images)
        rate = load.run()
    finally:
        serve.shutdown()
        ray.shutdown()
    ms = np.array(load.latencies) * 1000
    return {
        "requests_per_s": rate,
        "requests": len(ms),
        "failed": load.failed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def measure() -> dict[str, Any]:
    import os

    from devstack import Ports, Stack, StackConfig
    from gglops.core.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="gglops-bench-serve-") as tmp:
        work = Path(tmp)
        stack = Stack(StackConfig(stack_dir=work / "stack", ports=Ports.free()))
        stack.up(["s3", "mlflow"])
        try:
            env = stack.env(with_ray=False) | {"GGLOPS_REGISTERED_MODEL": MODEL}
            os.environ.update(env)  # this process and the local Ray it starts
            settings = load_settings()
            onnx = _release(work, settings)
            images = _images(32)
            bare = _bare(onnx, images)
            served = _served(settings, images)
            bare_again = _bare(onnx, images)  # before and after: the machine's drift shows
        finally:
            stack.down(["s3", "mlflow"])
    # The faster of the two bare rates: the machine's drift never flatters the ratio.
    ort = max(bare, bare_again)
    return {
        "serve_throughput_vs_ort": served["requests_per_s"] / ort,
        "serve_p50_ms": served["p50_ms"],
        "serve_p99_ms": served["p99_ms"],
        "serve_requests_per_s": served["requests_per_s"],
        "serve_ort_images_per_s": [bare, bare_again],
        "serve_requests": served["requests"],
        "serve_failed_requests": served["failed"],
        "serve_clients": CLIENTS,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
