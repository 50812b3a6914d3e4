"""The shipped presets train, predict and evaluate on this CPU as a user runs them: CI-sized data,
one epoch, the preset's own model, training and decoding otherwise untouched."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import cli, single_thread

from gsmt.config import load_config
from gsmt.synth.generate import generate

ONE_EPOCH = ["train.epochs=1", "train.device=cpu", "train.threads=1"]


def _charades_like(folder):
    """Dense multi-label timelines in the layout of Charades' JSON: 16 training and 8 testing
    videos of 30 s with 2-4 co-occurring actions of 5 classes each (Charades itself may not be
    shipped)."""
    rng = np.random.default_rng(0)
    videos = {}
    for i in range(24):
        starts = rng.uniform(0, 20, 4)
        actions = [[int(c), round(float(s), 2), round(float(s + rng.uniform(3, 10)), 2)]
                   for c, s in zip(rng.integers(0, 5, 4), starts)]
        videos[f"c{i:02d}"] = {"subset": "training" if i < 16 else "testing", "duration": 30.0, "actions": actions}
    folder.mkdir()
    (folder / "charades.json").write_text(json.dumps(videos))
    return folder / "charades.json"


# (preset, synth preset, videos, timelines): the multi-label presets on dense, co-occurring timelines
CASES = [("thumos", "thumos-like", 4, None), ("anet", "anet-like", 24, None),
         ("multithumos", "thumos-like", 4, "multithumos"), ("charades", "anet-like", 24, "charades-like")]


@pytest.mark.parametrize("preset, data_preset, videos, timelines", CASES)
def test_a_preset_trains_predicts_and_evaluates_on_the_cpu(tmp_path, capsys, preset, data_preset, videos, timelines):
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred.json"
    if timelines is None:
        generate(data, preset=data_preset, videos=videos, num_classes=3, feature_dim=16, seed=0)
    else:
        if timelines == "charades-like":
            timelines = _charades_like(tmp_path / "timelines")
        generate(data, preset=data_preset, videos=videos, timelines=timelines, feature_dim=16, seed=0)
    sets = [a for o in ONE_EPOCH for a in ("--set", o)]
    with single_thread():
        code, out, err = cli(capsys, "train", preset, "--data", data, "--out", run, "--quiet", *sets)
        assert code == 0, err
        assert " 0 videos for model selection" in out, out
        assert cli(capsys, "predict", "--checkpoint", run, "--data", data, "--out", pred, "--device", "cpu")[0] == 0
    code, out, err = cli(capsys, "eval", "--gt", data / "annotations.json", "--pred", pred,
                         "--json", tmp_path / "m.json")
    assert code == 0, err

    # The run is the preset with only the three overrides (its architecture, schedule and decoding);
    # the feature grid is the data's, read at training time.
    ran, asked = load_config(run / "config.yaml"), load_config(preset, ONE_EPOCH)
    grid = dict(fps=None, feature_stride=None, feature_window=None, window_stride=None)
    # model.standardize=auto is decided from the features (the synthetic ones are used as read).
    assert ran.model.standardize == ("none" if asked.model.standardize == "auto" else asked.model.standardize)
    model = replace(ran.model, standardize=asked.model.standardize)
    assert replace(ran, data=replace(ran.data, **grid), model=model) == asked
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    # No held-out selection videos: best.pt is the last epoch, and the weights are the average.
    assert state["best"]["metric"] == "last" and state["ema_model"] is not None
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in log if "epoch" in r and "loss" in r]
    assert len(epochs) == 1 and math.isfinite(epochs[0]["loss"])
    assert "val_mAP" not in epochs[0]

    annotations = json.loads((data / "annotations.json").read_text())["database"]
    evaluated = {v for v, a in annotations.items() if a["subset"] == load_config(preset).data.eval_subset}
    results = json.loads(pred.read_text())["results"]
    assert evaluated and set(results) == evaluated
    # A softmax over the classes and background always proposes something; a sigmoid per class
    # (`model.labels: multi`) after one epoch may find nothing above theta_c in a video.
    multi = load_config(preset).model.labels == "multi"
    assert any(results.values()) or multi
    for video, detections in results.items():
        assert detections or multi, video
        for d in detections:
            start, end = d["segment"]
            assert 0 <= start < end <= annotations[video]["duration"] + 1e-6 and 0 < d["score"] <= 1
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 <= metrics["average_mAP"] <= 1


@pytest.mark.parametrize("label_scores", ["softmax", "actionness"])
def test_the_other_multilabel_heads_train_predict_and_draw(tmp_path, capsys, label_scores):
    """`model.label_scores` softmax / actionness on the `thumos` preset: one epoch, `gsmt predict`,
    and `Localizer.raw_outputs` (what `gsmt visualize` draws) gives each class's probability [K, T]."""
    from gsmt.api import Localizer

    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred.json"
    generate(data, preset="thumos-like", videos=4, num_classes=3, feature_dim=16, seed=0)
    sets = [a for o in [*ONE_EPOCH, f"model.label_scores={label_scores}"] for a in ("--set", o)]
    with single_thread():
        code, _, err = cli(capsys, "train", "thumos", "--data", data, "--out", run, "--quiet", *sets)
        assert code == 0, err
        assert cli(capsys, "predict", "--checkpoint", run, "--data", data, "--out", pred, "--device", "cpu")[0] == 0
        localizer = Localizer.from_checkpoint(run)
        assert localizer.model.label_scores == label_scores
        video = sorted((data / "features").glob("*.npy"))[0]
        raw = localizer.raw_outputs(np.load(video), duration=json.loads((data / "annotations.json").read_text())
                                    ["database"][video.stem]["duration"])
    probs = raw["probs"]
    assert probs.shape == (3, raw["valid"].shape[0]) and probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_array_equal(raw["actionness"], probs.max(0))
    assert raw["masks"].shape == (raw["valid"].shape[0],) * 2
    for detections in json.loads(pred.read_text())["results"].values():
        assert all(0 < d["score"] <= 1 for d in detections)
