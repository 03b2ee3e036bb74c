"""The data's identity: per-file sha256, split checksums and one `data_hash` over both.

`data_hash` covers file contents and split membership, not where the data lives, so the
same dataset in another folder has the same hash (DVC stages and MLflow tags rely on it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from gglops.core.errors import DataError
from gglops.core.files import sha256_file
from gglops.core.params import CustomLayout
from gglops.data.layouts import DatasetIndex, resolve_layout


class SplitSummary(BaseModel):
    count: int
    checksum: str  # sha256 of the sorted stems, one per line


class DataManifest(BaseModel):
    layout: str
    split: str | None
    counts: dict[str, int]
    splits: dict[str, SplitSummary]
    files: dict[str, str]  # path relative to the root (POSIX) → sha256
    data_hash: str


def _file_hash(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read for the manifest ({exc.strerror})") from None


def _split_summary(stems: list[str]) -> SplitSummary:
    text = "".join(f"{stem}\n" for stem in sorted(stems))
    return SplitSummary(count=len(stems), checksum=hashlib.sha256(text.encode()).hexdigest())


def _index_files(index: DatasetIndex) -> list[Path]:
    samples = [s for split in index.splits.values() for s in split]
    paths = {s.image for s in samples} | {s.mask for s in samples}
    return sorted({p.relative_to(index.root) for p in paths} | set(index.split_files))


def manifest_of(
    index: DatasetIndex, progress: Callable[[int, int], None] | None = None
) -> DataManifest:
    """Every file hashed; `progress(done, total)` after each one."""
    paths = _index_files(index)
    files: dict[str, str] = {}
    for done, path in enumerate(paths, start=1):
        files[path.as_posix()] = _file_hash(index.root / path)
        if progress is not None:
            progress(done, len(paths))
    splits = {
        name: _split_summary([s.stem for s in samples]) for name, samples in index.splits.items()
    }
    canonical = json.dumps(
        {"files": files, "splits": {k: v.model_dump() for k, v in splits.items()}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return DataManifest(
        layout=index.layout,
        split=index.split,
        counts={name: summary.count for name, summary in splits.items()},
        splits=splits,
        files=files,
        data_hash=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def build_manifest(
    root: Path,
    layout: str = "auto",
    split: str | None = None,
    custom: CustomLayout | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DataManifest:
    return manifest_of(resolve_layout(Path(root), layout, split, custom), progress)
