"""Property tests (hypothesis) of the two readers every data command goes through: split
files (`read_split_file`) and masks (`read_mask`).

Valid input is read exactly; anything else is a DataError (exit code 2) with one line that
names the file: never another exception (a traceback) and never a silently wrong result.
Derandomized and without an example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gglops.core.errors import DataError
from gglops.data.io import read_mask
from gglops.data.layouts import read_split_file

EXAMPLES = {"split_valid": 80, "split_bytes": 120, "mask_valid": 60, "mask_bytes": 60}


def fuzz(examples: int):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for all examples (each overwrites the file the previous one wrote)."""
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, data: bytes, name: str) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _one_line_naming(exc: DataError, path: Path) -> None:
    message = str(exc)
    assert exc.exit_code == 2
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message


# -- split files ---------------------------------------------------------------------------

# Stems as datasets name them: letters (any script), digits, _ - and inner spaces. No dot
# (an image suffix would be stripped), no separator, nothing that str.splitlines splits on.
_STEM_CHARS = st.characters(
    categories=("L", "Nd"), include_characters="_- ", exclude_characters="\x85\u2028\u2029"
)
stems = st.text(_STEM_CHARS, min_size=1, max_size=12).map(str.strip).filter(bool)
_PAD = st.sampled_from(["", " ", "\t", "  \t"])


@st.composite
def split_texts(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A split file as editors write them (BOM or not, LF/CRLF, blank lines, padding)."""
    entries = draw(st.lists(stems, max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for entry in entries:
        lines += [""] * draw(st.integers(0, 1))
        lines.append(f"{draw(_PAD)}{entry}{draw(_PAD)}")
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + text.encode(), entries


@fuzz(EXAMPLES["split_valid"])
@given(split_texts())
def test_a_valid_split_file_is_read_exactly(folder: Path, case: tuple[bytes, list[str]]) -> None:
    data, entries = case
    assert read_split_file(_write(folder, data, "test.txt")) == entries


@fuzz(EXAMPLES["split_bytes"])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(st.sampled_from(["a", "..", "/etc/x", "b/../../c", "\0", " ", "é"])).map(
            lambda parts: "\n".join(parts).encode()
        ),
    )
)
def test_any_split_file_is_read_safely_or_refused_in_one_line(folder: Path, data: bytes) -> None:
    path = _write(folder, data, "test.txt")
    try:
        entries = read_split_file(path)
    except DataError as exc:
        _one_line_naming(exc, path)
        return
    for entry in entries:  # what was accepted can only name a file under the data root
        assert entry and entry == entry.strip() and "\0" not in entry
        assert not Path(entry).is_absolute() and ".." not in Path(entry).parts


# -- masks ---------------------------------------------------------------------------------


def _encode(truth: np.ndarray, encoding: str, fmt: str) -> bytes:
    """`truth` (0/1) as one of the mask encodings datasets ship."""
    on = truth.astype(bool)
    images = {
        "L 0/255": lambda: Image.fromarray((on * 255).astype(np.uint8)),
        "L 0/1": lambda: Image.fromarray(on.astype(np.uint8)),
        "I;16 0/65535": lambda: Image.fromarray((on * 65535).astype(np.uint16)),
        "1-bit": lambda: Image.fromarray(on),
        "RGB white": lambda: Image.fromarray(np.stack([on * 255] * 3, -1).astype(np.uint8)),
        "RGB red": lambda: Image.fromarray(
            np.stack([on * 255, on * 0, on * 0], -1).astype(np.uint8)
        ),
        "P black background": lambda: _palette(on),
        "LA opaque": lambda: Image.fromarray(
            np.stack([on * 255, np.full(on.shape, 255)], -1).astype(np.uint8), "LA"
        ),
    }
    buffer = io.BytesIO()
    images[encoding]().save(buffer, format=fmt)
    return buffer.getvalue()


def _palette(on: np.ndarray) -> Image.Image:
    img = Image.fromarray(on.astype(np.uint8), "P")
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    return img


# Lossless formats only (a JPEG mask is not a label map); I;16 and LA are PNG/TIFF only.
_FORMATS = {"PNG": ".png", "TIFF": ".tif", "BMP": ".bmp"}
_NOT_IN_BMP = {"I;16 0/65535", "LA opaque"}
truths = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda hw: st.lists(st.booleans(), min_size=hw[0] * hw[1], max_size=hw[0] * hw[1]).map(
        lambda bits: np.array(bits, np.uint8).reshape(hw)
    )
)
MASK_ENCODINGS = (
    "L 0/255", "L 0/1", "I;16 0/65535", "1-bit", "RGB white", "RGB red", "P black background",
    "LA opaque",
)  # fmt: skip
encodings = st.sampled_from(MASK_ENCODINGS)


@fuzz(EXAMPLES["mask_valid"])
@given(truths, encodings, st.sampled_from(sorted(_FORMATS)))
def test_a_valid_mask_is_read_exactly(
    folder: Path, truth: np.ndarray, encoding: str, fmt: str
) -> None:
    if encoding in _NOT_IN_BMP and fmt == "BMP":
        fmt = "PNG"
    path = _write(folder, _encode(truth, encoding, fmt), f"mask{_FORMATS[fmt]}")
    got = read_mask(path)
    assert got.dtype == np.uint8 and got.shape == truth.shape
    assert np.array_equal(got, truth), (encoding, fmt)


@fuzz(EXAMPLES["mask_bytes"])
@given(
    st.one_of(
        st.binary(max_size=300),
        # Real images that are no label map: grey levels, or a PNG cut short.
        st.tuples(st.integers(2, 10), st.integers(2, 10), st.integers(0, 2**31 - 1)).map(
            lambda t: _grey_png(*t)
        ),
        truths.map(lambda t: _encode(t, "L 0/255", "PNG")).map(lambda b: b[: len(b) // 2]),
    )
)
def test_any_mask_file_is_read_as_a_label_or_refused_in_one_line(folder: Path, data: bytes) -> None:
    path = _write(folder, data, "mask.png")
    try:
        got = read_mask(path)
    except DataError as exc:
        _one_line_naming(exc, path)
        return
    assert got.dtype == np.uint8 and got.ndim == 2 and set(np.unique(got)) <= {0, 1}


def _grey_png(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
