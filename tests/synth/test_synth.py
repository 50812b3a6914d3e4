"""Synthetic data: timelines that match the real statistics, rendered features, `gsmt synth`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gsmt.cli import main
from gsmt.annotations.types import Video
from gsmt.annotations.load import load_annotations
from gsmt.annotations.packaged import TIMELINES, load_blocked, timelines_path
from gsmt.synth.models.prototype import (DEFAULT_DIFFICULTY, RenderParams, make_world, render_features,
    render_latent)
from gsmt.synth.timelines import PRESETS, coverage, make_timelines, timeline_stats
from gsmt.synth.generate import generate
from gsmt.data.grid import Grid
from gsmt.errors import GsmtError

# Computed from the packaged real timelines (all subsets); test_reference_numbers re-derives them.
REAL = {
    "thumos-like": {"timelines": "thumos14", "mean_instances": 15.411622276029055,
                    "median_length": 3.0, "coverage": 0.29154476632453175, "median_duration": 155.0603401},
    "anet-like": {"timelines": "activitynet13", "mean_instances": 1.542742474916388,
                  "median_length": 26.447373905648135, "coverage": 0.6540122331530654, "median_duration": 114.7},
}


def _files(folder: Path) -> dict[str, bytes]:
    """The dataset's files (not gsmt's record of which files synth wrote, `.gsmt-outputs.json`)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".gsmt-outputs.json"}


GRID = Grid(30.0, 8, 16)


# --- timelines --------------------------------------------------------------------------------


def test_coverage_hand_computed():
    v = Video("v", "test", 10.0, segments=np.array([[1.0, 3.0], [2.0, 4.0], [6.0, 7.0], [9.0, 12.0]]),
              labels=np.zeros(4, dtype=np.int64))
    # Union inside [0, 10]: [1, 4] + [6, 7] + [9, 10] = 5 s.
    assert coverage(v) == pytest.approx(0.5)
    assert coverage(Video("e", "test", 10.0)) == 0.0


@pytest.mark.parametrize("preset", sorted(REAL))
def test_reference_numbers(preset):
    stats = timeline_stats(load_annotations(timelines_path(REAL[preset]["timelines"])).videos)
    for key in ("mean_instances", "median_length", "coverage", "median_duration"):
        assert stats[key] == pytest.approx(REAL[preset][key], rel=1e-12)


@pytest.mark.parametrize("preset", sorted(REAL))
def test_preset_timelines_match_real_statistics(preset):
    videos, _ = make_timelines(preset, 2000, np.random.default_rng(11))
    stats, real = timeline_stats(videos), REAL[preset]
    assert stats["mean_instances"] == pytest.approx(real["mean_instances"], rel=0.15)
    assert stats["median_length"] == pytest.approx(real["median_length"], rel=0.15)
    assert abs(stats["coverage"] - real["coverage"]) < 0.03
    assert stats["median_duration"] == pytest.approx(real["median_duration"], rel=0.15)
    # 200 videos (the default size) stay within the tolerances too.
    small = timeline_stats(make_timelines(preset, 200, np.random.default_rng(0))[0])
    assert small["mean_instances"] == pytest.approx(real["mean_instances"], rel=0.15)
    assert small["median_length"] == pytest.approx(real["median_length"], rel=0.15)
    assert abs(small["coverage"] - real["coverage"]) < 0.03


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_timeline_invariants(preset):
    p = PRESETS[preset]
    videos, classes = make_timelines(preset, 101, np.random.default_rng(5), num_classes=7)
    assert classes == [f"action_{i}" for i in range(7)]
    assert len({v.id for v in videos}) == 101
    subsets = [v.subset for v in videos]
    assert subsets.count(p.train_subset) == round(101 * p.train_share)
    assert subsets.count(p.eval_subset) == 101 - round(101 * p.train_share)
    for v in videos:
        s = v.segments
        assert len(s) >= 1 and len(s) == len(v.labels)
        assert (s[:, 0] >= 0).all() and (s[:, 1] <= v.duration + 1e-3).all()
        assert (s[:, 1] > s[:, 0]).all()
        assert (s[1:, 0] >= s[:-1, 1] - 1e-3).all()  # in order, not overlapping (up to rounding)
        assert ((v.labels >= 0) & (v.labels < 7)).all()
    again, _ = make_timelines(preset, 101, np.random.default_rng(5), num_classes=7)
    assert again == videos


# --- features ---------------------------------------------------------------------------------


def test_clean_latent_is_prototype_inside_zero_outside():
    clean = RenderParams(noise=0.0, variation=0.0, distractors=0.0, background=0.0, blur=0.2)
    world = make_world(4, 16, seed=1, params=clean)
    v = Video("x", "test", 60.0, segments=np.array([[10.0, 30.0]]), labels=np.array([2]))
    t = np.array([5.0, 8.0, 10.0, 20.0, 30.0, 40.0])
    z = render_latent(v, world, t, seed=1)
    proto = world.prototypes[2]
    # Ramp width 0.2 * 20 s = 4 s centred on each boundary: 0 before 8 s, 0.5 at 10 s and 30 s.
    np.testing.assert_array_equal(z[[0, 1, 5]], 0.0)
    amp = z[3] @ proto / (proto @ proto)
    assert 0.8 <= amp <= 1.2
    np.testing.assert_allclose(z[3], amp * proto, atol=1e-12)
    np.testing.assert_allclose(z[[2, 4]], np.tile(0.5 * amp * proto, (2, 1)), atol=1e-12)


def test_identical_twins_average_their_vectors():
    clean = RenderParams(noise=0.0, variation=0.0, distractors=0.0, background=0.0)
    world = make_world(4, 16, seed=1, params=clean)
    v = Video("x", "test", 60.0, segments=np.array([[10.0, 30.0], [10.0, 30.0]]), labels=np.array([0, 3]))
    z = render_latent(v, world, np.array([20.0]), seed=1)[0]
    # Both envelopes are 1 at the centre: the average of the two (scaled) prototypes.
    coef, *_ = np.linalg.lstsq(world.prototypes[[0, 3]].T, z, rcond=None)
    np.testing.assert_allclose(world.prototypes[[0, 3]].T @ coef, z, atol=1e-10)
    assert 0.4 <= coef.min() and coef.max() <= 0.6


def test_features_shape_dtype_nonnegative_and_keyed_by_video():
    world = make_world(5, 24, seed=2, params=RenderParams())
    v = Video("vid_a", "test", 12.0, segments=np.array([[2.0, 5.0]]), labels=np.array([1]))
    f = render_features(v, world, 2, GRID)
    # 12 s at 30 fps = 360 frames: floor((360 - 16) / 8) + 1 = 44 snippets.
    assert f.shape == (44, 24) and f.dtype == np.float32
    assert np.isfinite(f).all() and (f >= 0).all()
    np.testing.assert_array_equal(render_features(v, world, 2, GRID), f)
    assert not np.array_equal(render_features(replace(v, id="vid_b"), world, 2, GRID), f)
    assert not np.array_equal(render_features(v, world, 3, GRID), f)


def _snippet_accuracy(difficulty: float) -> float:
    """Foreground accuracy of a context-free linear (ridge) per-snippet classifier, train -> eval."""
    videos, classes = make_timelines("thumos-like", 40, np.random.default_rng(0), num_classes=6)
    world = make_world(6, 32, seed=0, params=RenderParams().at(difficulty))
    xs, ys, train = [], [], []
    for v in videos:
        f = render_features(v, world, 0, GRID)
        t = GRID.centers(len(f))
        inside = (t[:, None] >= v.segments[:, 0]) & (t[:, None] <= v.segments[:, 1])
        y = np.where(inside.any(axis=1), v.labels[inside.argmax(axis=1)], 6)
        xs.append(f), ys.append(y), train.append(np.full(len(f), v.subset == "validation"))
    x, y, train = np.concatenate(xs), np.concatenate(ys), np.concatenate(train)
    x = np.concatenate([(x - x.mean(0)) / (x.std(0) + 1e-6), np.ones((len(x), 1))], axis=1)
    onehot = np.eye(7)[y]
    a = x[train]
    w = np.linalg.solve(a.T @ a + 1e-2 * np.eye(a.shape[1]), a.T @ onehot[train])
    pred = (x[~train] @ w).argmax(axis=1)
    fg = y[~train] < 6
    return float((pred[fg] == y[~train][fg]).mean())


def test_difficulty_makes_snippets_harder_and_default_is_not_trivial():
    easy, moderate, hard = (_snippet_accuracy(d) for d in (0.25, DEFAULT_DIFFICULTY, 2.0))
    assert easy > moderate > hard
    assert easy > 0.6 and easy - moderate > 0.2
    assert moderate < 0.5  # a context-free classifier is well below perfect at the default


def test_default_difficulty_is_frozen():
    # Calibrated on the context-free baseline of benchmarks/semi_real.py (BENCHMARKS.md); changing it
    # invalidates every semi-real result recorded there.
    assert DEFAULT_DIFFICULTY == 0.8


# --- gsmt synth -------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path, capsys):
    args = ["synth", "--preset", "thumos-like", "--videos", "12", "--feature-dim", "32", "--seed", "3"]
    assert main(args + ["--out", str(tmp_path / "A")]) == 0
    assert "wrote 12 videos (6 validation, 6 test)" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "B")]) == 0
    a, b = _files(tmp_path / "A"), _files(tmp_path / "B")
    assert len(a) == 13 and a == b
    assert main(args[:-1] + ["4", "--out", str(tmp_path / "C")]) == 0
    c = _files(tmp_path / "C")
    assert c.keys() == a.keys() and all(c[k] != a[k] for k in a)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_written_dataset(tmp_path, preset):
    out = tmp_path / "d"
    summary = generate(out, preset=preset, videos=9, feature_dim=8, seed=1, difficulty=0.5)
    p = PRESETS[preset]
    raw = json.loads((out / "annotations.json").read_text())
    expected_modes = {
        "thumos-like": {"temporal_mode": "window", "decode_mode": "own", "train_subset": "validation",
                        "eval_subset": "test", "tiou": "thumos"},
        "anet-like": {"temporal_mode": "resize", "decode_mode": "own+long", "train_subset": "training",
                      "eval_subset": "validation", "tiou": "anet"},
    }[preset]
    meta = raw["gsmt"]
    assert {k: meta[k] for k in expected_modes} == expected_modes
    grid = {"fps": 30.0, "feature_stride": {"thumos-like": 8, "anet-like": 16}[preset], "feature_window": 16}
    assert meta["grid"] == grid
    assert (meta["preset"], meta["difficulty"], meta["seed"], meta["feature_dim"]) == (preset, 0.5, 1, 8)
    assert len(raw["classes"]) == {"thumos-like": 20, "anet-like": 50}[preset]

    ann = load_annotations(out / "annotations.json")
    expected, _ = make_timelines(preset, 9, np.random.default_rng([1, 2]))
    assert [replace(v, fps=None, feature_stride=None, feature_window=None) for v in ann.videos] == expected
    assert summary.instances == sum(len(v.segments) for v in expected)
    assert sum(summary.videos_per_subset.values()) == 9
    assert set(summary.videos_per_subset) == {p.train_subset, p.eval_subset}
    assert summary.bytes_on_disk == sum(len(b) for b in _files(out).values())
    for v in ann.videos:
        assert (v.fps, v.feature_stride, v.feature_window) == tuple(grid.values())
        f = np.load(out / "features" / f"{v.id}.npy")
        n = Grid(30.0, grid["feature_stride"], 16).num_snippets(v.duration)
        assert f.dtype == np.float32 and f.shape == (n, 8)
        assert (f >= 0).all()


def test_real_thumos_timelines_all_videos(tmp_path):
    src = timelines_path("thumos14")
    out = tmp_path / "t"
    summary = generate(out, preset="thumos-like", timelines="thumos14", feature_dim=8, feature_stride=32)
    real, written = load_annotations(src), load_annotations(out / "annotations.json")
    assert len(written.videos) == 413 and summary.videos_per_subset == {"validation": 200, "test": 213}
    assert written.classes == real.classes
    for r, w in zip(real.videos, written.videos, strict=True):
        assert (w.fps, w.feature_stride, w.feature_window) == (30.0, 32, 16)
        assert w == replace(r, fps=30.0, feature_stride=32, feature_window=16)
    assert written.meta["timelines"] == "thumos14"
    assert len(list((out / "features").glob("*.npy"))) == 413


def test_timelines_sample_is_stratified_and_deterministic(tmp_path):
    src = timelines_path("thumos14")  # by path here; by name elsewhere
    real = load_annotations(src).by_id()
    picks = []
    for name in ("a", "b"):
        generate(tmp_path / name, preset="thumos-like", timelines=src, videos=20, feature_dim=4, seed=7)
        picks.append(load_annotations(tmp_path / name / "annotations.json").videos)
    assert [v.id for v in picks[0]] == [v.id for v in picks[1]]
    # 200/413 and 213/413 of 20 -> 9.7 and 10.3 -> 10 each (largest remainders).
    assert sorted(v.subset for v in picks[0]) == ["test"] * 10 + ["validation"] * 10
    order = list(real)
    assert [order.index(v.id) for v in picks[0]] == sorted(order.index(v.id) for v in picks[0])
    for v in picks[0]:
        assert v == replace(real[v.id], fps=30.0, feature_stride=8, feature_window=16)
    generate(tmp_path / "c", preset="thumos-like", timelines=src, videos=20, feature_dim=4, seed=8)
    assert [v.id for v in load_annotations(tmp_path / "c" / "annotations.json").videos] != [v.id for v in picks[0]]


@pytest.mark.parametrize("name, subsets", [("thumos14", {"validation": 2, "test": 2}),
                                           ("activitynet13", {"training": 3, "validation": 1}),
                                           # subsets renamed as THUMOS14's: what thumos-like trains / evaluates on
                                           ("multithumos", {"validation": 2, "test": 2})])
def test_cli_renders_packaged_timelines_by_name(tmp_path, capsys, name, subsets):
    out = tmp_path / name
    args = ["synth", "--preset", "thumos-like", "--timelines", name, "--videos", "4", "--feature-dim", "4",
            "--out", str(out)]
    assert main(args) == 0
    written = load_annotations(out / "annotations.json")
    real = load_annotations(timelines_path(name)).by_id()
    assert {s: sum(v.subset == s for v in written.videos) for s in subsets} == subsets
    assert all(np.array_equal(v.segments, real[v.id].segments) for v in written.videos)
    assert all(np.array_equal(v.labels, real[v.id].labels) for v in written.videos)
    assert written.classes == load_annotations(timelines_path(name)).classes
    assert written.meta["timelines"] == name
    assert len(list((out / "features").glob("*.npy"))) == 4


def test_timelines_missing_path_lists_the_packaged_names(tmp_path, capsys):
    missing = tmp_path / "thumos14_gt.json"
    out = tmp_path / "o"
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err
    assert all(name in err for name in TIMELINES)
    assert not out.exists()  # nothing written before the inputs are known good
    # A corrupt gzip file is one line naming it, too.
    bad = tmp_path / "t.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gsmt: error: {bad}: corrupt gzip file")


def test_packaged_blocked_list():
    ids = load_blocked("activitynet13")
    assert len(ids) == len(set(ids)) == 198
    validation = {v.id for v in load_annotations(timelines_path("activitynet13")).subset("validation")}
    assert set(ids) <= validation and len(validation) - len(ids) == 4728


def test_refuses_non_empty_out_without_overwrite(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["synth", "--preset", "anet-like", "--videos", "3", "--feature-dim", "4", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and str(out) in err
    (out / "features").mkdir()
    (out / "features" / "stale.npy").write_bytes(b"old")
    # Features that the folder's record does not say gsmt synth wrote may be a user's data: never deleted.
    assert main(args + ["--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stale.npy: exists and was not written by gsmt synth" in err
    assert (out / "features" / "stale.npy").read_bytes() == b"old"
    # An annotation file that looks like synth's (its meta records a render) is not synth's either.
    (out / "features" / "stale.npy").unlink()
    (out / "annotations.json").write_text('{"gsmt": {"preset": "anet-like", "render": {}}, "database": {}}')
    assert main(args + ["--overwrite"]) == 2
    assert "annotations.json: exists and was not written by gsmt synth" in capsys.readouterr().err
    # Written by gsmt synth (its record says so): replaced.
    (out / "annotations.json").unlink()
    assert main(args + ["--overwrite"]) == 0
    assert main(args + ["--overwrite", "--seed", "1"]) == 0
    names = sorted(p.name for p in (out / "features").iterdir())
    assert names == ["anet_like_00000.npy", "anet_like_00001.npy", "anet_like_00002.npy"]
    assert (out / "notes.txt").read_text() == "mine"  # only what synth writes is replaced
    with pytest.raises(GsmtError, match="not empty"):
        generate(out, preset="anet-like", videos=3, feature_dim=4)


@pytest.mark.parametrize(
    "kwargs, where",
    [
        ({"preset": "nope"}, "--preset"),
        ({"preset": "anet-like", "videos": 0}, "--videos"),
        ({"preset": "anet-like", "feature_dim": -3}, "--feature-dim"),
        ({"preset": "anet-like", "feature_stride": 2.5}, "--feature-stride"),
        ({"preset": "anet-like", "difficulty": float("nan")}, "--difficulty"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, where):
    with pytest.raises(GsmtError) as info:
        generate(tmp_path / "x", **kwargs)
    assert info.value.where == where


def test_classes_flag_conflicts_with_timelines(tmp_path):
    with pytest.raises(GsmtError, match="--timelines"):
        generate(tmp_path / "x", preset="thumos-like", timelines="thumos14", num_classes=5)
    generate(tmp_path / "k", preset="anet-like", videos=4, feature_dim=4, num_classes=200)
    assert len(load_annotations(tmp_path / "k" / "annotations.json").classes) == 200
