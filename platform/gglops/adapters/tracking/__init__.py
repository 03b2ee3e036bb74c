"""The one MLflow tracker: everything in gglops talks to MLflow through this package.

Ray Train V2 has no MLflow callback, so this is an explicit API instead of a global side
effect: the driver opens the run (`open_run`, found again by its Ray run name on resume),
rank 0 delivers per-epoch metrics through a `MetricSink` (buffered in memory and in a JSONL
file while the server is down), and the driver logs the best checkpoint as the run's model
(`log_model`, the model-code pyfunc of `pyfunc.py` here). `summary` reads the registry over
plain REST (`rest_get`), so that it answers without importing mlflow.

- `client`: the MlflowClient (made here only), health probe, REST reads, UI URLs;
- `runs`: experiments, runs by Ray run name, lineage, datasets, system metrics;
- `sink`: per-epoch metrics that survive an outage;
- `artifacts`: the logged model, its signature, registration, download; the ONNX file.
"""

from gglops.adapters.tracking.artifacts import (
    BUNDLE_ARTIFACT,
    MODEL_NAME,
    ONNX_ARTIFACT_DIR,
    LoggedModel,
    download_model_bundle,
    log_model,
    log_onnx,
    model_fetcher,
    model_signature,
    register_model,
    run_model_id,
)
from gglops.adapters.tracking.client import (
    TRACKING_SETTING,
    client,
    health_problem,
    probe_tracking_server,
    rest_get,
    run_url,
)
from gglops.adapters.tracking.runs import (
    DIGEST_CHARS,
    EXPERIMENT_KIND,
    LINEAGE_TAGS,
    RUN_NAME_TAG,
    SYSTEM_METRICS_INTERVAL_S,
    Lineage,
    child_runs,
    end_if_running,
    end_run,
    experiment_id,
    find_run,
    get_run,
    lineage,
    log_artifacts,
    log_datasets,
    log_metrics,
    log_params,
    log_text,
    metric_steps,
    open_run,
    reopen_run,
    set_tags,
    start_run,
    system_metrics,
)
from gglops.adapters.tracking.sink import (
    SINK_PROBE_TIMEOUT_S,
    MetricPoint,
    MetricSink,
    read_pending,
)

__all__ = [
    "BUNDLE_ARTIFACT",
    "DIGEST_CHARS",
    "EXPERIMENT_KIND",
    "LINEAGE_TAGS",
    "MODEL_NAME",
    "ONNX_ARTIFACT_DIR",
    "RUN_NAME_TAG",
    "SINK_PROBE_TIMEOUT_S",
    "SYSTEM_METRICS_INTERVAL_S",
    "TRACKING_SETTING",
    "Lineage",
    "LoggedModel",
    "MetricPoint",
    "MetricSink",
    "child_runs",
    "client",
    "download_model_bundle",
    "end_if_running",
    "end_run",
    "experiment_id",
    "find_run",
    "get_run",
    "health_problem",
    "lineage",
    "log_artifacts",
    "log_datasets",
    "log_metrics",
    "log_model",
    "log_onnx",
    "log_params",
    "log_text",
    "metric_steps",
    "model_fetcher",
    "model_signature",
    "open_run",
    "probe_tracking_server",
    "read_pending",
    "register_model",
    "reopen_run",
    "rest_get",
    "run_model_id",
    "run_url",
    "set_tags",
    "start_run",
    "system_metrics",
]  # fmt: skip
