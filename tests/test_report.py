"""`gglops report VERSION`: the reproducibility report of a registered version."""

from __future__ import annotations

import uuid

import pytest
from test_registry import calibrated_model, logged_run, run_cli

from gglops.report import published_row
from gglops.settings import load_settings

SECTIONS = (
    "## Lineage",
    "## Data",
    "## Evaluation policy",
    "## Metric definitions",
    "## Metrics (test split)",
    "## Precision/recall curve",
    "## Example overlays",
    "## Parameters (from the training run)",
)


def test_published_numbers_by_dataset_and_split() -> None:
    assert published_row("NUAA-SIRST", "idx_320")[1:] == (0.795, 0.768, 0.990, 7.07)
    assert published_row("irstd-1k", None)[0] == "IRSTD-1k 800:201"
    assert published_row("synthetic-sirst", "idx_427") is None


@pytest.mark.integration
def test_report_of_a_registered_version(stack_env, synth_data, tmp_path, monkeypatch, capsys):
    from gglops.data.manifest import build_manifest
    from gglops.registry import register_run

    name = f"gglnet-report-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GGLOPS_REGISTERED_MODEL", name)
    net = calibrated_model(synth_data, seed=3)
    run_id = logged_run(stack_env.mlflow_uri, synth_data, net, tmp_path)
    version = register_run(run_id, load_settings()).version

    code, out = run_cli(["report", version, "--out", str(tmp_path / "report")], capsys)
    assert code == 0, out
    text = (tmp_path / "report" / "report.md").read_text()
    for section in SECTIONS:
        assert section in text, section
    assert build_manifest(synth_data, "nuaa-sirst", "idx_427").data_hash in text
    assert "matches the hash recorded" in text and run_id in text and "0" * 40 in text
    assert "counts 0" in text and "original resolution" in text and "8-connected" in text
    assert "| train.lr | `0.003` |" in text or "| train.lr |" in text
    assert (tmp_path / "report" / "pr_curve.png").stat().st_size > 1000
    overlays = sorted(p.name for p in (tmp_path / "report" / "overlays").glob("*_overlay.png"))
    assert len(overlays) == 3 and all(f"(overlays/{o})" in text for o in overlays)
