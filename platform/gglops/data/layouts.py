"""The five folder conventions SIRST datasets circulate in, read unchanged.

Each layout is a `LayoutSpec`: how to recognise it, which splits it offers, and how to turn
one split into train/test `Sample`s. A split entry whose files are missing still yields a
`Sample` (pointing at the expected path) so that `gglops data validate` can name it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gglops.core.errors import DataError
from gglops.data.io import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from gglops.core.params import CustomLayout, DataParams


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    layout: str
    split: str | None
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    # Split files read (relative to root): what validate reports and the manifest hashes.
    split_files: list[Path] = field(default_factory=list)
    # The layout's own validation list; empty where the split ships none.
    val: list[Sample] = field(default_factory=list)

    @property
    def splits(self) -> dict[str, list[Sample]]:
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {name: samples for name, samples in named.items() if samples or name != "val"}

    def split_file(self, name: str) -> Path:
        """The file that lists split `name` (train, val, test), or the root's `name`."""
        for path in self.split_files:
            if path.stem == name or path.stem.endswith(f"_{name}"):
                return self.root / path
        files = dict(zip(("train", "test"), self.split_files, strict=False))
        return self.root / files.get(name, Path(name))


@dataclass(frozen=True)
class LayoutSpec:
    detect: Callable[[Path], bool]
    read: Callable[[Path, str | None], DatasetIndex]


# --- helpers -------------------------------------------------------------------------------


def _files_by_stem(folder: Path) -> dict[str, Path]:
    """stem → image file in `folder`; .png wins when a stem exists with several suffixes."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir(), key=lambda p: (p.suffix.lower() != ".png", p.name)):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def _strip_suffix(entry: str) -> str:
    path = Path(entry)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else entry


# Why an entry cannot name a file under the data root: it would be joined onto images/ and
# masks/, so `..` or an absolute path reads (and the manifest hashes) files elsewhere.
_ENTRY_REFUSALS: dict[str, Callable[[str], bool]] = {
    "holds a NUL byte": lambda e: "\0" in e,
    "is an absolute path, not a stem under the data root": lambda e: Path(e).is_absolute(),
    "leaves the data root with '..'": lambda e: ".." in Path(e).parts,
}


def _check_entry(path: Path, number: int, entry: str) -> str:
    for reason, refused in _ENTRY_REFUSALS.items():
        if refused(entry):
            raise DataError(f"{path}: line {number}: split entry {entry!r} {reason}")
    return entry


def read_split_file(path: Path) -> list[str]:
    """Stems listed one per line (extension optional, blank lines and whitespace ignored).

    utf-8-sig: Windows editors start the file with a BOM, which is not part of the first stem;
    CRLF line ends are whitespace. An entry that would leave the data root is refused here,
    before any file is opened, so every command (validate, manifest, train, evaluate) does.
    """
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable split file ({exc})") from None
    entries = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    return [_strip_suffix(_check_entry(path, n, entry)) for n, entry in entries]


class _Folder:
    """Image/mask lookup in one folder pair; `mask_suffix` is appended to the image stem."""

    def __init__(self, images: Path, masks: Path, mask_suffix: str = "") -> None:
        self.images, self.masks, self.mask_suffix = images, masks, mask_suffix
        self._images = _files_by_stem(images)
        self._masks = _files_by_stem(masks)

    def sample(self, stem: str) -> Sample:
        image = self._images.get(stem, self.images / f"{stem}.png")
        mask_stem = f"{stem}{self.mask_suffix}"
        return Sample(stem, image, self._masks.get(mask_stem, self.masks / f"{mask_stem}.png"))

    def samples(self, stems: list[str]) -> list[Sample]:
        return [self.sample(stem) for stem in stems]

    def all_samples(self) -> list[Sample]:
        return self.samples(sorted(self._images))


def _choose(
    root: Path, layout: str, split: str | None, found: list[str], default: str | None
) -> str:
    if split is None:
        if default in found:
            return default
        if found:
            return found[0]
        raise DataError(f"{root}: no split of the {layout} layout found")
    if split not in found:
        offered = ", ".join(found) or "none"
        raise DataError(f"{root}: split {split!r} not found for {layout} (found: {offered})")
    return split


def _no_named_splits(layout: str) -> Callable[[Path, str | None], None]:
    def check(root: Path, split: str | None) -> None:
        if split is not None:
            raise DataError(f"{root}: the {layout} layout has no named splits (got {split!r})")

    return check


def _has_dirs(root: Path, *names: str) -> bool:
    return all((root / name).is_dir() for name in names)


# --- NUAA-SIRST original ---------------------------------------------------------------------


def _nuaa_splits(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("idx_*") if (p / "test.txt").is_file())


def _nuaa_read(root: Path, split: str | None) -> DatasetIndex:
    """idx_427 and idx_320 ship train, val, test and trainval lists: train and val are read
    apart (val chooses the model; the `test` selection protocol trains on both). A split with
    only trainval (and test) has no validation list."""
    name = _choose(root, "nuaa-sirst", split, _nuaa_splits(root), "idx_427")
    folder = _Folder(root / "images", root / "masks", "_pixels0")
    split_dir = root / name
    has_val = (split_dir / "train.txt").is_file() and (split_dir / "val.txt").is_file()
    train_file = split_dir / ("train.txt" if has_val else "trainval.txt")
    test_file = split_dir / "test.txt"
    files = [train_file, test_file] + ([split_dir / "val.txt"] if has_val else [])
    return DatasetIndex(
        root=root,
        layout="nuaa-sirst",
        split=name,
        train=folder.samples(read_split_file(train_file)),
        val=folder.samples(read_split_file(split_dir / "val.txt")) if has_val else [],
        test=folder.samples(read_split_file(test_file)),
        split_files=[f.relative_to(root) for f in files],
    )


# --- IRSTD-1k original -----------------------------------------------------------------------


def _irstd_read(root: Path, split: str | None) -> DatasetIndex:
    _no_named_splits("irstd-1k")(root, split)
    folder = _Folder(root / "IRSTD1k_Img", root / "IRSTD1k_Label")
    return DatasetIndex(
        root=root,
        layout="irstd-1k",
        split=None,
        train=folder.samples(read_split_file(root / "trainval.txt")),
        test=folder.samples(read_split_file(root / "test.txt")),
        split_files=[Path("trainval.txt"), Path("test.txt")],
    )


# --- DNANet (ratio folders) ------------------------------------------------------------------

_RATIO = re.compile(r"^\d+_\d+$")


def _dnanet_splits(root: Path) -> list[str]:
    return (
        sorted(
            p.name for p in root.iterdir() if _RATIO.match(p.name) and (p / "test.txt").is_file()
        )
        if root.is_dir()
        else []
    )


def _dnanet_read(root: Path, split: str | None) -> DatasetIndex:
    name = _choose(root, "dnanet", split, _dnanet_splits(root), "50_50")
    folder = _Folder(root / "images", root / "masks")
    files = [Path(name) / "train.txt", Path(name) / "test.txt"]
    return DatasetIndex(
        root=root,
        layout="dnanet",
        split=name,
        train=folder.samples(read_split_file(root / files[0])),
        test=folder.samples(read_split_file(root / files[1])),
        split_files=files,
    )


# --- BasicIRSTD (img_idx/train_<NAME>.txt) ---------------------------------------------------


def _basic_splits(root: Path) -> list[str]:
    idx = root / "img_idx"
    names = {p.stem.removeprefix("test_") for p in idx.glob("test_*.txt")}
    return sorted(n for n in names if (idx / f"train_{n}.txt").is_file())


def _basic_read(root: Path, split: str | None) -> DatasetIndex:
    name = _choose(root, "basicirstd", split, _basic_splits(root), None)
    folder = _Folder(root / "images", root / "masks")
    files = [Path("img_idx") / f"train_{name}.txt", Path("img_idx") / f"test_{name}.txt"]
    return DatasetIndex(
        root=root,
        layout="basicirstd",
        split=name,
        train=folder.samples(read_split_file(root / files[0])),
        test=folder.samples(read_split_file(root / files[1])),
        split_files=files,
    )


# --- MSDA-Net (the split is the folder) ------------------------------------------------------


def _msda_read(root: Path, split: str | None) -> DatasetIndex:
    _no_named_splits("msda-net")(root, split)

    def part(name: str) -> list[Sample]:
        return _Folder(root / name / "image", root / name / "mask").all_samples()

    return DatasetIndex(
        root=root, layout="msda-net", split=None, train=part("train"), test=part("test")
    )


# --- custom (described in params.yaml: data.custom) -------------------------------------


def read_custom(root: Path, custom: CustomLayout) -> DatasetIndex:
    """The layout that `data.custom` describes: image and mask folders, a mask suffix and
    split files, all relative to root."""
    folder = _Folder(root / custom.images, root / custom.masks, custom.mask_suffix)
    for what, path in (("images", folder.images), ("masks", folder.masks)):
        if not path.is_dir():
            raise DataError(f"{path}: data.custom.{what} folder not found")
    files = {"train": custom.train, "test": custom.test}
    if custom.val:
        files["val"] = custom.val
    read = {name: folder.samples(read_split_file(root / rel)) for name, rel in files.items()}
    return DatasetIndex(
        root=root,
        layout="custom",
        split=None,
        train=read["train"],
        val=read.get("val", []),
        test=read["test"],
        split_files=[Path(rel) for rel in files.values()],
    )


# Detection order matters: NUAA, DNANet and BasicIRSTD all have images/ + masks/ and differ
# only in their split files.
LAYOUTS: dict[str, LayoutSpec] = {
    "nuaa-sirst": LayoutSpec(
        detect=lambda r: _has_dirs(r, "images", "masks") and bool(_nuaa_splits(r)),
        read=_nuaa_read,
    ),
    "irstd-1k": LayoutSpec(
        detect=lambda r: _has_dirs(r, "IRSTD1k_Img", "IRSTD1k_Label"),
        read=_irstd_read,
    ),
    "basicirstd": LayoutSpec(
        detect=lambda r: _has_dirs(r, "images", "masks") and bool(_basic_splits(r)),
        read=_basic_read,
    ),
    "dnanet": LayoutSpec(
        detect=lambda r: _has_dirs(r, "images", "masks") and bool(_dnanet_splits(r)),
        read=_dnanet_read,
    ),
    "msda-net": LayoutSpec(
        detect=lambda r: _has_dirs(r, "train/image", "train/mask", "test/image"),
        read=_msda_read,
    ),
}


def detect_layout(root: Path) -> str:
    """The first layout whose folder convention `root` follows."""
    for name, spec in LAYOUTS.items():
        if spec.detect(root):
            return name
    known = ", ".join(LAYOUTS)
    raise DataError(f"{root}: no known dataset layout recognised (expected one of: {known})")


def resolve_layout(
    root: Path,
    layout: str = "auto",
    split: str | None = None,
    custom: CustomLayout | None = None,
) -> DatasetIndex:
    """Train/val/test samples of the dataset at `root` in `layout` ("auto" detects it;
    "custom" reads the folders and split files that `custom` names)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist")
    if layout == "custom":
        if custom is None:
            raise DataError(f"{root}: layout 'custom' needs the data.custom section")
        return read_custom(root, custom)
    name = detect_layout(root) if layout == "auto" else layout
    spec = LAYOUTS.get(name)
    if spec is None:
        raise DataError(
            f"{root}: unknown layout {layout!r} (known: auto, custom, {', '.join(LAYOUTS)})"
        )
    return spec.read(root, split or None)


def index_of(root: Path, data: DataParams) -> DatasetIndex:
    """The dataset that a params `data` section names, at `root` (which may differ from
    data.root: --data)."""
    return resolve_layout(root, data.layout, data.split, data.custom)
