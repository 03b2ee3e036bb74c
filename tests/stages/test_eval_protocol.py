"""The evaluation protocol as a named setting (`data.eval_protocol`), the params YAML that keeps
split names such as 50_50 strings, the per-dataset recipes, and `gglops report`'s version refs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.registry import calibrated_model

from gglops.core.errors import UsageError
from gglops.core.params import load_params
from gglops.data.dataset import EvalDataset
from gglops.data.layouts import resolve_layout
from gglops.model.bundle import save_bundle
from gglops.stages.evaluate import EvalResult
from gglops.stages.report import PUBLISHED_SIZE, VersionInfo, _metrics

ROOT = Path(__file__).resolve().parents[2]
# Published recipe per pipeline: image size and split (MSDA-Net train_MSDA_Net.py: 512, 256 NUDT).
RECIPES = {"nuaa-sirst": (512, "idx_427"), "nudt-sirst": (256, "50_50"), "irstd-1k": (512, None)}


# --- params YAML ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["50_50", "70_20", "1:1"])
def test_split_names_stay_strings_in_files_and_overrides(tmp_path: Path, value: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"data:\n  split: {value}\n  image_size: 1_024\n")
    params = load_params(path)
    # A string field keeps the text; an int field still parses it (pydantic reads 1_024).
    assert (params.data.split, params.data.image_size) == (value, 1024)
    assert load_params(None, [f"data.split={value}"]).data.split == value
    # Plain numbers are still numbers.
    numbers = load_params(None, ["data.image_size=64", "train.lr=0.002", "train.seed=-3"])
    assert (numbers.data.image_size, numbers.train.lr, numbers.train.seed) == (64, 0.002, -3)
    assert yaml.safe_load("split: 50_50") == {"split": 5050}  # the YAML 1.1 reading avoided


@pytest.mark.parametrize("dataset", sorted(RECIPES))
def test_pipeline_params_use_the_published_recipe(dataset: str) -> None:
    recipes = {"nuaa-sirst": "recipes/msda-net.yaml"}  # beside the PAL and laptop recipes
    params = load_params(ROOT / "pipelines" / dataset / recipes.get(dataset, "params.yaml"))
    size, split = RECIPES[dataset]
    assert params.data.dataset == dataset and params.data.split == split
    assert (params.data.image_size, params.data.eval_protocol) == (size, "resized")
    assert PUBLISHED_SIZE[dataset] == size
    assert params.data.eval_size == size and load_params(None).data.eval_size is None


# --- the protocol in data, metrics.json and the report ------------------------------------


def test_eval_dataset_resizes_image_and_mask_only_when_asked(synth_data: Path) -> None:
    sample = resolve_layout(synth_data, "nuaa-sirst", "idx_427").test[0]
    image, mask, stem = EvalDataset([sample])[0]
    assert image.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
    image, mask, _ = EvalDataset([sample], 32)[0]
    assert image.shape == (3, 32, 32) and mask.shape == (1, 32, 32) and stem == sample.stem
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


@pytest.fixture(scope="module")
def bundle(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = calibrated_model(synth_data, seed=5)
    return save_bundle(net, tmp_path_factory.mktemp("proto") / "bundle", width_mult=0.25)


def test_both_protocols_are_named_in_metrics_json(
    bundle: Path, synth_data: Path, tmp_path: Path, gglops_cli
) -> None:
    common = ["--set", "data.layout=nuaa-sirst", "--set", "data.split=idx_427"]
    (tmp_path / "params.yaml").write_text("{}\n")  # defaults: the protocol comes from --set
    found = {}
    for protocol in ("original", "resized"):
        out = tmp_path / f"{protocol}.json"
        args = ["evaluate", str(bundle), str(synth_data), "--out", str(out), *common]
        sets = ["--set", f"data.eval_protocol={protocol}", "--set", "data.image_size=32"]
        code, text = gglops_cli([*args, *sets, "--params", str(tmp_path / "params.yaml")])
        assert code == 0, text
        found[protocol] = json.loads(out.read_text())
    original, resized = found["original"], found["resized"]
    assert original["n_images"] == resized["n_images"] == 5
    # Fa's denominator: the split's pixels at 64x64 (own size) vs at data.image_size = 32.
    assert original["n_pixels"] == 5 * 64 * 64 and resized["n_pixels"] == 5 * 32 * 32
    assert original["eval_protocol"] == "original" and original["eval_size"] is None
    assert original["resolution"] == "original"
    assert original["fa_denominator"] == "all pixels at original size (BasicIRSTD)"
    assert resized["eval_protocol"] == "resized" and resized["eval_size"] == 32
    assert resized["resolution"] == "32x32"
    assert resized["fa_denominator"] == "all pixels at 32x32 per image (MSDA-Net)"
    assert original["data_hash"] == resized["data_hash"]


def _result(protocol: str, size: int | None) -> EvalResult:
    fields = {"eval_protocol": protocol, "eval_size": size}
    return EvalResult(
        miou=0.5, niou=0.4, pd=0.9, fa=1e-5, fa_per_million=10.0, n_images=2, n_targets=3,
        n_pixels=2 * 256 * 256, model="m", data_root="/d", layout="dnanet", split="50_50",
        data_hash="h", resolution=f"{size}x{size}" if size else "original", **fields,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("protocol", "size", "verdict"),
    [("resized", 256, "so they are comparable"), ("resized", 512, "ours to 512×512"),
     ("original", None, "ours are at original resolution")],
)  # fmt: skip
def test_report_names_the_protocol_next_to_the_published_row(
    protocol: str, size: int | None, verdict: str
) -> None:
    info = VersionInfo(name="gglnet", version="3", run_id="r", aliases=["candidate"],
                       tags={"dataset": "nudt-sirst"}, params={})  # fmt: skip
    text = "\n".join(block.md() for block in _metrics(_result(protocol, size), info).blocks)
    assert f"| this model (v3), `{protocol}` protocol" in text
    assert "| GGL-Net published (NUDT-SIRST 1:1), `resized` protocol (256x256) | 0.923 |" in text
    assert verdict in text


# --- gglops report VERSION: a number, an alias or a models:/ URI ---------------------------


class _FakeClient:
    """MLflow's client for two calls: versions 1-3 exist, alias candidate → 3."""

    def get_model_version_by_alias(self, name: str, alias: str) -> object:
        from mlflow.exceptions import MlflowException

        if (name, alias) != ("gglnet", "candidate"):
            raise MlflowException(f"no alias {alias}")
        return type("MV", (), {"version": 3})()

    def get_model_version(self, name: str, version: str) -> object:
        from mlflow.exceptions import MlflowException

        if name != "gglnet" or version not in {"1", "2", "3"}:
            raise MlflowException(f"no version {version}")
        return object()


@pytest.mark.parametrize(
    ("ref", "version"),
    [("2", "2"), ("candidate", "3"), ("models:/gglnet@candidate", "3"), ("models:/gglnet/1", "1")],
)
def test_report_refs_resolve_through_the_registry(ref: str, version: str) -> None:
    from gglops.adapters.registry import ModelRegistry, resolve_version

    reg = ModelRegistry(client=_FakeClient(), name="gglnet", uri="http://mlflow")
    assert resolve_version(reg, ref)[1] == version


@pytest.mark.parametrize(
    ("ref", "message"),
    [("champion", "has no alias 'champion'"), ("9", "has no version 9"),
     ("models:/other@candidate", "model other has no alias"), ("models:/gglnet", "expected")],
)  # fmt: skip
def test_unknown_report_refs_are_one_line(ref: str, message: str) -> None:
    from gglops.adapters.registry import ModelRegistry, resolve_version

    reg = ModelRegistry(client=_FakeClient(), name="gglnet", uri="http://mlflow")
    with pytest.raises(UsageError, match=message):
        resolve_version(reg, ref)


@pytest.mark.parametrize(
    ("tags", "size"),
    [({"data_eval_protocol": "resized", "data_image_size": "32"}, 32),
     ({"data_eval_protocol": "original", "data_image_size": "32"}, None),
     ({}, None)],  # registered before the protocol was a setting
)  # fmt: skip
def test_promote_and_report_evaluate_under_the_recorded_protocol(
    tags: dict[str, str], size: int | None
) -> None:
    from gglops.adapters.registry import recorded_split

    data = recorded_split({"data_root": "/data", **tags}, None, "1")
    assert data.eval_size == size


def test_sirst_report_shows_both_published_rows_and_how_each_differs() -> None:
    info = VersionInfo(name="gglnet", version="4", run_id="r", aliases=["candidate"],
                       tags={"dataset": "nuaa-sirst", "data_selection": "val"},
                       params={"train.epochs": "40"})  # fmt: skip
    result = _result("original", None).model_copy(update={"split": "idx_427", "n_images": 86})
    text = "\n".join(block.md() for block in _metrics(result, info).blocks)
    assert "| GGL-Net published (NUAA-SIRST 341:86), `resized` protocol (512x512) | 0.806 |" in text
    assert "| GGL-Net published (NUAA-SIRST 213:214), PAL framework | 0.755 | 0.759 |" in text
    assert (
        "MSDA-Net repository vs ours: split idx_427, 341:86 (ours: idx_427, 86 test images); "
        "size: train and test resized to 512x512 (ours: test at native size, padded to 32); "
        "500 epochs (ours: 40); best epoch chosen on test (ours: val)."
    ) in text
    assert "PAL framework vs ours: split 213:214" in text and "400 epochs (ours: 40)" in text
