"""The MLflow client of a server (the only place one is made), its health, plain REST reads
and the UI's run URLs."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from gglops.core.errors import ServiceError

TRACKING_SETTING = "GGLOPS_MLFLOW_TRACKING_URI"
# MLflow prints "🏃 View run … at: URL" to stdout at every end of a run (every trial, every
# log_model); the commands print the run's URL once in their result block instead.
QUIET_URLS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


@cache
def client(uri: str) -> Any:
    """The MlflowClient of a server (tracking and registry): the only place one is made."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault(QUIET_URLS, "true")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def fluent(uri: str) -> Iterator[Any]:
    """MLflow's fluent API (log_model, register_model) pointed at `uri` for one call."""
    import mlflow

    os.environ.setdefault(QUIET_URLS, "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield mlflow


def health_problem(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why an HTTP tracking server does not answer /health (None: it does, or not HTTP)."""
    if not uri.startswith(("http://", "https://")):
        return None  # file stores and databricks URIs have no /health endpoint
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def probe_tracking_server(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast with one line when an HTTP tracking server does not answer /health."""
    reason = health_problem(uri, timeout_s)
    if reason is None:
        return
    raise ServiceError(
        f"MLflow tracking server {uri} is unreachable ({reason}); "
        f"start it (gglops stack up) or set {TRACKING_SETTING}"
    )


def rest_get(uri: str, endpoint: str, timeout_s: float = 5.0, **query: str) -> dict[str, Any]:
    """GET /api/2.0/mlflow/<endpoint> without importing mlflow (for quick read-only CLIs).

    An MLflow error answer raises LookupError(error_code); no answer raises ServiceError."""
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise LookupError(body.get("error_code", f"HTTP {exc.code}")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceError(f"MLflow tracking server {uri} is unreachable ({reason})") from None


def run_url(uri: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    """The run's page in the MLflow UI (tab: overview, model-metrics, system-metrics, artifacts),
    in its model-training view: the UI's default view is GenAI, whatever the experiment kind."""
    page = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{page}{f'/{tab}' if tab else ''}?workflowType=machine_learning"
