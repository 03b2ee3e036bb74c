"""Public datasets `gglops data fetch` knows: where each is pinned and what it must contain.

A dataset is a Git repository at one commit. Its files are listed beside this module, one
list per dataset, generated from a byte-exact copy (`write_file_lists`):

- `<name>.sha256`: `HASH  relpath` lines (sha256sum format: `cd OUT && sha256sum -c LIST`);
- `<name>.size`: `BYTES  relpath` lines, the same paths in the same order.

Every fetched file is checked against these lists, so the lists *are* the dataset's identity:
moving the pin means regenerating them from the new commit and committing both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath

from gglops.core.errors import DataError, UsageError


@dataclass(frozen=True)
class DatasetSource:
    """A public dataset pinned to one commit of its Git repository."""

    name: str
    repo: str  # https://github.com/<owner>/<name>
    commit: str  # full 40-hex commit id
    description: str

    @property
    def raw_base(self) -> str:
        """URL base of the files at the pinned commit (each file = base + relpath)."""
        owner_repo = self.repo.removeprefix("https://github.com/")
        return f"https://raw.githubusercontent.com/{owner_repo}/{self.commit}/"

    @property
    def pin(self) -> str:
        return f"{self.name}@{self.commit[:7]}"


@dataclass(frozen=True)
class FileEntry:
    relpath: str  # POSIX, relative to the dataset root
    sha256: str
    size: int


SOURCES: dict[str, DatasetSource] = {
    "nuaa-sirst": DatasetSource(
        name="nuaa-sirst",
        repo="https://github.com/YimianDai/sirst",
        # The last commit that holds the images as loose files (later ones zip them).
        commit="ebe623cf8f7f0b113d3936f2698c3490483caf4e",
        description="SIRST / NUAA-SIRST (Dai et al., WACV 2021): 427 images, masks, boxes, splits",
    ),
}


def get_source(name: str) -> DatasetSource:
    """The registered dataset `name`; an unknown name is one line listing the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise UsageError(f"unknown dataset {name!r} (known: {known})") from None


def _safe_relpath(relpath: str, where: str) -> str:
    path = PurePosixPath(relpath)
    if not relpath or path.is_absolute() or ".." in path.parts or str(path) != relpath:
        raise DataError(f"{where}: unsafe or unnormalised path {relpath!r}")
    return relpath


def _read_pairs(name: str, suffix: str) -> list[tuple[str, str]]:
    resource = resources.files(__package__).joinpath(f"{name}.{suffix}")
    where = f"{__package__}/{name}.{suffix}"
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{where}: not found (is the package installed with its data?)") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        value, sep, relpath = line.partition("  ")
        if not sep:
            raise DataError(f"{where}:{number}: expected 'VALUE  relpath', got {line!r}")
        pairs.append((value, _safe_relpath(relpath, f"{where}:{number}")))
    return pairs


@cache
def file_list(name: str) -> tuple[FileEntry, ...]:
    """Every file of dataset `name` with its committed sha256 and size, in list order."""
    get_source(name)
    hashes, sizes = _read_pairs(name, "sha256"), _read_pairs(name, "size")
    if [p for _, p in hashes] != [p for _, p in sizes]:
        raise DataError(f"{__package__}/{name}.sha256 and .size list different paths")
    entries = []
    for (digest, relpath), (size, _) in zip(hashes, sizes, strict=True):
        if len(digest) != 64 or not size.isdigit():
            raise DataError(f"{__package__}/{name}: bad entry for {relpath}")
        entries.append(FileEntry(relpath, digest, int(size)))
    if len({e.relpath for e in entries}) != len(entries):
        raise DataError(f"{__package__}/{name}.sha256: a path is listed twice")
    return tuple(entries)


def scan(root: Path, exclude: frozenset[str] = frozenset({"SOURCE.md"})) -> list[FileEntry]:
    """Hash every file under `root` (but `exclude`, relative paths), sorted by path."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relpath = path.relative_to(root).as_posix()
        if relpath not in exclude:
            data = path.read_bytes()
            entries.append(FileEntry(relpath, hashlib.sha256(data).hexdigest(), len(data)))
    return entries


def write_file_lists(name: str, root: Path) -> list[FileEntry]:
    """Regenerate `<name>.sha256` and `<name>.size` beside this module from a copy at `root`
    (a maintainer's step when the pin moves; the copy must be the commit, byte for byte)."""
    get_source(name)
    entries = scan(root)
    here = Path(__file__).parent
    (here / f"{name}.sha256").write_text("".join(f"{e.sha256}  {e.relpath}\n" for e in entries))
    (here / f"{name}.size").write_text("".join(f"{e.size}  {e.relpath}\n" for e in entries))
    file_list.cache_clear()
    return entries
