"""Layout and CLI start-up guarantees of the foundation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gglops.core.errors import UsageError
from gglops.core.params import Params, load_params

ROOT = Path(__file__).resolve().parents[2]


def test_platform_dir_does_not_shadow_stdlib() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
    code = "import platform, uuid; print(platform.system(), uuid.uuid4().version)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "4"


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, json\n"
        "sys.argv = ['gglops', '--help']\n"
        "from gglops.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'onnx', 'boto3') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    result = json.loads(out.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}
    assert "train" in out.stdout and "promote" in out.stdout


def test_gglnet_never_imports_gglops() -> None:
    sources = "".join(p.read_text() for p in (ROOT / "models" / "gglnet").rglob("*.py"))
    assert "gglops" not in sources


def test_params_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  lr: -1\n")
    with pytest.raises(UsageError, match=r"params\.yaml: train\.lr"):
        load_params(bad)
    bad.write_text("train:\n  nope: 1\n")
    with pytest.raises(UsageError, match=r"train\.nope"):
        load_params(bad)
    bad.write_text("train: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_params(bad)


def test_params_overrides_and_flat_names() -> None:
    params = load_params(None, ["train.lr=0.001", "model.width_mult=0.25"])
    assert params.train.lr == 0.001
    flat = params.flat()
    assert flat["train.lr"] == 0.001 and flat["model.width_mult"] == 0.25
    assert params.digest() != Params().digest()


@pytest.mark.parametrize(
    ("fault", "argv", "needle"),
    [
        ("params file missing", ["train", "--params", "missing.yaml"], "missing.yaml"),
        ("negative lr override", ["train", "--set", "train.lr=-3"], "train.lr"),
        ("unknown params key", ["train", "--set", "train.bogus=1"], "train.bogus"),
        ("image size not /16", ["train", "--set", "data.image_size=100"], "data.image_size"),
        ("out-of-range CLI value", ["train", "--workers", "0"], "--workers"),
        ("malformed --set", ["tune", "--set", "novalue"], "section.key=value"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    fault: str, argv: list[str], needle: str, reliability
) -> None:
    assert_one_line_exit_2(argv, needle, fault, reliability)


@pytest.mark.parametrize(
    ("fault", "text", "needle"),
    [
        ("params.yaml: unknown key", "train:\n  lrate: 0.1\n", "train.lrate"),
        ("params.yaml: wrong type", "train:\n  epochs: ten\n", "train.epochs"),
        ("params.yaml: negative lr", "train:\n  lr: -0.001\n", "train.lr"),
        ("params.yaml: not YAML", "train: [\n", "not valid YAML"),
        ("params.yaml: a list, not sections", "- 1\n- 2\n", "params.yaml"),
    ],
    ids=["unknown-key", "wrong-type", "negative-lr", "not-yaml", "not-a-mapping"],
)
def test_malformed_params_file_is_one_line_exit_2(
    fault: str, text: str, needle: str, tmp_path: Path, reliability
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    line = assert_one_line_exit_2(["train", "--params", str(params)], needle, fault, reliability)
    assert str(params) in line


def assert_one_line_exit_2(argv: list[str], needle: str, fault: str, reliability) -> str:
    """`gglops ARGV` exits 2 with one stderr line holding `needle`; records the row."""
    out = subprocess.run(
        [sys.executable, "-m", "gglops", *argv], cwd=ROOT, capture_output=True, text=True
    )
    reliability(fault, f"exit {out.returncode}: {out.stderr.strip()}")
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    return out.stderr.strip()
