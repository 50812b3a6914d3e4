"""The Python API: `from gsmt import Localizer`, predictions equal to the command's, the README example."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gsmt.api import Detection, Localizer
from gsmt.annotations.load import load_annotations
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.resolve import open_data
from gsmt.errors import GsmtError
from gsmt.engine.predictor import predict_results

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
GRID = dict(fps=30.0, feature_stride=16, feature_window=16)  # the tiny data's grid, saved in its checkpoint


@pytest.fixture(scope="module")
def loc(tiny_run) -> Localizer:
    return Localizer.from_checkpoint(tiny_run)


@pytest.fixture(scope="module")
def validation(tiny_data):
    return load_annotations(tiny_data / "annotations.json").subset("validation")[:4]


def as_results(dets: list[Detection]) -> list[dict]:
    """The rounding of the submission JSON."""
    return [{"label": d.label, "score": round(d.score, 6), "segment": [round(d.start, 3), round(d.end, 3)]}
            for d in dets]


def test_import_gsmt_is_light_and_exports_localizer():
    code = ("import sys, gsmt; assert 'torch' not in sys.modules, 'torch imported'; "
            "from gsmt import Localizer; print(Localizer.__module__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "gsmt.api True\n"
    import gsmt

    assert gsmt.Localizer is Localizer
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        gsmt.Nope  # noqa: B018


def test_localizer_describes_its_model(loc, tiny_run):
    assert (loc.classes, loc.feature_dim) == (["action_0", "action_1", "action_2"], 24)
    assert not loc.model.training
    assert Localizer.from_checkpoint(tiny_run / "last.pt").classes == loc.classes
    with pytest.raises(GsmtError, match="checkpoint not found"):
        Localizer.from_checkpoint(tiny_run / "nope.pt")
    # A device name is checked up front, naming the argument, not left to a torch error later.
    with pytest.raises(GsmtError, match="device: must be auto, cpu"):
        Localizer.from_checkpoint(tiny_run, device="gpu7")
    assert Localizer.from_checkpoint(tiny_run, device=torch.device("cpu")).device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(GsmtError, match="CUDA was asked for"):
            Localizer.from_checkpoint(tiny_run, device="cuda")


def test_predict_equals_the_command_pipeline(loc, tiny_run, tiny_data, validation):
    model, cfg, meta = model_from_checkpoint(load_checkpoint(tiny_run))
    source = open_data(tiny_data, cfg, feature_dim=24)
    expected = predict_results(model, cfg, meta["classes"], validation, source.features, device="cpu")
    found = 0
    for video in validation:
        features = np.load(tiny_data / "features" / f"{video.id}.npy")
        dets = loc.predict(features, duration=video.duration)
        assert as_results(dets) == expected[video.id]
        found += len(dets)
    assert found > 0


def test_path_array_and_transposed_array_agree(loc, tiny_data, validation):
    path = tiny_data / "features" / f"{validation[0].id}.npy"
    features = np.load(path)
    by_path = loc.predict(path, **GRID)
    assert by_path and loc.predict(str(path)) == by_path  # the checkpoint's grid by default
    assert loc.predict(features, **GRID) == by_path
    assert loc.predict(np.ascontiguousarray(features.T), **GRID) == by_path
    assert loc.predict(features.astype(np.float64).tolist(), **GRID) == by_path

    duration = ((len(features) - 1) * 16 + 16) / 30.0
    for d in by_path:
        assert isinstance(d, Detection) and d.label in loc.classes
        assert 0.0 <= d.start <= d.end <= duration + 1e-9 and 0.0 < d.score <= 1.0
    assert [d.score for d in by_path] == sorted((d.score for d in by_path), reverse=True)
    assert [f.name for f in dataclasses.fields(Detection)] == ["start", "end", "label", "score"]


def test_predict_many_equals_predict_one_by_one(loc, tiny_data, validation):
    arrays = [np.load(tiny_data / "features" / f"{v.id}.npy") for v in validation]
    durations = [v.duration for v in validation]
    one_by_one = [loc.predict(a, duration=d) for a, d in zip(arrays, durations)]
    assert loc.predict_many(arrays, durations=durations) == one_by_one
    assert loc.predict_many(arrays, durations=durations, batch_size=1) == one_by_one


def test_bad_features_are_user_errors(loc, tiny_data, validation):
    features = np.load(tiny_data / "features" / f"{validation[0].id}.npy")
    with pytest.raises(GsmtError, match="do not fit the model's feature dimension 24"):
        loc.predict(features[:, :20], **GRID)
    bad = features.copy()
    bad[3, 5] = np.nan
    with pytest.raises(GsmtError, match="NaN/Inf"):
        loc.predict(bad, **GRID)
    window_model = Localizer(loc.model, loc.cfg, {**loc.meta, "temporal_mode": "window", "grid": {}})
    with pytest.raises(GsmtError, match="give fps, feature_stride and feature_window"):
        window_model.predict(features, duration=60.0)
    with pytest.raises(GsmtError, match="give duration= or the grid"):
        window_model.predict(features)


def test_readme_example_runs(loc, tiny_run, tiny_data, validation):
    files = [str(tiny_data / "features" / f"{v.id}.npy") for v in validation[:2]]
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "example_api.py"), str(tiny_run), *files],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "3 classes, feature dimension 24"
    first = loc.predict(np.load(files[0]), fps=30, feature_stride=8, feature_window=16)[:5]
    assert lines[1:1 + len(first)] == [f"{d.label:>12}  {d.start:7.2f} - {d.end:7.2f} s  score {d.score:.3f}"
                                       for d in first]
    assert lines[1 + len(first):] == [f"{Path(f).name}: {len(loc.predict(f))} detections" for f in files]
