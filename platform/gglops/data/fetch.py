"""`gglops data fetch`: a public dataset at its pinned commit, every file verified, all or nothing.

Files come from the dataset's public raw URL base (the default), another http(s):// or
file:// URL base, or a local folder (a copy or a mirror). Each is streamed into a temporary
sibling folder of OUT while being hashed and checked against the committed lists of
`gglops.data.sources` (size and sha256); only when every file has passed is the folder
renamed onto OUT in one step. Any failure or interrupt removes the temporary folder and
leaves OUT as it was. An OUT that already holds exactly the verified files is a no-op; any
other existing OUT is refused, never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit
from urllib.request import Request, urlopen

from gglops.core.errors import DataError, UsageError
from gglops.core.files import sha256_file
from gglops.data.sources import FileEntry, file_list, get_source

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""`progress(done_files, total_files, relpath)`, called in the caller's thread after each
verified file; whatever it raises (KeyboardInterrupt too) aborts the fetch cleanly."""

CHUNK = 1 << 16
TIMEOUT_S = 30.0  # per connect and per read
WORKERS = 8  # files in flight at once (network latency, not CPU, is what they overlap)
ATTEMPTS = 3  # per URL, for errors that may pass (timeouts, resets, HTTP 429 and 5xx)
URL_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class FetchResult:
    name: str
    commit: str
    out: Path
    source: str  # the URL base or folder read
    files: int
    bytes: int
    already: bool  # OUT already held exactly the verified files: nothing was written


class _StopError(Exception):
    """Another file failed or the caller was interrupted: give up this one quietly."""


class _TransientError(DataError):
    """A download error that a retry may cure."""


def _digest_note(expected: str, got: str) -> str:
    return f"sha256 mismatch (expected {expected[:12]}…, got {got[:12]}…)"


class _DirReader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def where(self, relpath: str) -> str:
        return str(self.root / relpath)

    @contextlib.contextmanager
    def open(self, relpath: str, timeout: float) -> Iterator[BinaryIO]:
        path = self.root / relpath
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise DataError(f"{path}: not found") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        with handle:
            yield handle


class _UrlReader:
    def __init__(self, base: str) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.label = self.base

    def where(self, relpath: str) -> str:
        return self.base + quote(relpath)

    @contextlib.contextmanager
    def open(self, relpath: str, timeout: float) -> Iterator[BinaryIO]:
        from gglops import __version__

        url = self.where(relpath)
        request = Request(url, headers={"User-Agent": f"gglops/{__version__}"})
        try:
            response = urlopen(request, timeout=timeout)
        except HTTPError as exc:
            exc.close()
            kind = _TransientError if exc.code == 429 or exc.code >= 500 else DataError
            raise kind(f"{url}: download failed (HTTP {exc.code})") from None
        except URLError as exc:
            reason = exc.reason
            if isinstance(reason, FileNotFoundError):  # file:// URL
                raise DataError(f"{url}: download failed (not found)") from None
            text = getattr(reason, "strerror", None) or str(reason)
            raise _TransientError(f"{url}: download failed ({text})") from None
        except TimeoutError:
            raise _TransientError(
                f"{url}: download failed (timed out after {timeout:g} s)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _TransientError(f"{url}: download failed ({exc})") from None
        with response:
            yield response


_Reader = _DirReader | _UrlReader


def _reader(default_base: str, source: str | Path | None) -> _Reader:
    if source is None:
        return _UrlReader(default_base)
    text = str(source)
    if "://" in text:
        scheme = urlsplit(text).scheme.lower()
        if scheme not in URL_SCHEMES:
            raise UsageError(
                f"{text}: unsupported source (give a folder or an http://, https:// or "
                "file:// URL base)"
            )
        return _UrlReader(text)
    root = Path(text).expanduser()
    if not root.exists():
        raise DataError(f"{root}: not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (give a dataset folder or a URL base)")
    return _DirReader(root)


def _copy_verified(
    reader: _Reader, entry: FileEntry, dest: Path, stop: threading.Event, timeout: float
) -> None:
    """Stream one file to `dest`, hashing as it goes; DataError naming it unless it matches."""
    where = reader.where(entry.relpath)
    digest, size = hashlib.sha256(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with reader.open(entry.relpath, timeout) as src, dest.open("wb") as dst:
        while True:
            if stop.is_set():
                raise _StopError
            try:
                block = src.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                kind = _TransientError if isinstance(reader, _UrlReader) else DataError
                raise kind(f"{where}: read failed ({exc})") from None
            if not block:
                break
            size += len(block)
            if size > entry.size:
                raise DataError(f"{where}: size mismatch (expected {entry.size} bytes, got more)")
            digest.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    if size != entry.size:
        raise DataError(f"{where}: size mismatch (expected {entry.size} bytes, got {size})")
    if (got := digest.hexdigest()) != entry.sha256:
        raise DataError(f"{where}: {_digest_note(entry.sha256, got)}")
    log.debug("verified %s", entry.relpath)


def _fetch_one(
    reader: _Reader, entry: FileEntry, dest: Path, stop: threading.Event, timeout: float
) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _copy_verified(reader, entry, dest, stop, timeout)
            return
        except _TransientError as exc:
            if attempt == ATTEMPTS:
                raise DataError(f"{exc} after {ATTEMPTS} attempts") from None
            log.warning("retrying %s: %s", entry.relpath, exc)
            if stop.wait(0.5 * 2**attempt):
                raise _StopError from None


def _fetch_all(
    reader: _Reader,
    entries: list[FileEntry],
    into: Path,
    progress: ProgressFn | None,
    workers: int,
    timeout: float,
) -> None:
    """All files into `into`; on the first failure the rest stop, and that failure raises.
    Every worker has finished when this returns or raises (nothing writes into `into` after)."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gglops-fetch")
    try:
        pending: dict[Future[None], FileEntry] = {
            pool.submit(_fetch_one, reader, e, into / e.relpath, stop, timeout): e for e in entries
        }
        done_count = 0
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:  # a failed one raises here (others may be fine)
                entry = pending.pop(future)
                future.result()
                done_count += 1
                if progress is not None:
                    progress(done_count, len(entries), entry.relpath)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _refuse(out: Path, why: str) -> DataError:
    return DataError(f"{out}: {why}; left untouched (remove it or choose another folder)")


def _holds_exactly(out: Path, entries: list[FileEntry], pin: str) -> bool:
    """True if OUT holds exactly `entries`, verified; False if it is an empty folder (free to
    fill); any other OUT is refused with one line."""
    if not out.is_dir():
        raise _refuse(out, "exists and is not a folder")
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}
    if not present and not any(out.iterdir()):
        return False
    expected = {e.relpath for e in entries}
    if present != expected:
        missing, extra = sorted(expected - present), sorted(present - expected)
        parts = [f"{len(missing)} files missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(extra)} not of the dataset (e.g. {extra[0]})"] if extra else []
        raise _refuse(out, f"exists and is not {pin} ({'; '.join(parts) or 'folders only'})")
    for entry in entries:
        path = out / entry.relpath
        size = path.stat().st_size
        if size != entry.size:
            why = f"size mismatch (expected {entry.size} bytes, got {size})"
            raise _refuse(out, f"exists but {entry.relpath} is not {pin}'s: {why}")
        digest = sha256_file(path)
        if digest != entry.sha256:
            why = _digest_note(entry.sha256, digest)
            raise _refuse(out, f"exists but {entry.relpath} is not {pin}'s: {why}")
    return True


def _select(name: str, files: Iterable[str] | None) -> list[FileEntry]:
    entries = list(file_list(name))
    if files is None:
        return entries
    wanted = set(files)
    unknown = sorted(wanted - {e.relpath for e in entries})
    if unknown:
        raise UsageError(f"{unknown[0]}: not a file of dataset {name}")
    return [e for e in entries if e.relpath in wanted]


def fetch_dataset(
    name: str,
    out: Path,
    source: str | Path | None = None,
    progress: ProgressFn | None = None,
    *,
    files: Iterable[str] | None = None,
    workers: int = WORKERS,
    timeout: float = TIMEOUT_S,
) -> FetchResult:
    """Fetch dataset `name` into the new folder `out`, every file checked against the
    committed sha256 list.

    `source`: None (the public raw URL base at the pinned commit), an http(s):// or file://
    URL base, or a local folder; each file is base + its relative path. `files` restricts the
    fetch to some of the dataset's relative paths (still verified). Raises DataError or
    UsageError (one line naming the file, URL or folder); OUT then is as it was before.
    """
    spec = get_source(name)
    entries = _select(name, files)
    reader = _reader(spec.raw_base, source)
    out = Path(out)
    total = sum(e.size for e in entries)

    def result(already: bool) -> FetchResult:
        return FetchResult(
            spec.name, spec.commit, out, reader.label, len(entries), total, already=already
        )

    if (out.exists() or out.is_symlink()) and _holds_exactly(out, entries, spec.pin):
        log.debug("%s: already holds %s, verified", out, spec.pin)
        return result(already=True)

    log.debug("fetching %s (%d files) from %s into %s", spec.pin, len(entries), reader.label, out)
    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        _fetch_all(reader, entries, partial, progress, workers, timeout)
        try:
            os.replace(partial, out)  # onto an absent or empty OUT only
        except OSError as exc:
            raise DataError(
                f"{out}: cannot move the verified files into place ({exc.strerror or exc}); "
                "nothing was changed"
            ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the filesystem can
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    log.debug("fetched %s into %s in %.1f s", spec.pin, out, time.monotonic() - started)
    return result(already=False)
