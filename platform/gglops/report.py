"""`gglops report VERSION`: a reproducibility report of one registered version (report.md).

It re-evaluates the version on its recorded test split (so the numbers, the PR curve and the
overlays come from the same run), and states every convention the numbers depend on:
metric definitions, Fa denominator, nIoU's empty-image rule, threshold, resolution.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gglops.evaluate import EvalResult, Evaluation
from gglops.settings import Settings

N_OVERLAYS = 3
PR_PNG = "pr_curve.png"

METRIC_DEFINITIONS = """\
- **mIoU**: total intersection over total union, summed over all pixels of the split.
- **nIoU**: the mean over images of each image's IoU; an image with neither a target nor a
  prediction counts 0, as the literature's code does.
- **Pd**: target-level detection rate. True and predicted targets are 8-connected
  components; a true target is detected when some not-yet-matched predicted component has
  its centroid within 3 pixels (strictly less) of the true centroid; each predicted
  component matches at most once. Pd = detected targets / all true targets.
- **Fa**: pixels of predicted components that matched no true target, divided by all pixels
  of the split at the images' true sizes (BasicIRSTD's convention; MSDA-Net divides by
  resized sizes, DNANet by 256×256×N). Shown ×10⁻⁶.
- Threshold 0.5 on the output probabilities.
"""

EVAL_POLICY = """\
Images are evaluated at their **original resolution**: each image is zero-padded at the
bottom/right to a multiple of 16, predicted, and the prediction is cropped back before the
metrics are computed. No resizing.
"""

# Published GGL-Net results (MSDA-Net README re-runs): IoU, nIoU, Pd, Fa×1e-6, by dataset/split.
PUBLISHED: dict[tuple[str, str | None], tuple[str, float, float, float, float]] = {
    ("nuaa-sirst", "idx_427"): ("NUAA-SIRST 341:86", 0.806, 0.783, 1.000, 4.35),
    ("nuaa-sirst", "idx_320"): ("NUAA-SIRST 224:96", 0.795, 0.768, 0.990, 7.07),
    ("nudt-sirst", None): ("NUDT-SIRST 1:1", 0.923, 0.934, 0.989, 4.44),
    ("irstd-1k", None): ("IRSTD-1k 800:201", 0.683, 0.681, 0.939, 30.37),
}


class VersionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]
    params: dict[str, str]


def published_row(dataset: str, split: str | None) -> tuple[str, float, float, float, float] | None:
    key = dataset.lower()
    return PUBLISHED.get((key, split)) or PUBLISHED.get((key, None))


def _version_info(settings: Settings, version: str) -> VersionInfo:
    from gglops.registry import ModelRegistry

    reg = ModelRegistry.open(settings)
    mv = reg.version(version)
    run = reg.client.get_run(mv.run_id)
    return VersionInfo(
        name=reg.name,
        version=str(version),
        run_id=mv.run_id,
        aliases=list(mv.aliases),
        tags=dict(mv.tags),
        params=dict(run.data.params),
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _metrics_section(result: EvalResult, info: VersionInfo) -> str:
    rows = [
        [
            f"this model (v{info.version}), original resolution",
            f"{result.miou:.3f}",
            f"{result.niou:.3f}",
            f"{result.pd:.3f}",
            f"{result.fa_per_million:.2f}",
        ]
    ]
    note = ""
    row = published_row(info.tags.get("dataset", ""), result.split)
    if row is not None:
        label, *values = row
        rows.append([f"GGL-Net published ({label})", *(f"{v:g}" for v in values)])
        note = (
            "\nThe published numbers were measured on **resized** images (256 or 512 px) by the "
            "authors' code; ours are at original resolution, so they are not strictly comparable.\n"
        )
    head = ["model", "mIoU", "nIoU", "Pd", "Fa (×10⁻⁶)"]
    counts = f"\n{result.n_images} test images, {result.n_targets} targets.\n"
    return _table(head, rows) + counts + note


def _data_section(info: VersionInfo, result: EvalResult) -> str:
    from gglops.data.manifest import build_manifest

    manifest = build_manifest(Path(result.data_root), result.layout, result.split)
    recorded = info.tags.get("data_hash", "(not recorded)")
    match = "matches" if recorded == manifest.data_hash else "**differs from**"
    rows = [[name, s.count, f"`{s.checksum}`"] for name, s in manifest.splits.items()]
    return (
        f"- root: `{result.data_root}` (layout `{manifest.layout}`, split `{manifest.split}`)\n"
        f"- data_hash: `{manifest.data_hash}` ({match} the hash recorded at training, "
        f"`{recorded}`)\n- files hashed: {len(manifest.files)}\n\n"
        + _table(["split", "images", "sha256 of sorted stems"], rows)
    )


def _plot_pr(evaluation: Evaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = evaluation.pr_rows()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([r["recall"] for r in rows], [r["precision"] for r in rows], marker="o")
    ax.set(xlabel="recall (pixels)", ylabel="precision (pixels)", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("PR over thresholds 0.05–0.95")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(version: str, out: Path, settings: Settings) -> Path:
    """Write `out/report.md` (+ PR curve PNG and overlays); returns the report path."""
    from gglops.data.layouts import resolve_layout
    from gglops.evaluate import evaluate_samples, prob_fn_for, result_of
    from gglops.predict import predict_one
    from gglops.registry import recorded_split

    info = _version_info(settings, version)
    data = recorded_split(info.tags, None, version)
    index = resolve_layout(data.root, data.layout, data.split)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gglops-report-") as tmp:
        from gglops.tracking import download_model_bundle

        uri = f"models:/{info.name}/{version}"
        bundle = download_model_bundle(uri, settings.mlflow_tracking_uri, Path(tmp))
        fn = prob_fn_for(bundle)
        evaluation = evaluate_samples(fn, index.test)
        overlays = [predict_one(fn, s.image, out / "overlays") for s in _first(index.test)]
    result = result_of(evaluation, index, uri)
    _plot_pr(evaluation, out / PR_PNG)
    text = _render(info, result, overlays)
    path = out / "report.md"
    tmp_path = path.with_name(".report.md.tmp")
    tmp_path.write_text(text)
    tmp_path.replace(path)
    return path


def _first(samples: list) -> list:
    return samples[:N_OVERLAYS]


def _render(info: VersionInfo, result: EvalResult, overlays: list) -> str:
    tags = info.tags
    lineage = [[k, f"`{tags.get(k, '-')}`"] for k in ("git_commit", "dataset", "params_hash")]
    onnx = [[k, f"`{tags.get(k, '-')}`"] for k in ("onnx_uri", "onnx_sha256")]
    params = [[k, f"`{v}`"] for k, v in sorted(info.params.items())]
    images = "\n".join(
        f"![{p.image.stem}](overlays/{p.overlay.name}) ({p.targets} target(s))" for p in overlays
    )
    aliases = ", ".join(info.aliases) or "none"
    return f"""# Reproducibility report: {info.name} version {info.version}

Run `{info.run_id}`; aliases: {aliases}.

## Lineage

{_table(["item", "value"], lineage + onnx)}
## Data

{_data_section(info, result)}
## Evaluation policy

{EVAL_POLICY}
## Metric definitions

{METRIC_DEFINITIONS}
## Metrics (test split)

{_metrics_section(result, info)}
## Precision/recall curve

![PR curve]({PR_PNG})

## Example overlays

{images}

## Parameters (from the training run)

{_table(["param", "value"], params)}"""
