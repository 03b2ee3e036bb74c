"""`gglops serve` end to end: the real CLI in a subprocess, Ray Serve on the stack's Ray head
(`ray_head`), real HTTP on 127.0.0.1, models registered and promoted on the real MLflow
server and S3 of the `stack` fixture.

One Serve application for the whole module (Serve's start-up is the expensive part); it
is stopped (Ctrl-C → the CLI deletes the app and shuts Serve down) at the module's end, so
other tests on the same Ray head never see it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from helpers.registry import OPEN_GATES, calibrated_model, logged_run
from mlflow.tracking import MlflowClient
from PIL import Image

from devstack.config import free_port
from gglops.adapters.registry import CHAMPION, register_run
from gglops.core.settings import load_settings
from gglops.stages.predict import predict_one, target_boxes
from gglops.stages.promote import promote_version

POLL_S = 0.5
LOAD_BOUND_S = 6.0  # download + sha256 + session + warm-up, with room for a busy 2-core box
SWITCH_BOUND_S = POLL_S + LOAD_BOUND_S
MAX_PIXELS = 300 * 300
START_TIMEOUT_S = 90
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    model: str
    versions: dict[str, str]  # "v1", "v2", "bad" → version number
    settings_env: dict[str, str]
    log: Path
    ray_logs: Path


def _env(stack, model: str) -> dict[str, str]:
    return {**stack.env, "GGLOPS_REGISTERED_MODEL": model, "RAY_AUTH_MODE": "token"}


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gglops serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or the proxy is still starting
            pass
        time.sleep(0.5)
    pytest.fail(f"gglops serve not healthy after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _copy_release(stack, model: str, source: str, target: str) -> None:
    """`target`'s release = `source`'s files (a second export of the same run would be the
    same bytes, at the cost of an export and a parity check)."""
    s3, bucket = stack.s3_client(), stack.bucket
    src, dst = f"models/{model}/{source}", f"models/{model}/{target}"
    body = s3.get_object(Bucket=bucket, Key=f"{src}/model.onnx")["Body"].read()
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{src}/manifest.json")["Body"].read())
    s3.put_object(Bucket=bucket, Key=f"{dst}/model.onnx", Body=body)
    manifest["version"] = target
    s3.put_object(Bucket=bucket, Key=f"{dst}/manifest.json", Body=json.dumps(manifest).encode())


@pytest.fixture(scope="module")
def served(stack, ray_head, synth_data: Path, tmp_path_factory) -> Iterator[Served]:
    """v1 champion (promoted), v2 registered, `bad` released; `gglops serve` on the head."""
    tmp = tmp_path_factory.mktemp("serve")
    model = f"gglnet-serve-{uuid.uuid4().hex[:8]}"
    env = _env(stack, model)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        settings, t0 = load_settings(), time.monotonic()
        # One run, three versions: what the switch shows is the version each answer names.
        run = logged_run(stack.mlflow_uri, synth_data, calibrated_model(synth_data, 1), tmp)
        t1 = time.monotonic()
        versions = {name: register_run(run, settings).version for name in ("v1", "v2", "bad")}
        t2 = time.monotonic()
        assert promote_version(versions["v1"], settings, OPEN_GATES).passed
        _copy_release(stack, model, versions["v1"], versions["bad"])
        print(f"\nrun logged {t1 - t0:.1f} s, 3 versions registered {t2 - t1:.1f} s, "
              f"v1 promoted + copied {time.monotonic() - t2:.1f} s")  # fmt: skip
    port, log = free_port(), tmp / "serve.log"
    cmd = [sys.executable, "-m", "gglops", "serve", "--address", ray_head.gcs_address]
    cmd += ["--port", str(port), "--poll-s", str(POLL_S), "--max-pixels", str(MAX_PIXELS)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        _wait_healthy(url, proc, log)
        print(f"\ngglops serve healthy after {time.monotonic() - t0:.1f} s")
        ray_logs = ray_head.config.ray_temp_dir / "session_latest" / "logs"
        yield Served(url, model, versions, env, log, ray_logs)
    finally:
        _stop(proc, log)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Ctrl-C: the CLI deletes the app and shuts Serve down, prints `stopped`, exits."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text()
    print(f"gglops serve stopped in {time.monotonic() - t0:.1f} s (exit {proc.returncode})")
    assert "stopped" in text.splitlines()[-1], text[-2000:]


# --- images ------------------------------------------------------------------------------


def known_targets(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (h, w) clutter with three bright Gaussian targets at known places."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    image = 40 + 15 * rng.standard_normal((h, w))
    for cy, cx in ((h // 4, w // 4), (h // 2, 3 * w // 4), (3 * h // 4, w // 3)):
        image += 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    return np.clip(image, 0, 255).astype(np.uint8)


MODES = {
    "L": Image.fromarray,
    "RGB": lambda g: Image.fromarray(np.stack([g, g // 2, 255 - g], -1)),
    "RGBA": lambda g: Image.fromarray(np.stack([g, g, g, np.full_like(g, 200)], -1)),
}
FORMATS = {"PNG": ".png", "BMP": ".bmp", "JPEG": ".jpg", "TIFF": ".tif"}
SIZES = ((64, 64), (75, 53), (33, 130), (128, 96))  # (h, w): some not multiples of 16


def encode(img: Image.Image, fmt: str) -> bytes:
    if fmt == "JPEG" and img.mode == "RGBA":
        img = img.convert("RGB")  # JPEG has no alpha: send the RGB that a camera would
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def post(url: str, body: bytes, **params: str) -> requests.Response:
    return requests.post(f"{url}/predict", data=body, params=params, timeout=30)


# --- tests -------------------------------------------------------------------------------


def test_health_names_the_champion_and_its_hash(served: Served) -> None:
    health = requests.get(f"{served.url}/healthz", timeout=10).json()
    settings = load_settings(**{"registered_model": served.model})
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    tags = client.get_model_version(served.model, served.versions["v1"]).tags
    assert health == {
        "model_version": served.versions["v1"], "alias": CHAMPION,
        "onnx_sha256": tags["onnx_sha256"], "refused": None,
    }  # fmt: skip


def test_every_format_mode_and_size_matches_gglops_predict(
    served: Served, stack, tmp_path: Path
) -> None:
    """Shape, target count and boxes as `gglops predict` finds them on the same file, with
    the same released ONNX model (the tiny model is random: predict is the reference)."""
    from gglops.model.export import onnx_prob_fn

    s3 = stack.s3_client()
    onnx = tmp_path / "v1.onnx"
    key = f"models/{served.model}/{served.versions['v1']}/model.onnx"
    onnx.write_bytes(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    fn = onnx_prob_fn(onnx)
    cases = [
        (fmt, mode, SIZES[i % len(SIZES)])
        for i, (fmt, mode) in enumerate((f, m) for f in FORMATS for m in MODES)
    ]
    for i, (fmt, mode, (h, w)) in enumerate(cases):
        path = tmp_path / f"img{i}{FORMATS[fmt]}"
        path.write_bytes(encode(MODES[mode](known_targets(h, w, i)), fmt))
        answer = post(served.url, path.read_bytes(), mask="png")
        assert answer.status_code == 200, (fmt, mode, answer.text)
        body = answer.json()
        assert (body["height"], body["width"]) == (h, w), (fmt, mode)
        assert body["model_version"] == served.versions["v1"]
        expected = predict_one(fn, path, tmp_path / "predict", path.stem)
        mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]))))
        reference = np.asarray(Image.open(expected.mask))
        assert mask.shape == (h, w) and np.array_equal(mask, reference), (fmt, mode)
        assert len(body["targets"]) == expected.targets, (fmt, mode)
        boxes = {(b["x0"], b["y0"], b["x1"], b["y1"]) for b in (t["bbox"] for t in body["targets"])}
        assert boxes == set(target_boxes(reference > 0)), (fmt, mode)  # the same corners
        for target in body["targets"]:
            box, centre = target["bbox"], target["centroid"]
            assert box["y0"] <= centre["y"] <= box["y1"] and box["x0"] <= centre["x"] <= box["x1"]
            assert target["area"] >= 1
            assert 0.5 <= target["score"] <= 1.0  # above THRESHOLD, rounded to 4 digits
    no_mask = post(served.url, (tmp_path / "img0.png").read_bytes()).json()
    assert "mask" not in no_mask and no_mask["height"] == SIZES[0][0]
    if shutil.which("curl"):  # what the README shows, verbatim
        curl = ["curl", "-s", "--data-binary", f"@{tmp_path / 'img0.png'}", f"{served.url}/predict"]
        shown = subprocess.run(curl, capture_output=True, text=True, timeout=30, check=True)
        print(f"\n$ curl -s --data-binary @img0.png {served.url}/predict\n{shown.stdout}")
        assert json.loads(shown.stdout) == no_mask


def test_bad_inputs_get_4xx_with_one_line(served: Served, reliability) -> None:
    big = encode(Image.fromarray(np.zeros((400, 400), np.uint8)), "PNG")
    png = encode(Image.fromarray(known_targets(64, 64, 0)), "PNG")
    gif = encode(Image.fromarray(known_targets(32, 32, 0)), "GIF")
    cases = {
        "empty body": (post(served.url, b""), 400),
        "not an image": (post(served.url, b"hello, this is text"), 415),
        "GIF image": (post(served.url, gif), 415),
        "truncated PNG": (post(served.url, png[: len(png) // 2]), 400),
        f"400x400 over --max-pixels {MAX_PIXELS}": (post(served.url, big), 413),
        "?mask=jpeg": (post(served.url, png, mask="jpeg"), 400),
        "GET /predict": (requests.get(f"{served.url}/predict", timeout=10), 404),
    }
    seen = []
    for name, (response, status) in cases.items():
        reason = response.json()["error"]
        assert response.status_code == status, (name, response.text)
        assert "\n" not in reason and "Traceback" not in response.text, name
        seen.append(f"{name}: {response.status_code} '{reason}'")
    assert post(served.url, png).status_code == 200  # and the server still answers
    reliability("gglops serve: bad uploads (empty, text, GIF, truncated, too big)", "; ".join(seen))


class Client(threading.Thread):
    """Sends one small PNG after the other, recording (t, status, version, latency)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.records, self.stop = url, [], threading.Event()
        self.body = encode(Image.fromarray(known_targets(32, 48, 7)), "PNG")
        self.t0 = time.monotonic()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    r = session.post(f"{self.url}/predict", data=self.body, timeout=30)
                    status, version = r.status_code, r.json().get("model_version")
                except (requests.RequestException, ValueError) as exc:
                    status, version = type(exc).__name__, None
                now = time.monotonic()
                time.sleep(0.05)  # a steady client, not a flood: leaves CPU to the promotion
                self.records.append(
                    {"t": round(start - self.t0, 3), "status": status, "version": version,
                     "ms": round(1000 * (now - start), 1)}
                )  # fmt: skip

    def first(self, version: str, after: float) -> float | None:
        return next(
            (r["t"] for r in self.records if r["t"] >= after and r["version"] == version), None
        )

    def wait_for(self, version: str, after: float, bound: float) -> float | None:
        deadline = time.monotonic() + bound + 5
        while (seen := self.first(version, after)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen


class AliasWatcher(threading.Thread):
    """Polls the registry every 50 ms: when the alias really moved, as an event time."""

    def __init__(self, uri: str, model: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.client = MlflowClient(tracking_uri=uri)
        self.model, self.t0, self.stop = model, t0, threading.Event()
        self.moves: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop.wait(0.05):
            version = self.client.get_model_version_by_alias(self.model, CHAMPION).version
            if not self.moves or self.moves[-1][1] != str(version):
                self.moves.append((round(time.monotonic() - self.t0, 3), str(version)))


def print_timeline(records: list[dict], events: dict[str, float]) -> None:
    """Runs of one version (count, latency p50/max), and every request near an event."""
    print("\nswitch timeline (t from the first request):")
    for name, t in events.items():
        print(f"  event t={t:7.3f}  {name}")
    runs: list[list[dict]] = []
    for r in records:
        if (
            runs
            and runs[-1][-1]["version"] == r["version"]
            and runs[-1][-1]["status"] == r["status"]
        ):
            runs[-1].append(r)
        else:
            runs.append([r])
    for run in runs:
        ms = [r["ms"] for r in run]
        print(f"  t={run[0]['t']:7.3f}..{run[-1]['t']:7.3f}  v{run[0]['version']} status "
              f"{run[0]['status']}  n={len(run):4d}  p50 {np.median(ms):6.1f} ms  "
              f"max {max(ms):6.1f} ms")  # fmt: skip
    moves = [t for name, t in events.items() if name.startswith("alias")]
    near = [r for r in records if any(-0.3 < r["t"] - t < 0.6 for t in moves)]
    print("  requests from 0.3 s before to 0.6 s after each alias move:")
    for r in near:
        print(f"    t={r['t']:7.3f}  status {r['status']}  v{r['version']}  {r['ms']:6.1f} ms")


def test_promotion_and_rollback_switch_without_a_failed_request(
    served: Served, reliability
) -> None:
    from gglops.stages.promote import rollback_champion

    v1, v2 = served.versions["v1"], served.versions["v2"]
    with pytest.MonkeyPatch.context() as mp:
        for name, value in served.settings_env.items():
            mp.setenv(name, value)
        settings = load_settings()
        client = Client(served.url)
        watcher = AliasWatcher(settings.mlflow_tracking_uri, served.model, client.t0)
        client.start()
        watcher.start()
        try:
            time.sleep(1.0)
            events = {"promote starts": time.monotonic() - client.t0}
            assert promote_version(v2, settings, OPEN_GATES).passed
            events["promote returns"] = time.monotonic() - client.t0
            client.wait_for(v2, events["promote starts"], SWITCH_BOUND_S)
            time.sleep(1.0)
            events["rollback starts"] = time.monotonic() - client.t0
            rollback_champion(settings)
            events["rollback returns"] = time.monotonic() - client.t0
            client.wait_for(v1, events["rollback starts"], SWITCH_BOUND_S)
            time.sleep(1.0)
        finally:
            client.stop.set()
            watcher.stop.set()
            client.join(timeout=30)
            watcher.join(timeout=30)
    records = client.records
    moves = watcher.moves  # [(t, "1"), (t_promoted, "2"), (t_rolled_back, "1")]
    assert [v for _, v in moves] == [v1, v2, v1], moves
    (_, _), (t_up, _), (t_back, _) = moves
    events |= {f"alias → v{v2} (seen by a 50 ms poll)": t_up, f"alias → v{v1}": t_back}
    print_timeline(records, dict(sorted(events.items(), key=lambda kv: kv[1])))
    failed = [r for r in records if r["status"] != 200]
    assert not failed, failed[:5]
    to_v2, to_v1 = client.first(v2, t_up - 0.05), client.first(v1, t_back - 0.05)
    assert to_v2 is not None and to_v1 is not None, (to_v2, to_v1)
    switch_v2, switch_v1 = to_v2 - t_up, to_v1 - t_back
    assert switch_v2 <= SWITCH_BOUND_S and switch_v1 <= SWITCH_BOUND_S, (switch_v2, switch_v1)
    # Each switch is clean: no answer from the old version after the first from the new one.
    assert all(r["version"] == v1 for r in records if r["t"] < t_up - 0.05)
    assert all(r["version"] == v2 for r in records if to_v2 <= r["t"] < t_back - 0.05)
    assert all(r["version"] == v1 for r in records if r["t"] >= to_v1)
    summary = (
        f"{len(records)} requests, 0 failed; first v{v2} answer {switch_v2:.2f} s after the "
        f"alias moved, first v{v1} answer {switch_v1:.2f} s after the rollback moved it "
        f"(bound poll {POLL_S:g} s + load {LOAD_BOUND_S:g} s)"
    )
    print(summary)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "serve_timeline.json").write_text(
        json.dumps({"events": events, "records": records}) + "\n"
    )
    reliability("promote, then rollback, while a client loops requests", summary)


def test_corrupted_artifact_is_refused_and_the_old_version_keeps_serving(
    served: Served, stack, gglops_cli, monkeypatch, reliability
) -> None:
    bad, v1 = served.versions["bad"], served.versions["v1"]
    key = f"models/{served.model}/{bad}/model.onnx"
    s3 = stack.s3_client()
    body = bytearray(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte: same size, different hash
    s3.put_object(Bucket=stack.bucket, Key=key, Body=bytes(body))
    mlflow = MlflowClient(tracking_uri=stack.mlflow_uri)
    # `gglops serve` itself refuses to start on it: exit 2, one line naming version and key.
    for name, value in served.settings_env.items():
        monkeypatch.setenv(name, value)
    mlflow.set_registered_model_alias(served.model, "broken", bad)
    code, out = gglops_cli(["serve", "--alias", "broken"])
    line = next(x for x in out.splitlines() if x.startswith("error:"))
    assert code == 2 and f"version {bad}" in line and key in line, out
    # The running server, when the champion moves onto it, keeps serving v1.
    mlflow.set_registered_model_alias(served.model, CHAMPION, bad)
    try:
        deadline = time.monotonic() + SWITCH_BOUND_S + 2
        health = {}
        while time.monotonic() < deadline and not health.get("refused"):
            time.sleep(0.2)
            health = requests.get(f"{served.url}/healthz", timeout=10).json()
        answer = post(served.url, encode(Image.fromarray(known_targets(64, 64, 1)), "PNG"))
    finally:
        mlflow.set_registered_model_alias(served.model, CHAMPION, v1)
    assert health["model_version"] == v1, health
    assert f"version {bad}" in health["refused"] and key in health["refused"], health
    assert answer.status_code == 200 and answer.json()["model_version"] == v1
    logged = [
        p for p in served.ray_logs.glob("serve/replica_*") if key in p.read_text(errors="replace")
    ]
    assert logged, f"no replica log under {served.ray_logs} names {key}"
    reliability(
        "champion moved onto a corrupted ONNX artifact on S3 (one flipped byte)",
        f"`gglops serve` exit {code}: {line}; running server kept v{v1}: {health['refused']}",
    )


def _png_header(width: int, height: int) -> bytes:
    """A PNG with only its IHDR (no pixel data): what a decompression bomb starts with."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [5000, 100_000])  # over our limit; over PIL's bomb limit too
def test_a_huge_image_is_refused_on_its_header(side: int) -> None:
    from gglops.serve.contract import BadRequestError, decode_image

    with pytest.raises(BadRequestError, match="pixel limit") as caught:
        decode_image(_png_header(side, side), max_pixels=4096 * 4096)
    assert caught.value.status == 413


def test_find_targets_are_the_components_predict_boxes() -> None:
    from gglops.serve.contract import find_targets

    probs = np.zeros((40, 50), np.float32)
    probs[10:13, 20:24] = 0.9
    probs[30, 5], probs[31, 6] = 0.7, 0.6  # diagonal neighbours: one 8-connected target
    targets = find_targets(probs)
    corners = [(t.bbox.x0, t.bbox.y0, t.bbox.x1, t.bbox.y1) for t in targets]
    assert corners == [(20, 10, 23, 12), (5, 30, 6, 31)]  # x0, y0, x1, y1
    assert [(t.area, t.score) for t in targets] == [(12, 0.9), (2, 0.7)]
    assert (targets[0].centroid.x, targets[0].centroid.y) == (21.5, 11.0)
    assert set(corners) == set(target_boxes(probs > 0.5))  # predict draws the same boxes
    assert targets[0].model_dump()["bbox"] == {"x0": 20, "y0": 10, "x1": 23, "y1": 12}


def test_rayservice_manifest_runs_this_app() -> None:
    """The RayService's serveConfigV2 is a valid Serve config whose import path and args build
    this application (Ray's own schema; the CRD's structure is test_infra's)."""
    from ray.serve.schema import ServeDeploySchema

    from gglops.serve.app import ServeConfig

    doc = yaml.safe_load((ROOT / "infra" / "kuberay" / "rayservice.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayService")
    config = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    (app,) = config.applications
    assert app.import_path == "gglops.serve.app:build_app" and app.route_prefix == "/"
    args = dict(app.args)
    args.pop("replicas", None)
    assert ServeConfig.model_validate(args).alias == CHAMPION
    assert config.http_options.host == "0.0.0.0"  # inside the pod; the Service exposes it
