"""`gglops data validate`: every split entry, image and mask checked; one line per problem.

`validate_dataset` is pure (returns a `ValidationReport`, its figures as text by
`summary_rows`); the CLI renders it and picks the exit code: 0 clean (summary table with target
counts on stdout, a warning line on stderr per split without any target), 2 with problems
(stderr).
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from gglops.core.errors import DataError
from gglops.core.metrics import EIGHT_CONNECTED
from gglops.core.params import CustomLayout
from gglops.data.io import fit_mask_to_image, image_array, mask_array, open_image
from gglops.data.layouts import DatasetIndex, Sample, resolve_layout


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class PairStats:
    size: tuple[int, int]  # (W, H)
    mode: str
    target_areas: list[int]


@dataclass
class SplitStats:
    where: Path  # the split's file, which a warning about the split names
    images: int = 0
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    targets_per_image: list[int] = field(default_factory=list)
    target_areas: list[int] = field(default_factory=list)

    def add(self, pair: PairStats) -> None:
        self.images += 1
        self.sizes[pair.size] += 1
        self.modes[pair.mode] += 1
        self.targets_per_image.append(len(pair.target_areas))
        self.target_areas.extend(pair.target_areas)

    @property
    def images_with_targets(self) -> int:
        return sum(1 for n in self.targets_per_image if n)

    @property
    def target_pixels(self) -> int:
        return sum(self.target_areas)


@dataclass
class ValidationReport:
    root: Path
    layout: str | None = None
    split: str | None = None
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, SplitStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def warnings(self) -> list[Problem]:
        """A split of readable images without a single target would train or score nothing."""
        return [
            Problem(s.where, f"the {name} split has no targets: its {s.images} masks are empty")
            for name, s in self.stats.items()
            if s.images and not s.target_areas
        ]


def _open(path: Path, kind: str, problems: list[Problem]) -> Image.Image | None:
    if not path.is_file():
        problems.append(Problem(path, f"missing {kind}"))
        return None
    try:
        return open_image(path)
    except DataError as exc:
        problems.append(Problem(path, str(exc).removeprefix(f"{path}: ")))
        return None


def check_pair(sample: Sample) -> PairStats | list[Problem]:
    """Stats of one image/mask pair, or the problems that stop it from being used."""
    if not sample.image.exists() and not sample.mask.exists():
        return [Problem(sample.image, f"split entry {sample.stem!r} has no image and no mask")]
    problems: list[Problem] = []
    image = _open(sample.image, "image", problems)
    mask = _open(sample.mask, "mask", problems)
    if image is None or mask is None:
        return problems
    image_array(image)  # the conversion itself must work for every mode we accept
    try:
        binary = fit_mask_to_image(mask_array(mask), image.size[::-1], sample.mask)
    except DataError as exc:  # ambiguous, or a size no rule fits: named by its file
        return [Problem(sample.mask, str(exc).removeprefix(f"{sample.mask}: "))]
    labels, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return PairStats(size=image.size, mode=image.mode, target_areas=[int(a) for a in areas])


def _split_file(index: DatasetIndex, name: str) -> Path:
    return index.split_file(name)


def _split_problems(index: DatasetIndex) -> list[Problem]:
    problems: list[Problem] = []
    for name, samples in index.splits.items():
        where = _split_file(index, name)
        if not samples:
            problems.append(Problem(where, f"the {name} split is empty"))
        for stem, n in Counter(s.stem for s in samples).items():
            if n > 1:
                problems.append(Problem(where, f"stem {stem!r} is listed {n} times"))
    stems = {name: {s.stem for s in samples} for name, samples in index.splits.items()}
    for first, second in (("train", "test"), ("val", "test"), ("train", "val")):
        for stem in sorted(stems.get(first, set()) & stems.get(second, set())):
            problems.append(
                Problem(
                    _split_file(index, second), f"stem {stem!r} is in both {first} and {second}"
                )
            )
    return problems


def validate_index(
    index: DatasetIndex, progress: Callable[[int, int], None] | None = None
) -> ValidationReport:
    """Every pair opened and checked; `progress(done, total)` after each sample."""
    report = ValidationReport(root=index.root, layout=index.layout, split=index.split)
    report.problems.extend(_split_problems(index))
    checked: set[Path] = set()
    total, done = sum(len(samples) for samples in index.splits.values()), 0
    for name, samples in index.splits.items():
        stats = report.stats.setdefault(name, SplitStats(_split_file(index, name)))
        for sample in samples:
            done += 1
            # A stem in both splits is reported once (_split_problems), not checked twice.
            if sample.image not in checked:
                checked.add(sample.image)
                result = check_pair(sample)
                if isinstance(result, list):
                    report.problems.extend(result)
                else:
                    stats.add(result)
            if progress is not None:
                progress(done, total)
    return report


def validate_dataset(
    root: Path,
    layout: str = "auto",
    split: str | None = None,
    custom: CustomLayout | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Never raises for a dataset problem: a layout that cannot be read is a problem too."""
    try:
        index = resolve_layout(Path(root), layout, split, custom)
    except DataError as exc:
        return ValidationReport(root=Path(root), problems=[_layout_problem(exc, Path(root))])
    return validate_index(index, progress)


def _layout_problem(exc: DataError, root: Path) -> Problem:
    """The error's own path when it names one under root (a missing split file), else root."""
    head, sep, rest = str(exc).partition(": ")
    if sep and (head == str(root) or head.startswith(f"{root}{os.sep}")):
        return Problem(Path(head), rest)
    return Problem(root, str(exc))


# --- the summary's figures -----------------------------------------------------------------


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def _counter(counter: Counter, fmt: Callable[[Any], str] = str) -> str:
    return ", ".join(f"{fmt(k)} ({n})" for k, n in counter.most_common(3)) + (
        " …" if len(counter) > 3 else ""
    )


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# One row per figure, one cell per split: a table of them stays narrow however many figures.
_ROWS: dict[str, Callable[[SplitStats], str]] = {
    "images": lambda s: str(s.images),
    "images with targets": lambda s: str(s.images_with_targets),
    "targets (8-connected)": lambda s: str(len(s.target_areas)),
    "target pixels": lambda s: str(s.target_pixels),
    "targets/image min/med/max": lambda s: _spread(s.targets_per_image),
    "px/target min/med/max": lambda s: _spread(s.target_areas),
    "sizes (WxH)": lambda s: _counter(s.sizes, _size),
    "modes": lambda s: _counter(s.modes),
}


def summary_rows(report: ValidationReport) -> list[tuple[str, list[str]]]:
    """(figure, its text per split) for each summary figure, splits in the report's order."""
    splits = report.stats.values()
    return [(label, [cell(stats) for stats in splits]) for label, cell in _ROWS.items()]
