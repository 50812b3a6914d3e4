"""gsmt.engine.resolve: settings the data decides (issue 34): the training subset of annotations
without subsets, and the window length T of short videos; a setting the user chose always wins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gsmt.annotations.load import load_annotations
from gsmt.annotations.write import to_activitynet_dict
from gsmt.cli import main
from gsmt.config import decisions, load_config
from gsmt.engine.resolve import resolve_config

GRID = {"fps": 10.0, "feature_stride": 3, "feature_window": 4}


def own_videos(root: Path, n: int = 6, seconds: float = 33.0, dim: int = 16) -> Path:
    """A data folder as `gsmt extract --annotations labels.csv` writes it from a CSV
    `video,start,end,label` without a subset column: every video in the subset `all`; 30-s clips
    of 109 snippets."""
    rng = np.random.default_rng(0)
    (root / "features").mkdir(parents=True)
    rows = ["video,start,end,label"]
    for i in range(n):
        vid = f"clip{i}"
        count = int((seconds * GRID["fps"] - GRID["feature_window"]) // GRID["feature_stride"]) + 1
        feats = rng.normal(size=(count, dim)).astype(np.float32)
        for s, k in zip(np.sort(rng.uniform(0, seconds - 6, 3)), rng.integers(0, 2, 3)):
            a, b = int(s * GRID["fps"] / GRID["feature_stride"]), int((s + 4) * GRID["fps"] / GRID["feature_stride"])
            feats[a:b, k] += 3.0
            rows.append(f"{vid},{s:.3f},{s + 4:.3f},{['Jump', 'Throw'][int(k)]}")
        np.save(root / "features" / f"{vid}.npy", feats)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    labels = load_annotations(root / "labels.csv", video_info={f"clip{i}": seconds for i in range(n)})
    obj = to_activitynet_dict(labels)
    for entry in obj["database"].values():
        entry.update(GRID)  # what gsmt extract adds to each video
    (root / "annotations.json").write_text(json.dumps({**obj, "gsmt": {"grid": GRID}}))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return own_videos(tmp_path_factory.mktemp("own") / "data")


def test_one_subset_trains_every_video_and_fits_T(data, capsys):
    ann = load_annotations(data / "annotations.json")
    assert ann.subsets == ["all"]
    cfg = resolve_config(load_config("thumos"), ann)
    assert (cfg.data.train_subset, cfg.data.eval_subset) == ("all", "all")
    assert (cfg.data.T, cfg.data.window_stride) == (64, 32)  # median 109 snippets: 64 <= 109 < 128
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 3 and all(line.startswith("decided from the data: ") for line in said)
    assert "data.train_subset=all" in said[0] and "all 6 videos train" in said[0]
    assert "data.T=64, data.window_stride=32" in said[2] and "median of 109 snippets" in said[2]
    assert decisions(cfg) == [line.removeprefix("decided from the data: ") for line in said]


def test_what_the_user_chose_wins(data, capsys):
    ann = load_annotations(data / "annotations.json")
    cfg = resolve_config(load_config("thumos", ["data.T=256"]), ann)
    assert (cfg.data.T, cfg.data.window_stride) == (256, 128) and cfg.data.train_subset == "all"
    cfg = resolve_config(load_config("thumos", ["data.window_stride=16"]), ann)
    assert (cfg.data.T, cfg.data.window_stride) == (64, 16)
    cfg = resolve_config(load_config("thumos", ["data.train_subset=validation"]), ann)
    assert cfg.data.train_subset == "validation" and cfg.data.T == 256  # no videos there to fit T to
    capsys.readouterr()
    # a Config whose chosen keys are unknown (built in Python, from a checkpoint): nothing decided
    import dataclasses

    cfg = resolve_config(dataclasses.replace(load_config("thumos")), ann)
    assert (cfg.data.train_subset, cfg.data.T) == ("validation", 256) and decisions(cfg) == []
    assert capsys.readouterr().out == ""


def test_T_is_a_power_of_two_at_least_16_and_only_shrinks(tmp_path):
    short = load_annotations(own_videos(tmp_path / "short", n=3, seconds=7.0) / "annotations.json")
    assert resolve_config(load_config("thumos"), short).data.T == 16  # 23 snippets: at least 16
    long = load_annotations(own_videos(tmp_path / "long", n=2, seconds=120.0) / "annotations.json")
    assert resolve_config(load_config("thumos"), long).data.T == 256  # 399 snippets: the preset's T fits
    assert resolve_config(load_config("anet"), short).data.T == load_config("anet").data.T  # resize mode


def test_several_subsets_keep_the_config(tmp_path):
    root = own_videos(tmp_path / "d", n=4)
    obj = json.loads((root / "annotations.json").read_text())
    for i, entry in enumerate(obj["database"].values()):
        entry["subset"] = ["training", "testing"][i % 2]
    (root / "annotations.json").write_text(json.dumps(obj))
    cfg = resolve_config(load_config("thumos"), load_annotations(root / "annotations.json"))
    assert cfg.data.train_subset == "validation"  # no videos there: the trainer's one-line error names it


def test_gsmt_train_thumos_on_labels_without_subsets(data, tmp_path, capsys, one_thread):
    """`gsmt train thumos` with no --set: trains on every video at an auto T, recorded in
    config.yaml; `gsmt predict` then takes the one subset of the folder."""
    run = tmp_path / "run"
    assert main(["train", "thumos", "--data", str(data), "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "decided from the data: data.train_subset=all" in out and "decided from the data: data.T=64" in out
    assert "(6 videos)" in out and "T=64" in out and "trained 30 epochs," in out
    text = (run / "config.yaml").read_text()
    assert "# decided from the data: data.T=64, data.window_stride=32" in text
    saved = yaml.safe_load(text)["data"]
    assert (saved["T"], saved["window_stride"], saved["train_subset"]) == (64, 32, "all")
    assert main(["predict", "--checkpoint", str(run), "--data", str(data), "--out", str(tmp_path / "p.json")]) == 0
    assert "for 6 videos" in capsys.readouterr().out
    code = main(["train", "thumos", "--data", str(data), "--out", str(tmp_path / "run2"), "--quiet",
                 "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "data.T=32"])
    out = capsys.readouterr().out
    assert code == 0 and "data.T=" not in out and "T=32" in out


def test_a_chosen_subset_absent_from_the_data_is_an_error(data, tmp_path, capsys):
    code = main(["train", "thumos", "--data", str(data), "--out", str(tmp_path / "r"), "--quiet",
                 "--set", "data.train_subset=validation"])
    assert code == 2 and "no videos in subset 'validation' (subsets: all)" in capsys.readouterr().err
