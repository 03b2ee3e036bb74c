"""`gglops data fetch`: the public NUAA-SIRST at its pinned commit, verified, all or nothing.

Sources are the local byte-exact copy (`nuaa_sirst_source`), copies of it with a file
tampered with or missing, and a real HTTP server on localhost serving a small subset.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures_cli import CliRunner
from fixtures_sirst import require_local_copy

from gglops.core.errors import DataError, UsageError
from gglops.data.fetch import fetch_dataset
from gglops.data.sources import SOURCES, file_list, get_source, scan

NAME = "nuaa-sirst"
ENTRIES = file_list(NAME)
IMAGES = [e.relpath for e in ENTRIES if e.relpath.startswith("images/")]
# A small subset with each kind of file: README, a split file, 4 images with mask and boxes.
SUBSET = ["README.md", "idx_427/test.txt"] + [
    path
    for image in IMAGES[:4]
    for path in (
        image,
        image.replace("images/", "masks/").replace(".png", "_pixels0.png"),
        image.replace("images/", "masks/").replace(".png", ".xml"),
    )
]
VICTIM = IMAGES[len(IMAGES) // 2]  # the file tampered with / removed in the full-copy tests


def copy_source(src: Path, dst: Path, relpaths: list[str]) -> Path:
    """Copy some files of a dataset (writable: the shared copy is read-only)."""
    for relpath in relpaths:
        (dst / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / relpath, dst / relpath)
    return dst


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name)


def one_line(text: str) -> str:
    assert len(text.strip().splitlines()) == 1, text
    return text.strip()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def subset_source(nuaa_sirst_source: Path, tmp_path: Path) -> Path:
    return copy_source(nuaa_sirst_source, tmp_path / "source", SUBSET)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_base(subset_source: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving `subset_source` from a thread."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(subset_source))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_committed_list_is_the_copy_exactly(nuaa_sirst_source: Path) -> None:
    assert scan(nuaa_sirst_source) == list(ENTRIES)  # every file but SOURCE.md, same bytes
    assert len(IMAGES) == 427
    spec = get_source(NAME)
    assert spec.commit == "ebe623cf8f7f0b113d3936f2698c3490483caf4e"
    assert spec.raw_base == f"https://raw.githubusercontent.com/YimianDai/sirst/{spec.commit}/"


def test_cli_fetches_the_local_copy_then_is_a_no_op(
    nuaa_sirst_source: Path, tmp_path: Path, gglops_cli: CliRunner
) -> None:
    out = tmp_path / "raw" / "nuaa-sirst"
    args = ["data", "fetch", NAME, str(out), "--source", str(nuaa_sirst_source)]
    code, text = gglops_cli(args)
    assert code == 0, text
    line = one_line(text)
    assert f"into {out} (1292 files, 10.2 MB" in line
    assert line.endswith(f"next: gglops data validate {out}")
    assert len(list((out / "images").glob("*.png"))) == 427
    assert len(list((out / "masks").glob("*_pixels0.png"))) == 427
    assert len(list((out / "masks").glob("*.xml"))) == 427
    assert sorted(p.name for p in (out / "idx_427").iterdir()) == sorted(
        p.name for p in (out / "idx_320").iterdir()
    )
    assert not (out / "SOURCE.md").exists()
    assert (out / VICTIM).read_bytes() == (nuaa_sirst_source / VICTIM).read_bytes()
    assert leftovers(out.parent) == []

    mtime = (out / VICTIM).stat().st_mtime_ns
    code, text = gglops_cli(args)
    assert code == 0, text
    assert "already fetched, verified" in one_line(text)
    assert (out / VICTIM).stat().st_mtime_ns == mtime


def test_an_interrupt_halfway_leaves_nothing_and_a_second_fetch_succeeds(
    nuaa_sirst_source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sirst"
    seen: list[int] = []

    def interrupt_halfway(done: int, total: int, relpath: str) -> None:
        seen.append(done)
        if done == total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_dataset(NAME, out, nuaa_sirst_source, progress=interrupt_halfway)
    assert seen[-1] == len(ENTRIES) // 2
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial folder either

    result = fetch_dataset(NAME, out, nuaa_sirst_source)
    assert (result.files, result.already) == (len(ENTRIES), False)
    assert len(list((out / "images").iterdir())) == 427


def test_a_missing_file_fails_naming_it_then_the_fixed_source_succeeds(
    nuaa_sirst_source: Path, subset_source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sirst"
    missing = SUBSET[-1]
    (subset_source / missing).unlink()
    with pytest.raises(DataError) as caught:
        fetch_dataset(NAME, out, subset_source, files=SUBSET)
    assert one_line(str(caught.value)) == f"{subset_source / missing}: not found"
    assert not out.exists()
    assert leftovers(tmp_path) == []

    copy_source(nuaa_sirst_source, subset_source, [missing])
    assert fetch_dataset(NAME, out, subset_source, files=SUBSET).files == len(SUBSET)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == sorted(SUBSET)


def test_a_tampered_file_exits_2_naming_it_and_writes_nothing(
    nuaa_sirst_source: Path, tmp_path: Path, gglops_cli: CliRunner
) -> None:
    source = copy_source(nuaa_sirst_source, tmp_path / "copy", [e.relpath for e in ENTRIES])
    flip_a_byte(source / VICTIM)
    out = tmp_path / "sirst"
    code, text = gglops_cli(["data", "fetch", NAME, str(out), "--source", str(source)])
    assert code == 2
    line = one_line(text)
    assert line.startswith(f"error: {source / VICTIM}: sha256 mismatch (expected ")
    assert "Traceback" not in text
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_truncated_file_is_a_size_mismatch(subset_source: Path, tmp_path: Path) -> None:
    victim = SUBSET[2]
    size = (subset_source / victim).stat().st_size
    (subset_source / victim).write_bytes((subset_source / victim).read_bytes()[:100])
    with pytest.raises(DataError) as caught:
        fetch_dataset(NAME, tmp_path / "sirst", subset_source, files=SUBSET)
    expected = f"{subset_source / victim}: size mismatch (expected {size} bytes, got 100)"
    assert one_line(str(caught.value)) == expected
    assert leftovers(tmp_path) == []


def test_download_over_http_verifies_every_file(
    nuaa_sirst_source: Path, http_base: str, tmp_path: Path
) -> None:
    out = tmp_path / "sirst"
    progress: list[tuple[int, int, str]] = []
    result = fetch_dataset(
        NAME, out, http_base, files=SUBSET, progress=lambda *a: progress.append(a)
    )
    assert (result.source, result.files, result.already) == (http_base, len(SUBSET), False)
    assert result.bytes == sum(e.size for e in ENTRIES if e.relpath in SUBSET)
    assert [p[0] for p in progress] == list(range(1, len(SUBSET) + 1))
    assert sorted(p[2] for p in progress) == sorted(SUBSET)
    for relpath in SUBSET:
        assert (out / relpath).read_bytes() == (nuaa_sirst_source / relpath).read_bytes()
    assert fetch_dataset(NAME, out, http_base, files=SUBSET).already


def test_http_404_and_tampered_download_name_the_url(
    subset_source: Path, http_base: str, tmp_path: Path
) -> None:
    out = tmp_path / "sirst"
    gone, tampered = SUBSET[3], SUBSET[4]
    (subset_source / gone).unlink()
    with pytest.raises(DataError) as caught:
        fetch_dataset(NAME, out, http_base, files=SUBSET)
    assert one_line(str(caught.value)) == f"{http_base}{gone}: download failed (HTTP 404)"
    assert not out.exists()
    assert leftovers(tmp_path) == []

    flip_a_byte(subset_source / tampered)
    with pytest.raises(DataError) as caught:
        fetch_dataset(NAME, out, http_base, files=[tampered])
    assert one_line(str(caught.value)).startswith(f"{http_base}{tampered}: sha256 mismatch")
    assert not out.exists()


def test_a_file_url_base_works(subset_source: Path, tmp_path: Path) -> None:
    result = fetch_dataset(NAME, tmp_path / "sirst", subset_source.as_uri(), files=SUBSET)
    assert result.files == len(SUBSET)


def test_an_existing_out_is_a_no_op_or_refused_and_left_untouched(
    subset_source: Path, tmp_path: Path, gglops_cli: CliRunner
) -> None:
    out = tmp_path / "sirst"
    out.mkdir()  # an empty folder is free to fill
    assert not fetch_dataset(NAME, out, subset_source, files=SUBSET).already
    assert fetch_dataset(NAME, out, subset_source, files=SUBSET).already

    flip_a_byte(out / SUBSET[2])
    edited = (out / SUBSET[2]).read_bytes()
    with pytest.raises(DataError) as caught:
        fetch_dataset(NAME, out, subset_source, files=SUBSET)
    assert one_line(str(caught.value)).startswith(f"{out}: exists but {SUBSET[2]} is not ")
    assert (out / SUBSET[2]).read_bytes() == edited

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my data")
    code, text = gglops_cli(["data", "fetch", NAME, str(mine), "--source", str(subset_source)])
    assert code == 2
    assert "left untouched" in one_line(text)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "my data"
    assert leftovers(tmp_path) == []


def test_unknown_names_and_sources_are_one_line(tmp_path: Path, gglops_cli: CliRunner) -> None:
    code, text = gglops_cli(["data", "fetch", "sirst-v9", str(tmp_path / "x")])
    assert code == 2
    assert one_line(text) == f"error: unknown dataset 'sirst-v9' (known: {', '.join(SOURCES)})"
    nowhere = tmp_path / "nowhere"
    code, text = gglops_cli(["data", "fetch", NAME, str(tmp_path / "x"), "--source", str(nowhere)])
    assert (code, one_line(text)) == (2, f"error: {nowhere}: not found")
    with pytest.raises(UsageError, match="unsupported source"):
        fetch_dataset(NAME, tmp_path / "x", "ftp://example.org/sirst/")
    with pytest.raises(UsageError, match="not a file of dataset"):
        fetch_dataset(NAME, tmp_path / "x", tmp_path, files=["images/none.png"])
    assert list(tmp_path.iterdir()) == []


def test_a_missing_local_copy_skips_but_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "shared" / "datasets" / "nuaa-sirst"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=str(absent)):
        require_local_copy(absent)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=str(absent)):
        require_local_copy(absent)
