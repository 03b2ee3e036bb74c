"""Model bundle save/load: round trip, DDP prefix, one-line errors naming the bad file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gglnet import GGLNet
from gglops.core.errors import UsageError
from gglops.model.bundle import META_FILE, WEIGHTS_FILE, load_bundle, save_bundle

WIDTH = 0.25


@pytest.fixture
def trained() -> GGLNet:
    """A small model whose BatchNorm running statistics are no longer the defaults."""
    torch.manual_seed(0)
    model = GGLNet(width_mult=WIDTH)
    with torch.no_grad():
        model.train()(torch.rand(2, 3, 32, 32))
    return model.eval()


def test_round_trip_gives_identical_outputs(trained: GGLNet, tmp_path: Path) -> None:
    bundle = save_bundle(trained, tmp_path / "bundle", WIDTH)
    assert sorted(p.name for p in bundle.iterdir()) == [META_FILE, WEIGHTS_FILE]
    assert json.loads((bundle / META_FILE).read_text()) == {
        "format": 1,
        "in_channels": 3,
        "width_mult": WIDTH,
    }
    loaded = load_bundle(bundle)
    assert not loaded.training
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


def test_ddp_wrapped_model_is_saved_without_prefix(trained: GGLNet, tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(trained)
        assert next(iter(wrapped.state_dict())).startswith("module.")
        bundle = save_bundle(wrapped, tmp_path / "bundle", WIDTH)
    finally:
        dist.destroy_process_group()
    keys = torch.load(bundle / WEIGHTS_FILE, weights_only=True).keys()
    assert keys == trained.state_dict().keys()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_bundle(bundle)(x), trained(x))


def test_overwrite_leaves_no_temporary_files(trained: GGLNet, tmp_path: Path) -> None:
    save_bundle(GGLNet(width_mult=0.125), tmp_path, 0.125)
    save_bundle(trained, tmp_path, WIDTH)
    assert sorted(p.name for p in tmp_path.iterdir()) == [META_FILE, WEIGHTS_FILE]
    assert load_bundle(tmp_path).width_mult == WIDTH


def test_width_must_match_the_model(trained: GGLNet, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="width_mult"):
        save_bundle(trained, tmp_path, 1.0)
    assert not any(tmp_path.iterdir())


def truncate_weights(bundle: Path) -> None:
    data = (bundle / WEIGHTS_FILE).read_bytes()
    (bundle / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "bad_file", "message"),
    [
        (lambda b: (b / WEIGHTS_FILE).write_bytes(b"\x80garbage"), WEIGHTS_FILE, "corrupt"),
        (lambda b: (b / WEIGHTS_FILE).write_bytes(b""), WEIGHTS_FILE, "corrupt"),
        (truncate_weights, WEIGHTS_FILE, "corrupt"),
        (lambda b: (b / WEIGHTS_FILE).unlink(), WEIGHTS_FILE, "missing"),
        (lambda b: (b / META_FILE).unlink(), META_FILE, "missing"),
        (lambda b: (b / META_FILE).write_text("{not json"), META_FILE, "not a valid"),
        (
            lambda b: (b / META_FILE).write_text('{"format": 2, "width_mult": 0.25}'),
            META_FILE,
            "format",
        ),
        (lambda b: (b / META_FILE).write_text('{"width_mult": 0.5}'), WEIGHTS_FILE, "does not fit"),
    ],
)
def test_bad_bundle_raises_usage_error_naming_the_file(
    trained: GGLNet, tmp_path: Path, damage, bad_file: str, message: str
) -> None:
    bundle = save_bundle(trained, tmp_path, WIDTH)
    damage(bundle)
    with pytest.raises(UsageError, match=message) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the garbage's pickle protocol
        load_bundle(bundle)
    text = str(info.value)
    assert str(bundle / bad_file) in text
    assert "\n" not in text


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        load_bundle(tmp_path / "nowhere")
