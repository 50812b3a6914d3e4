"""Semi-real benchmark harness (`benchmarks/harness.py`) and its context-free baseline (`benchmarks/peers/baseline.py`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import harness
from benchmarks.peers import baseline
from gsmt.annotations.types import Video
from gsmt.synth.generate import generate


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small torch ops on a shared 2-core machine run several times faster on one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_snippet_labels_shortest_instance_wins_and_ambiguous_is_ignored():
    v = Video("v", "test", 10.0, segments=np.array([[1.0, 3.0], [2.0, 2.5], [4.0, 4.0]]),
              labels=np.array([0, 1, 1]), ambiguous=np.array([[5.0, 6.0], [2.7, 2.9]]))
    centers = np.array([0.5, 1.5, 2.2, 2.8, 4.0, 5.5, 7.0])
    # 2.2 lies in both instances: the shorter [2, 2.5] (class 1) owns it; 2.8 is in [1, 3] and in an
    # ambiguous span, the instance wins; the zero-length [4, 4] is no instance; 5.5 is ambiguous only.
    np.testing.assert_array_equal(baseline.snippet_labels(v, centers, 2), [2, 0, 1, 0, 2, -1, 2])


def test_snippet_labels_equal_lengths_go_to_lower_class():
    v = Video("v", "test", 10.0, segments=np.array([[1.0, 2.0], [1.0, 2.0]]), labels=np.array([3, 1]))
    np.testing.assert_array_equal(baseline.snippet_labels(v, np.array([1.5, 2.5]), 4), [1, 4])


def test_runs_to_detections_hand_computed():
    # K = 2 (background = column 2). Argmax per snippet: 0 0 2 1 1 0.
    probs = np.array([[0.6, 0.1, 0.3], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6],
                      [0.1, 0.5, 0.4], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    t_start = np.arange(6) * 2.0 - 1.0
    t_end = t_start + 2.0
    dets = baseline.runs_to_detections(probs, t_start, t_end, duration=10.0)
    np.testing.assert_allclose(dets.segments, [[0.0, 3.0], [5.0, 9.0], [9.0, 10.0]])  # clipped to [0, 10]
    np.testing.assert_array_equal(dets.labels, [0, 1, 0])
    np.testing.assert_allclose(dets.scores, [0.7, 0.6, 0.9])


def test_runs_to_detections_all_background_and_empty():
    probs = np.tile([0.1, 0.2, 0.7], (4, 1))
    assert len(baseline.runs_to_detections(probs, np.arange(4.0), np.arange(4.0) + 1, 4.0)) == 0
    assert len(baseline.runs_to_detections(np.zeros((0, 3)), np.zeros(0), np.zeros(0), 4.0)) == 0


def test_classifier_learns_separable_snippets():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 8))
    y = rng.integers(0, 4, 2000)
    x = (centres[y] + rng.normal(0, 0.5, (2000, 8))).astype(np.float32)
    for hidden in (0, 32):
        model = baseline.fit_classifier(x, y, 3, baseline.BaselineConfig(hidden=hidden, epochs=5, batch_size=64))
        probs = model.probs(x)
        assert probs.shape == (2000, 4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        assert (probs.argmax(axis=1) == y).mean() > 0.97


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The baseline on a small thumos-like dataset, easy and hard."""
    cfg = baseline.BaselineConfig(hidden=32, epochs=4, batch_size=256)
    out = {}
    for difficulty in (0.1, 3.0):
        folder = tmp_path_factory.mktemp(f"d{difficulty}")
        generate(folder, preset="thumos-like", videos=12, num_classes=3, feature_dim=16, difficulty=difficulty,
                 seed=1)
        out[difficulty] = baseline.run(folder, train_subset="validation", eval_subset="test", tiou="thumos",
                                       blocked={"all": []}, cfg=cfg)
    return out


def test_baseline_run_end_to_end(tiny_runs):
    easy, hard = tiny_runs[0.1], tiny_runs[3.0]
    assert easy.eval_videos == 6 and set(easy.results) and len(easy.results) == 6
    for run in (easy, hard):
        m = run.metrics["all"]
        np.testing.assert_allclose(m.tiou, [0.3, 0.4, 0.5, 0.6, 0.7])
        assert np.all((m.mAP >= 0) & (m.mAP <= 1)) and np.all(np.diff(m.mAP) <= 1e-12)
        for dets in run.results.values():
            scores = [d["score"] for d in dets]
            assert scores == sorted(scores, reverse=True) and len(dets) <= 200
    # The benchmark separates: an easy rendering is far better localised than a hard one.
    assert easy.metrics["all"].average_mAP > hard.metrics["all"].average_mAP + 0.2


def _row(model, setting, avg, seed=0, gpu=None):
    return harness.Row("thumos", model, setting, seed, [0.3, 0.5], [avg + 0.1, avg - 0.1], avg, 12.0, 0.0125,
                       100.0 + seed, gpu, 10, 7)


def test_table_layout_and_seed_mean():
    rows = [_row("GSMT", "test", 0.5, 0), _row("GSMT", "test", 0.3, 1), _row("baseline", "test", 0.1, gpu=50.0)]
    lines = harness.table(rows).splitlines()
    assert lines[0] == ("| method | evaluated videos | 0.30 | 0.50 | avg | train | inference / video | peak RSS "
                        "| peak GPU mem |")
    # Two seeds: mean ± sample std (0.5 and 0.3 -> 40.00 ± 14.14); the peak memory is the max.
    assert lines[2] == "| GSMT | test (7) | 50.00 ± 14.14 | 30.00 ± 14.14 | **40.00 ± 14.14** | 12 s | 12.5 ms | 101 MiB | - |"
    assert lines[3] == "| baseline | test (7) | 20.00 | 0.00 | **10.00** | 12 s | 12.5 ms | 100 MiB | 50 MiB |"
    assert harness.table([]) == ""


def test_sizes_one_or_per_benchmark():
    assert harness.videos_per_benchmark(None, ["thumos", "anet"]) == {"thumos": 120, "anet": 3000}
    assert harness.videos_per_benchmark([0], ["thumos", "anet"]) == {"thumos": 0, "anet": 0}
    assert harness.videos_per_benchmark([10, 20], ["thumos", "anet"]) == {"thumos": 10, "anet": 20}
    with pytest.raises(SystemExit):
        harness.videos_per_benchmark([1, 2], ["anet"])


def test_render_caches_on_the_real_timelines(tmp_path):
    bench = harness.BENCHMARKS["thumos"]
    assert bench.timelines == "thumos14"  # the packaged real timelines, by name
    folder, _, cached = harness.render_benchmark(bench, videos=2, seed=5, difficulty=0.5, cache=tmp_path)
    assert not cached and folder.name == "thumos_n2_s5_d0.5_D256"
    ids = sorted(p.stem for p in (folder / "features").glob("*.npy"))
    assert len(ids) == 2 and all(i.startswith("video_") for i in ids)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    again, seconds, cached = harness.render_benchmark(bench, videos=2, seed=5, difficulty=0.5, cache=tmp_path)
    assert cached and again == folder and seconds == 0.0
    assert before == {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_blocked_settings():
    assert harness.blocked_settings(harness.BENCHMARKS["thumos"]) == {"test": []}
    anet = harness.blocked_settings(harness.BENCHMARKS["anet"])
    assert list(anet) == ["validation", "validation minus 198 blocked"] and len(anet["validation minus 198 blocked"]) == 198


def test_calibration_summary_averages_seeds_and_flags_the_band():
    from benchmarks import calibrate

    def row(bench, setting, avg):
        return {"model": "context-free baseline", "benchmark": bench, "setting": setting, "average_mAP": avg}

    runs = [{"difficulty": 0.8, "videos": {"thumos": 120}, "rows": [row("thumos", "test", 0.10),
                                                                      {**row("thumos", "test", 0.9), "model": "GSMT"}]},
            {"difficulty": 0.8, "videos": {"thumos": 120}, "rows": [row("thumos", "test", 0.30)]},
            {"difficulty": 1.0, "videos": {"anet": 0}, "rows": [row("anet", "validation", 0.01)]}]
    assert calibrate.summary(runs).splitlines()[2:] == [
        "| 0.8 | THUMOS14 | 120 | test | 20.00 (2 seeds) | yes |",
        "| 1 | ActivityNet-1.3 | all | validation | 1.00 | no |",
    ]
