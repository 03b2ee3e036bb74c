"""`gglops.core.params.resolve`: one function, one order (file < tuned < --set < flag)."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from gglops.core.errors import UsageError
from gglops.core.params import Params, resolve

# The sources, in precedence order; each survives in a key the others leave alone.
ORDER = ("file", "tuned", "set", "flag")
OWN_KEY = {
    "file": ("train.epochs", 11),
    "tuned": ("train.weight_decay", 0.25),
    "set": ("model.width_mult", 0.5),
    "flag": ("train.workers", 3),
}
SHARED = "train.lr"  # the contested key; each source sets its own value
LR = {"file": 0.1, "tuned": 0.2, "set": 0.3, "flag": 0.4}


def _sources(tmp_path: Path, present: tuple[str, ...]) -> dict[str, Any]:
    """resolve() arguments where each source in `present` sets SHARED and its own key."""
    args: dict[str, Any] = {"params_file": None, "tuned_file": None, "sets": None, "flags": None}
    own = {name: {SHARED: LR[name], OWN_KEY[name][0]: OWN_KEY[name][1]} for name in present}
    if "file" in own:
        path = tmp_path / "params.yaml"
        path.write_text(f"train:\n  lr: {LR['file']}\n  epochs: {OWN_KEY['file'][1]}\n  seed: 5\n")
        args["params_file"] = path
    if "tuned" in own:
        path = tmp_path / "best.yaml"  # what `gglops tune` writes: flat dotted keys
        path.write_text("".join(f"{k}: {v}\n" for k, v in own["tuned"].items()))
        args["tuned_file"] = path
    if "set" in own:
        args["sets"] = [f"{k}={v}" for k, v in own["set"].items()]
    if "flag" in own:
        args["flags"] = {**own["flag"], "train.use_gpu": None}  # None: flag not given
    return args


PAIRS = list(combinations(ORDER, 2))  # all 6 (earlier, later) pairs


@pytest.mark.parametrize(("earlier", "later"), PAIRS, ids=[f"{a}<{b}" for a, b in PAIRS])
def test_later_source_wins_and_unrelated_keys_survive(
    tmp_path: Path, earlier: str, later: str
) -> None:
    flat = resolve(**_sources(tmp_path, (earlier, later))).flat()
    assert flat[SHARED] == LR[later]
    for name in (earlier, later):
        key, value = OWN_KEY[name]
        assert flat[key] == value, name
    if "file" in (earlier, later):
        assert flat["train.seed"] == 5  # a file key no later source names
    assert flat["train.use_gpu"] is False  # a flag left at None changes nothing


def test_all_four_sources_in_order(tmp_path: Path) -> None:
    flat = resolve(**_sources(tmp_path, ORDER)).flat()
    assert flat[SHARED] == LR["flag"]
    assert all(flat[key] == value for key, value in OWN_KEY.values())


def test_best_params_then_set_the_reported_bug(tmp_path: Path) -> None:
    """`gglops train --best-params best.yaml --set train.lr=0.001` trains at 0.001."""
    best = tmp_path / "best.yaml"
    best.write_text("train.lr: 0.0015\ntrain.batch_size: 8\n")
    params = resolve("params.yaml", best, ["train.lr=0.001"])
    assert params.train.lr == 0.001
    assert params.train.batch_size == 8  # the tuned file's other keys still apply


def test_nested_tuned_section_replaces_only_its_keys(tmp_path: Path) -> None:
    best = tmp_path / "best.yaml"
    best.write_text("train:\n  lr: 0.002\n")
    params = resolve(None, best, ["train.epochs=9"])
    assert (params.train.lr, params.train.epochs) == (0.002, 9)
    assert params.train.batch_size == Params().train.batch_size


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "best params file not found"),
        ("train.lr: [\n", "not valid YAML"),
        ("- 1\n", "expected a mapping of dotted keys"),
        ("train.lr: -1\n", "train.lr"),
    ],
    ids=["missing", "not-yaml", "not-a-mapping", "bad-value"],
)
def test_bad_tuned_file_is_one_line_naming_it(
    tmp_path: Path, text: str | None, needle: str
) -> None:
    best = tmp_path / "best.yaml"
    if text is not None:
        best.write_text(text)
    with pytest.raises(UsageError) as info:
        resolve(None, best)
    message = str(info.value)
    assert message.startswith(str(best)) and needle in message and "\n" not in message


def test_errors_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--set: train\.lr: "):
        resolve(None, sets=["train.lr=-1"])
    with pytest.raises(UsageError, match=r"^command-line flag: train\.workers: "):
        resolve(None, flags={"train.workers": 0})


# --- the CLI's resolution step, Ray and MLflow replaced by a stub that records the request --


def _captured_params(monkeypatch, gglops_cli, module: str, fn: str, args: list[str]) -> Params:
    import importlib

    seen: list[Any] = []

    def stub(request: Any, *_: Any, **__: Any) -> None:
        seen.append(request)
        raise UsageError("stub: not running")  # exit 2, nothing started

    monkeypatch.setattr(importlib.import_module(module), fn, stub)
    code, out = gglops_cli(args)
    assert code == 2 and "stub: not running" in out, out
    return seen[0].params


def test_cli_train_set_beats_best_params(tmp_path: Path, monkeypatch, gglops_cli) -> None:
    best = tmp_path / "best.yaml"
    best.write_text("train.lr: 0.0015\ntrain.batch_size: 8\n")
    args = ["train", "--best-params", str(best), "--set", "train.lr=0.001"]
    args += ["--set", "train.workers=5", "--workers", "2", "--data", str(tmp_path)]
    params = _captured_params(monkeypatch, gglops_cli, "gglops.stages.train", "run_training", args)
    assert (params.train.lr, params.train.batch_size) == (0.001, 8)
    assert (params.train.workers, params.data.root) == (2, str(tmp_path))


def test_cli_tune_flags_beat_set(tmp_path: Path, monkeypatch, gglops_cli) -> None:
    args = ["tune", "--set", "tune.samples=5", "--samples", "2", "--set", "train.lr=0.003"]
    params = _captured_params(monkeypatch, gglops_cli, "gglops.stages.tune", "run_tuning", args)
    assert (params.tune.samples, params.train.lr) == (2, 0.003)
