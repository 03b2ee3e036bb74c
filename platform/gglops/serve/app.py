"""The Ray Serve application: one ingress deployment, `Detector`, replicated N times.

Routes: `POST /predict` (an image file → targets, optional `?mask=png`), `GET /healthz`.
Inference goes through `@serve.batch`: the requests that arrive within BATCH_WAIT_S form a
batch, grouped by padded shape, and each group is one onnxruntime run over N images.
`build_app` is also the import path of the KubeRay RayService (infra/kuberay/rayservice.yaml).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from gglops.model.inference import pad_to_multiple
from gglops.serve.contract import (
    DEFAULT_MAX_PIXELS,
    BadRequestError,
    Health,
    PredictResponse,
    decode_image,
    find_targets,
    mask_format,
    mask_png,
)
from gglops.serve.follow import Follower, LoadedModel

APP_NAME = "gglops"
DEPLOYMENT = "Detector"
MAX_BATCH = 8
BATCH_WAIT_S = 0.01  # at most this long for company: ~1/10 of one 256² run
MAX_ONGOING = 32  # per replica: enough queued requests to fill batches
DEFAULT_POLL_S = 2.0
# Non-secret settings a replica takes from the launching shell (keys come from the cluster).
SHIPPED_SETTINGS = (
    "mlflow_tracking_uri", "s3_endpoint_url", "s3_bucket", "s3_region", "registered_model",
    "stack_dir",
)  # fmt: skip
log = logging.getLogger("ray.serve")
_ROUTES = {("POST", "/predict"): "predict", ("GET", "/healthz"): "healthz"}  # → method name


class ServeConfig(BaseModel):
    """What a replica needs besides its environment (the RayService passes it as `args`)."""

    alias: str = "champion"
    poll_s: float = Field(DEFAULT_POLL_S, gt=0)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0)
    threads: int | None = Field(None, ge=1)
    settings: dict[str, str] = {}  # GGLOPS_* overrides, e.g. {"registered_model": "gglnet"}


def _run_grouped(model: LoadedModel, images: list[np.ndarray]) -> list[np.ndarray]:
    """Probabilities (H, W) per padded image (3, H, W): one session run per distinct shape."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        groups[image.shape].append(i)
    out: list[np.ndarray] = [np.empty(0)] * len(images)
    for indices in groups.values():
        probs = model.run(np.ascontiguousarray(np.stack([images[i] for i in indices])))
        for i, p in zip(indices, probs, strict=True):
            out[i] = p[0]
    return out


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


@serve.deployment(
    name=DEPLOYMENT,
    max_ongoing_requests=MAX_ONGOING,
    ray_actor_options={"num_cpus": 1},
    health_check_period_s=5,
)
class Detector:
    def __init__(self, config: ServeConfig) -> None:
        from gglops.core.settings import load_settings

        self.config = config
        settings = load_settings(**config.settings)
        self.follower = Follower(settings, config.alias, config.poll_s, config.threads)
        self.follower.start()
        model = self.follower.current
        log.info("serving alias %s: version %s (%s)", config.alias, model.version, model.sha256)

    async def __call__(self, request: Request) -> JSONResponse:
        route = _ROUTES.get((request.method, request.url.path.rstrip("/") or "/"))
        if route is None:
            return _error(404, f"{request.method} {request.url.path}: try POST /predict or "
                               "GET /healthz")  # fmt: skip
        try:
            return await getattr(self, route)(request)
        except BadRequestError as exc:
            return _error(exc.status, str(exc))
        except Exception as exc:  # a bug: one line to the client, the traceback to the log
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(500, f"internal error: {type(exc).__name__}")

    async def predict(self, request: Request) -> JSONResponse:
        mask = mask_format(request.query_params.get("mask"))
        body = await request.body()
        image = await asyncio.to_thread(decode_image, body, self.config.max_pixels)
        padded, (h, w) = pad_to_multiple(image)
        version, probs = await self.infer(padded)
        probs = probs[:h, :w]
        answer = PredictResponse(
            model_version=version,
            height=h,
            width=w,
            targets=find_targets(probs),
            mask=mask_png(probs) if mask else None,
        )
        return JSONResponse(answer.model_dump(mode="json", exclude_none=True))

    async def healthz(self, _request: Request) -> JSONResponse:
        model = self.follower.current
        health = Health(
            model_version=model.version,
            alias=self.config.alias,
            onnx_sha256=model.sha256,
            refused=self.follower.refused,
        )
        return JSONResponse(health.model_dump(mode="json"))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def infer(self, images: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
        model = self.follower.current  # one model per batch: a swap never splits a batch
        probs = await asyncio.to_thread(_run_grouped, model, images)
        return [(model.version, p) for p in probs]

    def __del__(self) -> None:
        self.follower.stop()


def build(config: ServeConfig, replicas: int = 1) -> Any:
    """The bound application (`serve.run(build(...))`)."""
    return Detector.options(num_replicas=replicas).bind(config)  # type: ignore[attr-defined]


def build_app(args: dict[str, Any]) -> Any:
    """Application builder for `serve run`/RayService: `args` are ServeConfig's fields plus
    an optional `replicas`; settings come from the replica's environment (ConfigMap)."""
    fields = dict(args)
    replicas = int(fields.pop("replicas", 1))
    return build(ServeConfig.model_validate(fields), replicas)
