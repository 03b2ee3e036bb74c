"""Per-epoch metrics that survive a tracking outage: buffered in memory and a JSONL file."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gglops.adapters.tracking.client import client, health_problem
from gglops.core.files import atomic_write

SINK_PROBE_TIMEOUT_S = 2.0


class MetricPoint(BaseModel):
    """One metric value at one step (epoch), as buffered and delivered."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: float
    step: int
    timestamp_ms: int


class MetricSink:
    """Delivers metrics to one run; what the server refuses stays pending and is retried.

    Pending points live in memory and in `pending_file` (JSONL, rewritten atomically), so a
    tracking outage never fails training and never loses a value that was measured.
    """

    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        pending_file: Path,
        pending: Iterable[MetricPoint] = (),
    ) -> None:
        self._uri = tracking_uri
        self._run_id = run_id
        self._file = pending_file
        self._pending: list[MetricPoint] = list(pending)

    @property
    def pending(self) -> list[MetricPoint]:
        return list(self._pending)

    def log(self, values: Mapping[str, float], step: int) -> int:
        """Queue `values` at `step` and try to deliver everything queued; returns what is left."""
        now = int(time.time() * 1000)
        self._pending += [
            MetricPoint(key=k, value=v, step=step, timestamp_ms=now) for k, v in values.items()
        ]
        return self.flush()

    def flush(self) -> int:
        """Try to deliver every pending point; returns how many are still pending."""
        # The quick probe first: MLflow's own retries against a dead server take minutes.
        if self._pending and health_problem(self._uri, SINK_PROBE_TIMEOUT_S) is None:
            from mlflow.entities import Metric

            try:
                client(self._uri).log_batch(
                    self._run_id,
                    metrics=[Metric(p.key, p.value, p.timestamp_ms, p.step) for p in self._pending],
                )
                self._pending = []
            except Exception:  # any outage (connection, 5xx): keep the points, train on
                pass
        self._persist()
        return len(self._pending)

    def _persist(self) -> None:
        if not self._pending:
            self._file.unlink(missing_ok=True)
            return
        atomic_write(self._file, "".join(p.model_dump_json() + "\n" for p in self._pending))


def read_pending(pending_file: Path) -> list[MetricPoint]:
    """Points a previous process could not deliver (empty when the file is absent)."""
    if not pending_file.exists():
        return []
    lines = pending_file.read_text().splitlines()
    return [MetricPoint.model_validate_json(line) for line in lines if line.strip()]
