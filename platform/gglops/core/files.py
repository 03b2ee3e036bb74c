"""Local file plumbing used everywhere: one atomic write, one file hash.

An atomic write goes to a unique temp file in the target's own directory (so the rename
stays on one filesystem), is fsynced, renamed over the target, and the directory entry is
fsynced too: after a crash a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, mode: int = 0o644) -> Iterator[Path]:
    """A temp path beside `path` for writers that take a file name (PIL, matplotlib, onnx);
    it replaces `path` when the block ends cleanly and is removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600; most outputs are not secrets
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        _fsync(path.parent)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` (str as UTF-8) to `path` atomically."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(payload)


def write_json(path: Path, payload: Any, mode: int = 0o644) -> None:
    """Indented, key-sorted JSON with a final newline, written atomically."""
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=True) + "\n", mode)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
