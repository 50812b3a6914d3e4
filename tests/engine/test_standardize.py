"""Input standardisation (issue 34): measured by training, saved in the checkpoint, applied by every
predictor through the model; files from before it load and predict unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RUN

from gsmt.config import load_config
from gsmt.data.features import FeatureStore
from gsmt.data.standardize import feature_stats
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.resolve import open_data, split_for_selection, subset_videos
from gsmt.engine.trainer import train
from gsmt.errors import GsmtError

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(data: Path, out: Path, *overrides: str):
    cfg = load_config("demo", [*TINY_RUN, "train.epochs=1", "train.ema=0", *overrides])
    return train(cfg, data, out, progress=False)


def _affine_copy(data: Path, out: Path, scale: np.ndarray, shift: np.ndarray) -> Path:
    """The same dataset with every feature dimension scaled and shifted."""
    shutil.copytree(data, out)
    for path in (out / "features").glob("*.npy"):
        np.save(path, np.load(path) * scale + shift)
    return out


def _forward(model, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(features)["cls_logits"]


def test_the_checkpoint_holds_the_training_videos_statistics(tiny_data, tmp_path):
    run = _run(tiny_data, tmp_path / "run", "model.standardize=global", "data.val_fraction=0.1").run_dir
    state = load_checkpoint(run / "best.pt")
    cfg = load_config("demo", TINY_RUN)
    source = open_data(tiny_data, cfg)
    fit, _ = split_for_selection(subset_videos(source.annotations, "training", "data"), 0.1, cfg.train.seed)
    stats = feature_stats(FeatureStore(tiny_data / "features"), [v.id for v in fit], 24)
    assert torch.equal(state["model"]["feature_mean"], torch.as_tensor(stats.mean, dtype=torch.float32))
    assert torch.equal(state["model"]["feature_std"], torch.as_tensor(stats.scale("global"), dtype=torch.float32))
    assert float(stats.std().min()) > 0 and not np.allclose(stats.mean, 0)


def test_auto_scales_features_that_barely_vary_and_leaves_the_others(tiny_data, tmp_path, capsys):
    # tiny_data's features vary by about their own size: left as read (the identity is saved).
    kept = _run(tiny_data, tmp_path / "kept")
    assert torch.equal(kept.model.feature_std, torch.ones(24)) and torch.equal(kept.model.feature_mean, torch.zeros(24))
    # The same features as a random backbone gives them: 0.34 plus a hundredth of the variation.
    faint = _affine_copy(tiny_data, tmp_path / "faint", np.full(24, 0.01, np.float32), np.full(24, 0.34, np.float32))
    capsys.readouterr()
    scaled = _run(faint, tmp_path / "scaled")
    out = capsys.readouterr().out
    assert "decided from the data: model.standardize=global (the training features vary by" in out
    config = (scaled.run_dir / "config.yaml").read_text()
    assert "# decided from the data: model.standardize=global" in config and "standardize: global" in config
    assert "standardize: none" in (kept.run_dir / "config.yaml").read_text()
    assert float(scaled.model.feature_std[0]) < 0.01 and float(scaled.model.feature_mean.mean()) > 0.3


# `dims` undoes any scale and offset per dimension; `global` one scale for all and any offsets.
AFFINE = {"dims": np.linspace(0.01, 50.0, 24, dtype=np.float32), "global": np.full(24, 40.0, np.float32)}


@pytest.mark.parametrize("mode", ["dims", "global"])
def test_training_does_not_depend_on_the_features_scale_and_offset(tiny_data, tmp_path, mode):
    scale, shift = AFFINE[mode], np.linspace(-3.0, 300.0, 24, dtype=np.float32)
    moved = _affine_copy(tiny_data, tmp_path / "moved", scale, shift)
    x = torch.from_numpy(np.load(min((tiny_data / "features").glob("*.npy"))).T[None, :, :64].copy())
    x_moved = x * torch.from_numpy(scale)[None, :, None] + torch.from_numpy(shift)[None, :, None]
    same = [_run(d, tmp_path / name, f"model.standardize={mode}").model.eval()
            for d, name in ((tiny_data, "a"), (moved, "b"))]
    torch.testing.assert_close(_forward(same[0], x), _forward(same[1], x_moved), rtol=1e-3, atol=1e-3)
    raw = [_run(d, tmp_path / name, "model.standardize=none").model.eval()
           for d, name in ((tiny_data, "c"), (moved, "d"))]
    assert not torch.allclose(_forward(raw[0], x), _forward(raw[1], x_moved), rtol=1e-1, atol=1e-1)
    assert torch.equal(raw[0].feature_mean, torch.zeros(24)) and torch.equal(raw[0].feature_std, torch.ones(24))


def test_a_checkpoint_from_before_standardisation_predicts_unchanged(tiny_data, tmp_path):
    run = _run(tiny_data, tmp_path / "raw", "model.standardize=none").run_dir
    state = load_checkpoint(run / "best.pt")
    new, _, _ = model_from_checkpoint(state)
    old = {**state, "model": {k: v for k, v in state["model"].items() if not k.startswith("feature_")}}
    legacy, _, _ = model_from_checkpoint(old)
    x = torch.randn(2, 24, 64)
    assert torch.equal(_forward(new, x), _forward(legacy, x))


def test_a_crafted_zero_spread_is_refused_in_one_line(tiny_run):
    state = load_checkpoint(tiny_run / "best.pt")
    state["ema_model"]["feature_std"] = torch.zeros(24)
    with pytest.raises(GsmtError, match="'feature_std' must be positive"):
        model_from_checkpoint(state, "crafted.pt")
