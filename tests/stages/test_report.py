"""`gglops report VERSION`: the reproducibility report of a registered version."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers.registry import calibrated_model, logged_run
from PIL import Image
from pipeline_tools import ink_fraction, screenshot

from gglops.core.settings import load_settings
from gglops.stages.report import (
    PANEL,
    Bullets,
    Figure,
    Section,
    Table,
    Text,
    comparison,
    published_row,
    render_html,
    render_markdown,
    target_window,
)

SECTIONS = (
    "Lineage",
    "Reproducibility",
    "Data",
    "Resize and evaluation policy",
    "Metric definitions",
    "Metrics (test split)",
    "Precision/recall curve",
    "Example overlays",
    "Parameters (from the training run)",
)


def test_published_numbers_by_dataset_and_split() -> None:
    assert published_row("NUAA-SIRST", "idx_320")[1:] == (0.795, 0.768, 0.990, 7.07)
    assert published_row("irstd-1k", None)[0] == "IRSTD-1k 800:201"
    assert published_row("synthetic-sirst", "idx_427") is None


def test_markdown_and_html_render_the_same_blocks() -> None:
    sections = [
        Section("One", (Text("a `x<y` and **bold**"), Bullets(("i", "j")))),
        Section("Two", (Table(("k", "v"), (("a|b", "`1`"),)), Figure("p.png", "alt", "cap"))),
    ]
    md, page = render_markdown("T", sections), render_html("T", sections)
    assert md == (
        "# T\n\n## One\n\na `x<y` and **bold**\n\n- i\n- j\n\n## Two\n\n"
        "| k | v |\n|---|---|\n| a\\|b | `1` |\n\n![alt](p.png) cap\n"
    )
    assert "<p>a <code>x&lt;y</code> and <strong>bold</strong></p>" in page
    assert "<ul><li>i</li><li>j</li></ul>" in page and "<td>a|b</td><td><code>1</code></td>" in page
    assert '<figure><img src="p.png" alt="alt"><figcaption>cap</figcaption></figure>' in page
    assert re.findall(r"<h2>(.*?)</h2>", page) == ["One", "Two"]


@pytest.mark.integration
def test_report_of_a_registered_version(stack_env, synth_data, tmp_path, monkeypatch, gglops_cli):
    from gglops.adapters.registry import register_run
    from gglops.data.manifest import build_manifest

    name = f"gglnet-report-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GGLOPS_REGISTERED_MODEL", name)
    net = calibrated_model(synth_data, seed=3)
    run_id = logged_run(stack_env.mlflow_uri, synth_data, net, tmp_path)
    version = register_run(run_id, load_settings()).version

    code, out = gglops_cli(["report", "candidate", "--out", str(tmp_path / "report")])
    assert code == 0, out
    folder = tmp_path / "report"
    assert f"wrote {folder / 'report.md'} and {folder / 'report.html'}" in " ".join(out.split())
    text = (folder / "report.md").read_text()
    assert f"version {version}" in text.splitlines()[0]  # the alias resolved to the version
    text, page = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert re.findall(r"^## (.*)$", text, re.M) == list(SECTIONS)
    assert re.findall(r"<h2>(.*?)</h2>", page) == list(SECTIONS)

    manifest = build_manifest(synth_data, "nuaa-sirst", "idx_427")
    assert manifest.data_hash in text and manifest.data_hash in page
    for split in manifest.splits.values():  # the split checksums are the manifest's
        assert f"| {split.count} | `{split.checksum}` |" in text
        assert f"<td>{split.count}</td><td><code>{split.checksum}</code></td>" in page
    assert json.loads((folder / "data_manifest.json").read_text()) == manifest.model_dump()
    assert "matches the hash recorded" in text and run_id in text and "0" * 40 in text
    assert "`train.seed = 42`" in text and "`train.deterministic = False`; off" in text
    assert "`data.fit = resize`" in text and "resized to 256×256" in text
    assert "counts 0" in text and "original resolution" in text and "8-connected" in text
    assert "| train.lr | `0.0001` |" in text and "<td>train.lr</td>" in page
    assert "| this model (v" in text and "GGL-Net published (NUAA-SIRST 341:86)" not in text
    assert (folder / "pr_curve.png").stat().st_size > 1000 and 'src="pr_curve.png"' in page
    overlays = sorted((folder / "overlays").glob("*.png"))
    assert len(overlays) == 3 and all(f"(overlays/{o.name})" in text for o in overlays)
    assert all(f'src="overlays/{o.name}"' in page for o in overlays)
    for overlay in overlays:  # two panels, truth and prediction, each enlarged to ≥ PANEL px
        with Image.open(overlay) as img:
            assert img.height >= PANEL and img.width >= 2 * PANEL
        assert f"`{overlay.stem}`: ground truth" in text
    assert "Fa" in text and re.search(r"\| \d+\.\d\de-6 \|", text), text

    shots = Path(os.environ.get("GGLOPS_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = screenshot(folder / "report.html", shots / "report.png", size="1200,2600")
    assert ink_fraction(shot) > 0.05  # text, tables, the PR curve and the overlays drawn

    from gglops.adapters import tracking  # the run keeps the report beside its evaluation artifacts

    logged = tracking.client(stack_env.mlflow_uri).list_artifacts(run_id, "evaluation/report")
    names = {Path(f.path).name for f in logged}
    assert {"report.md", "report.html", "overlays"} <= names, names


def test_overlay_enlarges_a_window_around_the_targets() -> None:
    truth = np.zeros((512, 512), dtype=np.uint8)
    truth[300:303, 400:403] = 1  # a 3x3 target
    pred = np.zeros_like(truth, dtype=bool)
    pred[301:304, 401:404] = True
    x0, y0, x1, y1 = target_window(truth)
    assert (x1 - x0, y1 - y0) == (96, 96) and x0 <= 400 and x1 >= 403 and y0 <= 300 and y1 >= 303
    assert target_window(truth[:64, :64]) == (0, 0, 64, 64)  # small images: whole
    image = np.full((3, 512, 512), 0.2, dtype=np.float32)
    panel = np.asarray(comparison(image, truth, pred))
    assert panel.shape[0] >= PANEL and panel.shape[1] >= 2 * PANEL
    left, right = panel[:, : panel.shape[1] // 2], panel[:, panel.shape[1] // 2 :]
    green = (left[..., 1] > 200) & (left[..., 0] < 100)
    red = (right[..., 0] > 200) & (right[..., 1] < 100)
    assert green.sum() > 50 and red.sum() > 50  # each side's box drawn in its colour
