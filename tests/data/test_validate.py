"""`gglops data validate`: each corruption is one line naming the file; clean data exits 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gglops.data.validate import validate_dataset

GGLOPS = Path(sys.executable).parent / "gglops"


def _copy(synth_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_data, tmp_path / "data"))


def _truncate(root: Path) -> Path:
    path = root / "images/Misc_1.png"
    path.write_bytes(path.read_bytes()[:-300])
    return path


def _not_an_image(root: Path) -> Path:
    path = root / "images/Misc_2.png"
    path.write_text("<html>this is not a png</html>")
    return path


def _missing_mask(root: Path) -> Path:
    path = root / "masks/Misc_3_pixels0.png"
    path.unlink()
    return path


def _size_mismatch(root: Path) -> Path:
    path = root / "masks/Misc_4_pixels0.png"
    Image.fromarray(np.zeros((63, 64), np.uint8)).save(path)
    return path


def _entry_without_files(root: Path) -> Path:
    with (root / "idx_427/trainval.txt").open("a") as handle:
        handle.write("Ghost_7\n")
    return root / "images/Ghost_7.png"


def _duplicate_across_splits(root: Path) -> Path:
    stem = (root / "idx_427/trainval.txt").read_text().split()[0]
    with (root / "idx_427/test.txt").open("a") as handle:
        handle.write(f"{stem}\n")
    return root / "idx_427/test.txt"


def _ambiguous_mask(root: Path) -> Path:
    path = root / "masks/Misc_5_pixels0.png"  # a grey-level picture saved in place of a label
    Image.fromarray(np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)).save(path)
    return path


def _empty_split(root: Path) -> Path:
    path = root / "idx_427/test.txt"
    path.write_text("\n")
    return path


CORRUPTIONS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (_truncate, "truncated"),
    "not-an-image": (_not_an_image, "not an image"),
    "missing-mask": (_missing_mask, "missing mask"),
    "size-mismatch": (_size_mismatch, "mask is 64x63 but its image is 64x64"),
    "entry-without-files": (_entry_without_files, "no image and no mask"),
    "duplicate-across-splits": (_duplicate_across_splits, "in both train and test"),
    "empty-split": (_empty_split, "split is empty"),
    "ambiguous-mask": (_ambiguous_mask, "ambiguous mask"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_exactly_one_problem(
    synth_data: Path, tmp_path: Path, name: str, reliability
) -> None:
    corrupt, message = CORRUPTIONS[name]
    root = _copy(synth_data, tmp_path)
    path = corrupt(root)
    report = validate_dataset(root, "auto", None)
    assert [p.line() for p in report.problems] == [f"{path}: {p.message}" for p in report.problems]
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].path == path and message in report.problems[0].message
    line = report.problems[0].line().removeprefix(f"{root}/")
    reliability(f"corrupt dataset: {name}", f"exactly one problem, naming the file: {line}")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GGLOPS), "data", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reports_every_problem_and_exits_2(synth_data: Path, tmp_path: Path, reliability):
    root = _copy(synth_data, tmp_path)
    corrupt = [_truncate, _not_an_image, _missing_mask, _size_mismatch, _entry_without_files]
    paths = [c(root) for c in corrupt]
    result = _run(root, "--layout", "nuaa-sirst", "--split", "idx_427")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"{len(paths)} problem(s) in {root}"
    assert sorted(line.split(": ", 1)[0] for line in lines[:-1]) == sorted(map(str, paths))
    summary = lines[-1].replace(str(root), "ROOT")
    observed = f"exit {result.returncode}; one line per file, then '{summary}'"
    reliability("five corruptions at once (`gglops data validate`)", observed)


def test_cli_clean_set_prints_summary(synth_data: Path) -> None:
    result = _run(synth_data)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for word in ("nuaa-sirst", "idx_427", "train", "test", "64x64", "px/target"):
        assert word in result.stdout
    assert "│ 19 " in result.stdout and "│ 5 " in result.stdout  # 24 images, 80/20


# A tree read with the wrong --layout/--split: (args, the file the line names, message).
WRONG_LAYOUTS: dict[str, tuple[list[str], str, str]] = {
    "empty folder": (["--layout", "dnanet"], "", "no split of the dnanet layout found"),
    "nuaa-sirst tree read as irstd-1k": (["--layout", "irstd-1k"], "trainval.txt", "not found"),
    "unknown layout name": (["--layout", "nudt"], "", "unknown layout 'nudt'"),
    "split that does not exist": (["--split", "idx_999"], "", "split 'idx_999' not found"),
}


@pytest.mark.parametrize("case", list(WRONG_LAYOUTS))
def test_cli_wrong_layout_is_one_line(
    synth_data: Path, tmp_path: Path, case: str, reliability
) -> None:
    args, named, message = WRONG_LAYOUTS[case]
    root = tmp_path if case == "empty folder" else synth_data
    result = _run(root, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    problem, summary = result.stderr.strip().splitlines()
    assert problem.startswith(f"{root / named}: ") and message in problem, problem
    assert summary == f"1 problem(s) in {root}"
    shown = problem.replace(str(root), "ROOT")
    reliability(f"wrong layout: {case}", f"exit {result.returncode}; {shown}")


def _split_targets(root: Path, split: str) -> tuple[int, int, int, int]:
    """(images, images with targets, 8-connected targets, target pixels), counted here."""
    from scipy import ndimage

    stems = (root / f"idx_427/{split}.txt").read_text().split()
    masks = [np.asarray(Image.open(root / f"masks/{s}_pixels0.png")) > 127 for s in stems]
    counts = [ndimage.label(m, structure=np.ones((3, 3)))[1] for m in masks]
    return len(masks), sum(c > 0 for c in counts), sum(counts), int(sum(m.sum() for m in masks))


def _row(output: str, label: str) -> list[str]:
    """The per-split cells of the summary row `label`."""
    rows = [[c.strip() for c in line.strip().strip("│").split("│")] for line in output.splitlines()]
    return next(row[1:] for row in rows if row[0] == label)


def test_cli_prints_target_counts_per_split(synth_data: Path, gglops_cli) -> None:
    code, output = gglops_cli(["data", "validate", str(synth_data)])
    assert code == 0, output
    labels = ("images", "images with targets", "targets (8-connected)", "target pixels")
    shown = [_row(output, label) for label in labels]
    for column, split in enumerate(("trainval", "test")):
        assert [int(row[column]) for row in shown] == list(_split_targets(synth_data, split))
    assert "warning" not in output


def test_split_without_targets_is_a_warning_not_a_failure(
    synth_data: Path, tmp_path: Path, gglops_cli, reliability
) -> None:
    root = _copy(synth_data, tmp_path)
    for stem in (root / "idx_427/test.txt").read_text().split():
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / f"masks/{stem}_pixels0.png")
    code, output = gglops_cli(["data", "validate", str(root)])
    warning = (
        f"warning: {root}/idx_427/test.txt: the test split has no targets: its 5 masks are empty"
    )
    assert code == 0 and warning in output.splitlines(), output
    assert _row(output, "targets (8-connected)")[1] == "0"
    assert [w.line() for w in validate_dataset(root).warnings] == [
        warning.removeprefix("warning: ")
    ]
    reliability(
        "a split whose masks are all empty", f"exit {code}; {warning.replace(str(root), 'ROOT')}"
    )


def test_cli_ambiguous_mask_is_one_line_and_exit_2(
    synth_data: Path, tmp_path: Path, gglops_cli
) -> None:
    root = _copy(synth_data, tmp_path)
    path = _ambiguous_mask(root)
    code, output = gglops_cli(["data", "validate", str(root)])
    assert code == 2 and "Traceback" not in output
    problem, summary = output.strip().splitlines()
    assert problem.startswith(f"{path}: ambiguous mask: ") and "grey-level" in problem
    assert summary == f"1 problem(s) in {root}"


def test_progress_counts_every_sample_once_up_to_the_total(synth_data: Path) -> None:
    from gglops.data.manifest import build_manifest

    checked: list[tuple[int, int]] = []
    report = validate_dataset(
        synth_data, progress=lambda done, total: checked.append((done, total))
    )
    samples = sum(stats.images for stats in report.stats.values())
    assert report.ok and samples > 0
    assert checked == [(i, samples) for i in range(1, samples + 1)]
    hashed: list[tuple[int, int]] = []
    manifest = build_manifest(synth_data, progress=lambda done, total: hashed.append((done, total)))
    assert hashed == [(i, len(manifest.files)) for i in range(1, len(manifest.files) + 1)]
