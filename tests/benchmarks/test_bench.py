"""The docs/performance.md table is bench/results.json, not a hand-edited copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.run import MARK_BEGIN, MARK_END, PAGE, TABLE, load_figures, markdown_table


def test_performance_page_table_matches_results_json() -> None:
    figures = load_figures()
    assert figures, "bench/results.json is missing: run `make bench`"
    table = markdown_table(figures)
    page = PAGE.read_text()
    assert page.count(MARK_BEGIN) == 1 and page.count(MARK_END) == 1, PAGE
    block = page.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0]
    assert block.strip() == table.strip()
    assert TABLE.read_text().strip() == table.strip()
    readme = (PAGE.parents[1] / "README.md").read_text()
    assert MARK_BEGIN not in readme, "the README is a manual: measurements live on the page"


def test_every_targeted_figure_is_measured_or_says_why() -> None:
    from bench.run import FIGURES

    figures = load_figures()
    for name, figure in FIGURES.items():
        if figure.target is None:
            continue
        value = figures[name]["value"]
        assert isinstance(value, int | float) or value.startswith("not measured"), name


# --- bench.accuracy: the rules and the bookkeeping, without training ---------------------------


def _run(trainer: str, seed: int, miou: list[float]) -> Any:
    from bench.accuracy import RunResult

    curve = [
        {"epoch": i + 1, "loss": 0.5, "miou": m, "niou": m, "pd": 0.5, "fa": 1e-4}
        for i, m in enumerate(miou)
    ]
    return RunResult(trainer, seed, curve, wall_s=1.0)


def test_collapse_rule_watches_from_a_tenth_of_the_epochs() -> None:
    from bench.accuracy import collapse_from, collapsed

    assert [collapse_from(e) for e in (1, 8, 10, 11, 30)] == [1, 1, 1, 2, 3]
    assert collapsed([0.0] * 8, 8)
    assert not collapsed([0.0] * 7 + [0.06], 8)  # recovers by the last epoch
    assert not collapsed([0.06] + [0.0] * 7, 8)  # k = 1: epoch 1 counts
    assert collapsed([0.0, 0.06] + [0.01] * 28, 30)  # above only in the warm-up, then stuck
    assert not collapsed([0.0, 0.0, 0.05] + [0.0] * 27, 30)  # 0.05 reached at epoch k
    assert not collapsed([0.0] * 29 + [0.2], 30)


def test_accuracy_figures_are_registered_and_a_collapse_fails_loudly() -> None:
    from bench.accuracy import Protocol, check_collapse, figures_of
    from bench.run import FIGURES, BenchFailedError

    protocol = Protocol(epochs=3)
    runs = [
        _run("platform", 0, [0.1, 0.3, 0.4]),
        _run("baseline", 0, [0.1, 0.2, 0.2]),
        _run("platform", 1, [0.1, 0.2, 0.2]),
        _run("baseline", 1, [0.1, 0.2, 0.4]),
    ]
    figures = figures_of(runs, protocol, {"trainval": 240, "test": 60}, wall_s=10.0)
    headline = {name for name in figures if name != "accuracy_detail"}
    assert headline <= set(FIGURES)
    assert {n for n in FIGURES if n.startswith("accuracy_")} == headline
    assert figures["accuracy_miou_platform"] == pytest.approx(0.3)  # final epoch, mean of seeds
    assert figures["accuracy_platform_vs_baseline"]["value"] == pytest.approx(1.0)
    assert figures["accuracy_platform_vs_baseline"]["protocol"]["split_sizes"]["test"] == 60
    assert figures["accuracy_collapsed_runs"]["value"] == 0
    check_collapse(figures)

    runs[3] = _run("baseline", 1, [0.01, 0.04, 0.0])
    figures = figures_of(runs, protocol, {"trainval": 240, "test": 60}, wall_s=10.0)
    assert figures["accuracy_collapsed_runs"] == {"value": 1, "runs": ["baseline seed 1"]}
    with pytest.raises(BenchFailedError, match="baseline seed 1") as failed:
        check_collapse(figures)
    assert failed.value.figures is figures  # bench/run.py still saves them


def test_a_failed_bench_is_saved_then_make_bench_exits_nonzero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from bench import run

    def failing(_: bool) -> dict[str, Any]:
        raise run.BenchFailedError("collapsed", {"accuracy_collapsed_runs": 2})

    for name in ("RESULTS", "TABLE", "PAGE"):
        monkeypatch.setattr(run, name, tmp_path / name)
    (tmp_path / "PAGE").write_text(f"{run.MARK_BEGIN}\n{run.MARK_END}\n")
    monkeypatch.setattr(run, "plot_throughput", lambda _: None)
    monkeypatch.setattr(run, "BENCHES", {"accuracy": failing})
    monkeypatch.setattr("sys.argv", ["bench.run", "--only", "accuracy"])
    with pytest.raises(SystemExit, match="accuracy"):
        run.main()
    saved = json.loads((tmp_path / "RESULTS").read_text())["figures"]
    assert saved["accuracy_collapsed_runs"]["value"] == 2


def test_platform_recipe_is_valid_params(tmp_path: Path) -> None:
    from bench.accuracy import Protocol, platform_params
    from gglops.core.params import Params

    params = Params.model_validate(platform_params(Protocol(), tmp_path))
    train = params.train
    assert (train.lr, train.batch_size, train.loss, train.lr_schedule) == (
        1e-4,
        4,
        "soft_iou",
        "none",
    )
    assert (train.grad_clip, train.deterministic, params.model.width_mult) == (0.0, True, 1.0)
    assert params.train.augment.model_dump().get("p", 0.5) == 0.5
    assert (params.data.image_size, params.data.fit) == (Protocol().size, "resize")


def test_baseline_reads_the_synth_files_itself(tmp_path: Path) -> None:
    import numpy as np

    from bench.accuracy import FlipDataset, read_pair, read_split
    from gglops.data.synth import synthesize

    root = synthesize(tmp_path / "data", n=5, size=16, seed=0)
    stems = read_split(root, "trainval") + read_split(root, "test")
    assert len(stems) == 5
    image, mask = read_pair(root, stems[0])
    assert image.shape == (3, 16, 16) and mask.shape == (1, 16, 16)
    assert 0.0 <= image.min() <= image.max() <= 1.0 and set(np.unique(mask)) <= {0.0, 1.0}
    # flips move image and mask together
    marked = image.copy()
    marked[:, 0, 0] = 2.0
    corner = np.zeros_like(mask)
    corner[0, 0, 0] = 1.0
    dataset = FlipDataset([(marked, corner)], seed=1)
    for _ in range(8):
        flipped_image, flipped_mask = dataset[0]
        assert (flipped_image[0] == 2.0).nonzero().tolist() == flipped_mask[0].nonzero().tolist()


# --- bench/gpu_check.sh: without a GPU it says what it needs -----------------------------------


def test_gpu_check_without_a_gpu_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    import os
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check would run")
    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"
    env = {k: v for k, v in os.environ.items() if k != "GGLOPS_PYTHON"} | {"OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: needs a CUDA GPU"), done.stdout
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


# --- bench.seeds: the per-seed figures, without training -------------------------------------


def _seed_run(trainer: str, seed: int, miou: list[float], pos: float = 0.01) -> Any:
    from bench.seeds import RunResult

    curve = [
        {"epoch": i + 1, "loss": 0.9, "miou": m, "niou": m, "pd": 0.5, "fa": 1e-4, "pos": pos}
        for i, m in enumerate(miou)
    ]
    return RunResult(trainer, seed, curve, wall_s=1.0)


def test_seed_figures_choose_the_best_epoch_and_flag_slow_starts() -> None:
    from bench.run import FIGURES, BenchFailedError
    from bench.seeds import Setup, check_stuck, figures_of, stuck, table_text

    assert stuck([0.0, 0.0, 0.0, 0.2] + [0.3] * 26, 30)  # 0.05 first reached at epoch 4 > 3
    assert not stuck([0.0, 0.0, 0.05] + [0.3] * 27, 30)
    setup = Setup(epochs=10, seeds=(1, 2))
    runs = [
        _seed_run("platform", 1, [0.1, 0.4, 0.3] + [0.2] * 7),
        _seed_run("plain", 1, [0.1, 0.2, 0.5] + [0.4] * 7),
        _seed_run("platform", 2, [0.0, 0.01, 0.2] + [0.2] * 7, pos=0.9),
        _seed_run("plain", 2, [0.2] * 10),
    ]
    figures = figures_of(runs, setup, {"train": 102, "test": 26})
    headline = {name for name in figures if name != "seeds_detail"}
    assert headline <= set(FIGURES)
    assert figures["seeds_miou_mean_platform"] == pytest.approx(0.3)  # best epochs 0.4, 0.2
    assert figures["seeds_miou_min_plain"] == pytest.approx(0.2)
    assert figures["seeds_platform_vs_plain"] == pytest.approx(0.3 / 0.35)
    assert figures["seeds_target_px_epoch2_max_platform"] == pytest.approx(0.9)
    assert figures["seeds_stuck_runs"] == {"value": 1, "runs": ["platform seed 2"]}
    table = figures["seeds_detail"]["table"]
    assert [r["chosen_epoch"] for r in table] == [2, 3, 3, 1]
    assert "platform seed 2" not in str([r for r in table if r["collapsed"]])
    assert "chosen mIoU" in table_text(figures)
    check_stuck(figures)  # slow, not collapsed: the bench reports it and passes

    runs[3] = _seed_run("plain", 2, [0.0] * 10)
    with pytest.raises(BenchFailedError, match="plain seed 2"):
        check_stuck(figures_of(runs, setup, {"train": 102, "test": 26}))


def test_seed_platform_params_are_the_issue_recipe(tmp_path: Path) -> None:
    from bench.seeds import Setup, platform_params
    from gglops.core.params import Params

    params = Params.model_validate(platform_params(Setup(), tmp_path, seed=3))
    train, data = params.train, params.data
    assert (train.lr, train.batch_size, train.loss, train.lr_schedule, train.grad_clip) == (
        1e-4,
        4,
        "soft_iou",
        "none",
        0.0,
    )
    assert (train.seed, train.augment.p, train.epochs, params.model.width_mult) == (3, 0.5, 30, 1)
    assert (data.layout, data.image_size) == ("msda-net", 64)
    assert data.model_dump().get("selection", "test") == "test"
