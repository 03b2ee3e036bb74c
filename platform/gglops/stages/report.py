"""`gglops report VERSION`: a reproducibility report of one registered version.

It re-evaluates the version on its recorded test split (so the numbers, the PR curve and the
overlays come from the same run), and states every convention the numbers depend on:
metric definitions, Fa denominator, nIoU's empty-image rule, threshold, the evaluation
protocol (`original` or `resized`, recorded on the version), the training resize policy, the
seed and the deterministic flag.

The content is built once as a list of `Section`s of typed blocks; report.md and report.html
are two renderings of it (a tiny hand-written renderer, no Markdown package), written beside
the PR curve, the overlays and the full data manifest (data_manifest.json).
"""

from __future__ import annotations

import html
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from gglops.core.files import atomic_path, atomic_write
from gglops.core.metrics import fa_text
from gglops.core.settings import Settings
from gglops.data.evalsplit import EvalSplit
from gglops.data.manifest import DataManifest
from gglops.model.inference import ProbFn
from gglops.stages.evaluate import EvalResult, Evaluation

N_OVERLAYS = 3
# Overlays: a window of at most CROP px around the targets, enlarged (nearest, so pixels stay
# pixels) until its shorter side reaches PANEL px: a 3-pixel target is then ~20 px wide.
CROP, PANEL = 96, 320
BOX_GAP = 4  # px between a target and its box, in the enlarged panel
RGB = tuple[int, int, int]
Window = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
TRUTH_COLOUR: RGB = (48, 220, 48)
PRED_COLOUR: RGB = (255, 48, 48)
METRICS_TITLE = "Metrics (test split)"
PR_PNG = "pr_curve.png"
MANIFEST_JSON = "data_manifest.json"

METRIC_DEFINITIONS = (
    "**mIoU**: total intersection over total union, summed over all pixels of the split.",
    "**nIoU**: the mean over images of each image's IoU; an image with neither a target nor a "
    "prediction counts 0, as the literature's code does.",
    "**Pd**: target-level detection rate. True and predicted targets are 8-connected "
    "components; a true target is detected when some not-yet-matched predicted component has "
    "its centroid within 3 pixels (strictly less) of the true centroid; each predicted "
    "component matches at most once. Pd = detected targets / all true targets.",
    "**Fa**: pixels of predicted components that matched no true target, divided by all "
    "pixels of the split as evaluated: at the images' true sizes under the `original` protocol "
    "(BasicIRSTD's convention), at data.image_size² per image under `resized` (MSDA-Net's); "
    "DNANet divides by 256×256×N. Shown ×10⁻⁶ (`43.12e-6`).",
    "Threshold 0.5 on the output probabilities.",
)

# How test images were evaluated, by protocol (`data.eval_protocol`; {size}: data.image_size).
EVAL_POLICY = {
    "original": "**Evaluation** (`data.eval_protocol = original`): images are evaluated at their "
    "**original resolution**: each image is zero-padded at the bottom/right to a multiple of 32, "
    "predicted, and the prediction is cropped back before the metrics are computed. No resizing.",
    "resized": "**Evaluation** (`data.eval_protocol = resized`, the GGL-Net authors' protocol): "
    "each test image **and its mask** are resized to {size}×{size} before prediction, and the "
    "metrics are computed at that size, so Fa divides by {size}×{size} pixels per image, as "
    "the authors' MSDA-Net test code does.",
}

# How training fitted images to data.image_size (params `data.fit`).
TRAIN_FIT = {
    "resize": "each image and mask bilinearly resized to {size}×{size} (the mask re-binarised "
    "at 0.5), as the reference recipe does",
    "pad": "each image zero-padded at the bottom/right up to {size} px, then a random "
    "{size}×{size} crop; no rescaling",
    "crop": "one random data.patch_size² patch per image and epoch at native scale "
    "(zero-padded where the image is smaller), on a target with probability "
    "data.crop_target_p; no rescaling",
}

DETERMINISM = {
    "True": "on: with the same seed and data, two CPU runs give identical metrics (checked by "
    "tests/stages/test_train.py::test_same_seed_gives_identical_metrics)",
    "False": "off: the seed fixes initial weights, shuffling and augmentations, but "
    "non-deterministic kernels may change the last digits between runs",
}

# Published GGL-Net results (MSDA-Net README re-runs): IoU, nIoU, Pd, Fa×1e-6, by dataset/split.
PUBLISHED: dict[tuple[str, str | None], tuple[str, float, float, float, float]] = {
    ("nuaa-sirst", "idx_427"): ("NUAA-SIRST 341:86", 0.806, 0.783, 1.000, 4.35),
    ("nuaa-sirst", "idx_320"): ("NUAA-SIRST 224:96", 0.795, 0.768, 0.990, 7.07),
    ("nudt-sirst", None): ("NUDT-SIRST 1:1", 0.923, 0.934, 0.989, 4.44),
    ("irstd-1k", None): ("IRSTD-1k 800:201", 0.683, 0.681, 0.939, 30.37),
}
# The side the authors resized train AND test images to for those numbers (MSDA-Net
# train_MSDA_Net.py: IMAGE_SIZE = 512, "256 for NUDT-SIRST"; its test transform resizes too).
PUBLISHED_SIZE = {"nuaa-sirst": 512, "nudt-sirst": 256, "irstd-1k": 512}


@dataclass(frozen=True)
class PublishedProtocol:
    """How a published row was measured, in the four ways rows differ most."""

    source: str
    split: str
    size: str
    epochs: int
    selection: str = "test"  # the literature chooses the best epoch on the test split


MSDA_NET = {
    "nuaa-sirst": PublishedProtocol(
        "MSDA-Net repository", "idx_427, 341:86", "train and test resized to 512x512", 500
    ),
    "nudt-sirst": PublishedProtocol(
        "MSDA-Net repository", "1:1", "train and test resized to 256x256", 500
    ),
    "irstd-1k": PublishedProtocol(
        "MSDA-Net repository", "800:201", "train and test resized to 512x512", 500
    ),
}
# The PAL framework's GGL-Net row on NUAA-SIRST (github YuChuang1205/PAL): IoU, nIoU, Pd, Fa.
PAL_ROW = (
    PublishedProtocol(
        "PAL framework",
        "213:214 (not shipped with the dataset)",
        "256x256 crops; test at native size, padded to 32",
        400,
    ),
    ("NUAA-SIRST 213:214", 0.7547, 0.7593, 0.9734, 20.65),
)
# How our row compares with the published one: same protocol and size, resized elsewise, original.
COMPARABILITY = {
    "same": "Both rows use the authors' protocol (`resized`: test images and masks resized to "
    "{size}×{size}, Fa over the resized pixels) on the same split, so they are comparable.",
    "resized": "The published numbers were measured on images resized to {size}×{size}, ours to "
    "{ours}×{ours}: not strictly comparable.",
    "original": "The published numbers were measured on images **resized** to {size}×{size} by "
    "the authors' code (the `resized` protocol); ours are at original resolution (`original`), "
    "so they are not strictly comparable.",
}


class VersionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]
    params: dict[str, str]


@dataclass(frozen=True)
class Overlay:
    """One test image's panel: ground truth (green boxes) beside the prediction (red)."""

    path: Path
    stem: str
    truth: int  # targets in the ground truth
    predicted: int  # targets in the prediction


@dataclass(frozen=True)
class WrittenReport:
    markdown: Path
    html: Path
    summary: str  # the metrics section as Markdown: ours next to the published numbers


# --- the section model and its two renderings ------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline_html(text: str) -> str:
    """The inline Markdown this report uses (`code`, **bold**) as HTML, everything escaped."""
    escaped = html.escape(text, quote=False)
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", escaped))


@dataclass(frozen=True)
class Text:
    markdown: str

    def md(self) -> str:
        return self.markdown

    def html(self) -> str:
        return f"<p>{inline_html(self.markdown)}</p>"


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]

    def md(self) -> str:
        return "\n".join(f"- {item}" for item in self.items)

    def html(self) -> str:
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in self.items) + "</ul>"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def md(self) -> str:
        lines = [_md_row(self.header), "|" + "---|" * len(self.header)]
        return "\n".join(lines + [_md_row(row) for row in self.rows])

    def html(self) -> str:
        head = "".join(f"<th>{inline_html(c)}</th>" for c in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class Figure:
    src: str  # relative to the report's folder
    alt: str
    caption: str = ""

    def md(self) -> str:
        return f"![{self.alt}]({self.src}) {self.caption}".rstrip()

    def html(self) -> str:
        src, alt = html.escape(self.src), html.escape(self.alt)
        caption = f"<figcaption>{inline_html(self.caption)}</figcaption>" if self.caption else ""
        return f'<figure><img src="{src}" alt="{alt}">{caption}</figure>'


Block = Text | Bullets | Table | Figure


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts += [f"## {section.title}", *(block.md() for block in section.blocks)]
    return "\n\n".join(parts) + "\n"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
    "figure{display:inline-block;margin:.5em}img{max-width:100%}"
)


def render_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body += [block.html() for block in section.blocks]
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{HTML_STYLE}</style>"
    return (
        f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# --- gathering -------------------------------------------------------------------------------


def published_row(dataset: str, split: str | None) -> tuple[str, float, float, float, float] | None:
    key = dataset.lower()
    return PUBLISHED.get((key, split)) or PUBLISHED.get((key, None))


def _version_info(settings: Settings, ref: str) -> VersionInfo:
    from gglops.adapters.registry import ModelRegistry, resolve_version

    reg, version = resolve_version(ModelRegistry.open(settings), ref)
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


def write_report(ref: str, out: Path, settings: Settings) -> WrittenReport:
    """Write `out/report.md` and `out/report.html` (+ PR curve, overlays, data manifest) for
    `ref`: a version number, an alias or `models:/NAME@ALIAS` (see `resolve_version`)."""
    from gglops.adapters import tracking
    from gglops.adapters.registry import EVAL_ARTIFACTS, recorded_split
    from gglops.stages.evaluate import evaluate_split, prob_fn_for, result_of

    info = _version_info(settings, ref)
    data = recorded_split(info.tags, None, info.version)
    test = EvalSplit.load(data.root, data.layout, data.split, data.eval_size, data.custom)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gglops-report-") as tmp:
        uri = f"models:/{info.name}/{info.version}"
        bundle = tracking.download_model_bundle(uri, settings.mlflow_tracking_uri, Path(tmp))
        fn = prob_fn_for(bundle)
        evaluation = evaluate_split(fn, test)
        overlays = write_overlays(fn, test, out / "overlays")
    result = result_of(evaluation, test, uri)
    manifest = test.manifest
    _plot_pr(evaluation, out / PR_PNG)
    atomic_write(out / MANIFEST_JSON, manifest.model_dump_json(indent=2) + "\n")
    sections = build_sections(info, result, manifest, overlays)
    title = f"Reproducibility report: {info.name} version {info.version}"
    atomic_write(out / "report.html", render_html(title, sections))
    atomic_write(out / "report.md", render_markdown(title, sections))
    # The version's run keeps the report beside its evaluation artifacts (metrics.json, plots).
    tracking.log_artifacts(
        settings.mlflow_tracking_uri,
        info.run_id,
        [out / "report.md", out / "report.html", out / PR_PNG, out / "overlays"],
        f"{EVAL_ARTIFACTS}/report",
    )
    metrics = next(s for s in sections if s.title == METRICS_TITLE)
    return WrittenReport(out / "report.md", out / "report.html", render_markdown(title, [metrics]))


# --- overlays ----------------------------------------------------------------------------------


def target_window(truth: np.ndarray, size: int = CROP) -> Window:
    """(x0, y0, x1, y1), at most `size` px a side, centred on the ground truth's targets (the
    whole image when it is small enough or has none)."""
    h, w = truth.shape
    ys, xs = np.nonzero(truth)
    if max(h, w) <= size or ys.size == 0:
        return 0, 0, w, h
    cy, cx = (int(ys.min() + ys.max()) // 2, int(xs.min() + xs.max()) // 2)
    y0 = min(max(cy - size // 2, 0), max(h - size, 0))
    x0 = min(max(cx - size // 2, 0), max(w - size, 0))
    return x0, y0, min(x0 + size, w), min(y0 + size, h)


def _panel(image: np.ndarray, mask: np.ndarray, window: Window, colour: RGB, label: str) -> Any:
    """The window of `image`, enlarged with nearest, each component of `mask` boxed."""
    from PIL import Image, ImageDraw

    from gglops.stages.predict import target_boxes

    x0, y0, x1, y1 = window
    crop = np.clip(image[:, y0:y1, x0:x1].transpose(1, 2, 0), 0, 1)
    scale = max(1, -(-PANEL // min(crop.shape[:2])))  # ceil: the shorter side ≥ PANEL
    rgb = Image.fromarray((crop * 255).astype(np.uint8))
    rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(rgb)
    for bx0, by0, bx1, by1 in target_boxes(mask[y0:y1, x0:x1]):
        box = (bx0 * scale - BOX_GAP, by0 * scale - BOX_GAP)
        draw.rectangle((*box, (bx1 + 1) * scale + BOX_GAP, (by1 + 1) * scale + BOX_GAP),
                       outline=colour, width=2)  # fmt: skip
    draw.text((6, 4), label, fill=colour)
    return rgb


def comparison(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> Any:
    """Ground truth (left) and prediction (right) on the same enlarged window of the image."""
    from PIL import Image

    window = target_window(truth)
    left = _panel(image, truth, window, TRUTH_COLOUR, "ground truth")
    right = _panel(image, pred, window, PRED_COLOUR, "prediction")
    both = Image.new("RGB", (left.width + right.width + 8, left.height), (255, 255, 255))
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 8, 0))
    return both


def write_overlays(fn: ProbFn, test: EvalSplit, folder: Path) -> list[Overlay]:
    """`<stem>.png` panels for the first N_OVERLAYS test images that hold a target, as the
    evaluation saw them (the split's decoded images, at its protocol's resolution)."""
    from gglops.core.metrics import THRESHOLD
    from gglops.model.inference import predict_probs
    from gglops.stages.predict import target_boxes

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Overlay] = []
    for image_t, mask_t, stem in test.dataset:
        truth = mask_t.numpy().reshape(mask_t.shape[-2:]).astype(np.uint8)
        if not truth.any():
            continue
        image = image_t.numpy()
        pred = predict_probs(fn, image) > THRESHOLD
        path = folder / f"{stem}.png"
        with atomic_path(path) as tmp:
            comparison(image, truth, pred).save(tmp, format="PNG")
        written.append(Overlay(path, stem, len(target_boxes(truth)), len(target_boxes(pred))))
        if len(written) == N_OVERLAYS:
            break
    return written


# --- the sections ----------------------------------------------------------------------------


def _param(info: VersionInfo, key: str) -> str:
    return info.params.get(key, "(not recorded)")


def _kv_table(rows: list[tuple[str, str]], key: str = "item") -> Table:
    return Table((key, "value"), tuple((k, f"`{v}`") for k, v in rows))


def _lineage(info: VersionInfo) -> Section:
    keys = ("git_commit", "dataset", "params_hash", "data_hash", "onnx_uri", "onnx_sha256")
    return Section(
        "Lineage",
        (
            Text(f"Run `{info.run_id}`; aliases: {', '.join(info.aliases) or 'none'}."),
            _kv_table([(k, info.tags.get(k, "-")) for k in keys]),
        ),
    )


def _reproducibility(info: VersionInfo) -> Section:
    seed, flag = _param(info, "train.seed"), _param(info, "train.deterministic")
    commit = info.tags.get("git_commit", "(not recorded)")
    return Section(
        "Reproducibility",
        (
            Bullets(
                (
                    f"seed: `train.seed = {seed}` (each Ray worker seeds with seed + rank)",
                    f"deterministic: `train.deterministic = {flag}`; "
                    + DETERMINISM.get(flag, "not recorded"),
                    f"code: git commit `{commit}`; params: every value under Parameters below",
                )
            ),
        ),
    )


def _data(info: VersionInfo, result: EvalResult, manifest: DataManifest) -> Section:
    recorded = info.tags.get("data_hash", "(not recorded)")
    match = "matches" if recorded == manifest.data_hash else "**differs from**"
    rows = tuple((name, str(s.count), f"`{s.checksum}`") for name, s in manifest.splits.items())
    facts = (
        f"root: `{result.data_root}` (layout `{manifest.layout}`, split `{manifest.split}`)",
        f"data_hash: `{manifest.data_hash}` ({match} the hash recorded at training, `{recorded}`)",
        f"files hashed: {len(manifest.files)}; the full manifest (sha256 of every file): "
        f"`{MANIFEST_JSON}`",
    )
    return Section(
        "Data",
        (Bullets(facts), Table(("split", "images", "sha256 of sorted stems"), rows)),
    )


def _policy(info: VersionInfo, result: EvalResult) -> Section:
    fit, size = _param(info, "data.fit"), _param(info, "data.image_size")
    how = TRAIN_FIT.get(fit, "not recorded").format(size=size)
    training = f"**Training** (`data.fit = {fit}`, `data.image_size = {size}`): {how}."
    evaluation = EVAL_POLICY[result.eval_protocol].format(size=result.eval_size)
    return Section("Resize and evaluation policy", (Text(training), Text(evaluation)))


def _comparability(result: EvalResult, published_size: int) -> str:
    same = result.eval_protocol == "resized" and result.eval_size == published_size
    key = "same" if same else result.eval_protocol
    return COMPARABILITY[key].format(size=published_size, ours=result.eval_size)


def _metrics(result: EvalResult, info: VersionInfo) -> Section:
    rows = [
        (
            f"this model (v{info.version}), `{result.eval_protocol}` protocol "
            f"({result.resolution})",
            *(f"{v:.3f}" for v in (result.miou, result.niou, result.pd)),
            fa_text(result.fa),
        )
    ]
    blocks: list[Block] = [Text(f"Fa denominator: {result.fa_denominator}.")]
    dataset = info.tags.get("dataset", "").lower()
    row = published_row(dataset, result.split)
    if row is not None:
        label, miou, niou, pd, fa_e6 = row
        size = PUBLISHED_SIZE[dataset]
        rows.append(
            (
                f"GGL-Net published ({label}), `resized` protocol ({size}x{size})",
                *(f"{v:.3f}" for v in (miou, niou, pd)),
                fa_text(fa_e6 * 1e-6),
            )
        )
        blocks.append(Text(_comparability(result, size)))
        blocks.append(Text(_differences(MSDA_NET[dataset], info, result)))
    if dataset == "nuaa-sirst":
        protocol, (label, *scores) = PAL_ROW
        miou, niou, pd, fa_e6 = scores
        rows.append(
            (
                f"GGL-Net published ({label}), {protocol.source}",
                *(f"{v:.3f}" for v in (miou, niou, pd)),
                fa_text(fa_e6 * 1e-6),
            )
        )
        blocks.append(Text(_differences(protocol, info, result)))
    head = ("model", "mIoU", "nIoU", "Pd", "Fa")
    counts = Text(f"{result.n_images} test images, {result.n_targets} targets.")
    return Section(METRICS_TITLE, (Table(head, tuple(rows)), counts, *blocks))


def _differences(protocol: PublishedProtocol, info: VersionInfo, result: EvalResult) -> str:
    """One line: the published row's split, size, epochs and selection split beside ours."""
    selection = info.tags.get("data_selection") or _param(info, "data.selection")
    ours_size = (
        f"test resized to {result.eval_size}x{result.eval_size}"
        if result.eval_protocol == "resized"
        else "test at native size, padded to 32"
    )
    return (
        f"{protocol.source} vs ours: split {protocol.split} (ours: {result.split or 'default'}, "
        f"{result.n_images} test images); size: {protocol.size} (ours: {ours_size}); "
        f"{protocol.epochs} epochs (ours: {_param(info, 'train.epochs')}); best epoch chosen "
        f"on {protocol.selection} (ours: {selection})."
    )


def build_sections(
    info: VersionInfo, result: EvalResult, manifest: DataManifest, overlays: list[Overlay]
) -> list[Section]:
    figures = tuple(
        Figure(
            f"overlays/{o.path.name}",
            o.stem,
            f"`{o.stem}`: ground truth {o.truth} target(s), green; prediction {o.predicted}, red",
        )
        for o in overlays
    )
    params = _kv_table(sorted(info.params.items()), key="param")
    overlay_note = Text(
        "Test images with targets, ground truth beside the prediction, enlarged (nearest "
        f"neighbour) and cropped to at most {CROP}×{CROP} px around the targets."
    )
    return [
        _lineage(info),
        _reproducibility(info),
        _data(info, result, manifest),
        _policy(info, result),
        Section("Metric definitions", (Bullets(METRIC_DEFINITIONS),)),
        _metrics(result, info),
        Section("Precision/recall curve", (Figure(PR_PNG, "PR curve"),)),
        Section("Example overlays", (overlay_note, *figures)),
        Section("Parameters (from the training run)", (params,)),
    ]
