"""Property-based tests (hypothesis): random but valid input never crashes and the invariants hold.

Covers the annotation readers (ActivityNet JSON, CSV, the JSON writer's round trip, video ids),
the snippet grid and windows, segment IoU and the detection evaluator.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gsmt.annotations.types import Annotations, Video, check_video_id
from gsmt.annotations.load import load_annotations
from gsmt.annotations.write import save_activitynet_json
from gsmt.data.grid import Grid, cut_window, resize_features, resize_spans, window_starts
from gsmt.errors import GsmtError
from gsmt.evaluation import evaluate_detection, segment_tiou
from gsmt.postprocess import segment_iou

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLASSES = ["Diving", "HighJump", "Long Jump", "pole_vault", "Ügrás"]
ID_CHARS = st.sampled_from("abcXYZ019_-.")
SAFE_IDS = st.text(ID_CHARS, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
SECONDS = st.floats(-50.0, 500.0, allow_nan=False, allow_infinity=False)
DURATIONS = st.floats(0.5, 400.0, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------ strategies


@st.composite
def raw_videos(draw, max_videos: int = 5) -> dict:
    """{video_id: (subset, duration, [(start, end, label)])} with every kind of segment fault."""
    ids = draw(st.lists(SAFE_IDS, min_size=1, max_size=max_videos, unique=True))
    out = {}
    for vid in ids:
        subset = draw(st.sampled_from(["training", "validation", "test"]))
        duration = draw(DURATIONS)
        segments = draw(st.lists(st.tuples(SECONDS, SECONDS, st.sampled_from(CLASSES)), max_size=6))
        # zero-length segments are rare among random floats: make some on purpose
        segments += [(s, s, lab) for s, lab in draw(st.lists(st.tuples(SECONDS, st.sampled_from(CLASSES)),
                                                             max_size=1))]
        out[vid] = (subset, duration, segments)
    return out


def expected_faults(raw: dict) -> dict[str, int]:
    """The fault counts `load_annotations` must report, counted by hand."""
    counts = {"reversed": 0, "zero": 0, "before": 0, "after_end": 0, "after_start": 0}
    for _, duration, segments in raw.values():
        for s, e, _ in segments:
            if e < s:
                counts["reversed"] += 1
                continue
            counts["zero"] += e == s
            counts["before"] += s < 0
            counts["after_end"] += e > duration
            counts["after_start"] += s > duration
    return counts


def fault_count(ann: Annotations, kind: str) -> int:
    return sum(n for name, n in ann.faults.counts.items() if kind in name)


def check_loaded(ann: Annotations, raw: dict) -> None:
    """What every reader must produce for `raw`: ids, subsets, durations, kept segments and labels."""
    assert [v.id for v in ann.videos] == list(raw)
    # every finite segment is kept, end < start included (the official evaluator keeps those)
    assert ann.classes == sorted({lab for _, _, segs in raw.values() for s, e, lab in segs})
    for video in ann.videos:
        subset, duration, segments = raw[video.id]
        kept = list(segments)
        assert video.subset == subset
        assert video.duration == duration
        assert video.segments.dtype == np.float64 and video.segments.shape == (len(kept), 2)
        assert video.labels.dtype == np.int64
        # segments stay as in the file (no clipping), in file order
        assert video.segments.tolist() == [[s, e] for s, e, _ in kept]
        assert [ann.classes[i] for i in video.labels.tolist()] == [lab for _, _, lab in kept]
    counts = expected_faults(raw)
    assert fault_count(ann, "end < start") == counts["reversed"]
    assert fault_count(ann, "zero-length") == counts["zero"]
    assert fault_count(ann, "starting before 0") == counts["before"]
    assert fault_count(ann, "ending after") == counts["after_end"]
    assert fault_count(ann, "starting after") == counts["after_start"]


# ------------------------------------------------------------------ annotation readers


@SETTINGS
@given(raw=raw_videos(), wrapped=st.booleans())
def test_activitynet_reader_on_random_files(raw, wrapped):
    db = {vid: {"subset": subset, "duration": duration,
                "annotations": [{"label": lab, "segment": [s, e]} for s, e, lab in segments]}
          for vid, (subset, duration, segments) in raw.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps({"version": "1.3", "database": db} if wrapped else db))
        ann = load_annotations(path, id_prefix=None)
        check_loaded(ann, raw)

        # the writer's output reads back to the same videos and class ids
        out = Path(tmp) / "back.json"
        save_activitynet_json(ann, out)
        back = load_annotations(out, id_prefix=None)
    assert back.classes == ann.classes
    assert back.videos == ann.videos


@SETTINGS
@given(raw=raw_videos())
def test_csv_reader_on_random_files(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["video", "start", "end", "label", "subset", "duration"])
            for vid, (subset, duration, segments) in raw.items():
                if not segments:  # a row with empty start and end lists a video without instances
                    writer.writerow([vid, "", "", "", subset, repr(duration)])
                for s, e, lab in segments:
                    writer.writerow([vid, repr(s), repr(e), lab, subset, repr(duration)])
        ann = load_annotations(path, id_prefix=None)
    check_loaded(ann, raw)


@SETTINGS
@given(video_id=st.text(st.sampled_from("ab./\\:\0 C~"), max_size=8))
def test_video_ids_never_escape_their_folder(video_id):
    folder = "/data/features"
    try:
        vid = check_video_id(video_id, "test.json")
    except GsmtError as exc:
        assert "unsafe video id" in exc.problem
        return
    assert vid == video_id
    joined = os.path.normpath(os.path.join(folder, vid + ".npy"))
    assert os.path.dirname(joined) == folder


@pytest.mark.parametrize("video_id", ["../../x", "/etc/x", "..", ".", "", "a/b", "a\\b", "C:x", "x\0y"])
def test_unsafe_video_ids_are_refused(video_id):
    with pytest.raises(GsmtError, match="unsafe video id"):
        check_video_id(video_id, "test.json")


# ------------------------------------------------------------------ the snippet grid and windows


GRIDS = st.builds(Grid, fps=st.floats(1.0, 120.0), feature_stride=st.integers(1, 32).map(float),
                  feature_window=st.integers(0, 64).map(float))


@SETTINGS
@given(grid=GRIDS, n=st.integers(1, 400), start=st.integers(0, 1000))
def test_grid_spans_tile_the_timeline(grid, n, start):
    c = grid.centers(n, start)
    t_start, t_end = grid.spans(n, start)
    step = grid.feature_stride / grid.fps
    assert np.all(np.diff(c) > 0)
    np.testing.assert_allclose(np.diff(c), step, rtol=1e-9)
    np.testing.assert_allclose(t_end - t_start, step, rtol=1e-9)
    np.testing.assert_allclose((t_start + t_end) / 2, c, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(t_end[:-1], t_start[1:], rtol=1e-12, atol=1e-9)  # no gap, no overlap
    # seconds -> index inverts index -> seconds; the nearest snippet of a centre is itself
    idx = grid.seconds_to_index(c)
    np.testing.assert_allclose(idx, np.arange(start, start + n), atol=1e-6)
    assert np.array_equal(np.rint(idx).astype(np.int64), np.arange(start, start + n))


@SETTINGS
@given(grid=GRIDS, n=st.integers(1, 400))
def test_num_snippets_inverts_the_extractor_length(grid, n):
    duration = ((n - 1) * grid.feature_stride + grid.feature_window) / grid.fps
    assume(duration > 0)
    assert grid.num_snippets(duration) == n
    # a little longer than n snippets need, but not one more stride: still n
    assert grid.num_snippets(duration + 0.5 * grid.feature_stride / grid.fps) == n


@SETTINGS
@given(duration=DURATIONS, T=st.integers(1, 300))
def test_resize_spans_partition_the_video(duration, T):
    t_start, t_end = resize_spans(duration, T)
    assert t_start.shape == t_end.shape == (T,)
    assert t_start[0] == 0.0
    assert t_end[-1] == pytest.approx(duration, rel=1e-12)
    assert np.array_equal(t_end[:-1], t_start[1:])
    np.testing.assert_allclose(t_end - t_start, duration / T, rtol=1e-9)


@SETTINGS
@given(n=st.integers(1, 2000),
       T_stride=st.integers(1, 300).flatmap(lambda T: st.tuples(st.just(T), st.integers(1, T))))
def test_windows_cover_every_snippet(n, T_stride):
    T, stride = T_stride  # windows overlap or touch (stride <= T), as every preset has them
    starts = window_starts(n, T, stride)
    assert starts[0] == 0
    assert starts[-1] == max(0, n - T)
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= stride)
    covered = np.zeros(n, dtype=bool)
    for s in starts.tolist():  # at most a few hundred windows
        covered[s:s + T] = True
    assert covered.all()


@SETTINGS
@given(n=st.integers(0, 60), D=st.integers(1, 5), T=st.integers(1, 80), start=st.integers(0, 70),
       seed=st.integers(0, 99))
def test_cut_window_keeps_real_snippets_and_pads_with_zeros(n, D, T, start, seed):
    feats = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    x, valid = cut_window(feats, start, T)
    real = max(0, min(T, n - start))
    assert x.shape == (T, D) and valid.shape == (T,)
    assert valid.sum() == real and valid[:real].all()
    np.testing.assert_array_equal(x[:real], feats[start:start + real])
    assert not x[real:].any()


@SETTINGS
@given(n=st.integers(1, 60), D=st.integers(1, 4), T=st.integers(1, 120), seed=st.integers(0, 99))
def test_resized_features_stay_within_the_input_range(n, D, T, seed):
    feats = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float64)
    out = resize_features(feats, T)
    assert out.shape == (T, D)
    assert np.all(out >= feats.min(axis=0) - 1e-12) and np.all(out <= feats.max(axis=0) + 1e-12)


# ------------------------------------------------------------------ segment IoU


SEGMENTS = st.tuples(SECONDS, SECONDS).map(lambda p: (min(p), max(p)))


@SETTINGS
@given(a=st.lists(SEGMENTS, min_size=1, max_size=8), b=st.lists(SEGMENTS, min_size=1, max_size=8))
def test_segment_iou_is_symmetric_and_in_unit_interval(a, b):
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    # the post-processing IoU
    ab, ba = segment_iou(a, b), segment_iou(b, a)
    assert ab.shape == (len(a), len(b))
    np.testing.assert_array_equal(ab, ba.T)
    assert np.all((ab >= 0) & (ab <= 1))
    positive = a[:, 1] > a[:, 0]
    np.testing.assert_array_equal(np.diag(segment_iou(a, a))[positive], 1.0)
    # the evaluator's official arithmetic: the same, except 0/0 is NaN
    t_ab = segment_tiou(a[:, None, :], b[None, :, :])
    t_ba = segment_tiou(b[None, :, :], a[:, None, :])
    np.testing.assert_array_equal(t_ab, t_ba)
    both_empty = (a[:, None, 1] == a[:, None, 0]) & (b[None, :, 1] == b[None, :, 0])
    np.testing.assert_array_equal(np.isnan(t_ab), both_empty)
    defined = ~both_empty
    assert np.all((t_ab[defined] >= 0) & (t_ab[defined] <= 1))
    np.testing.assert_array_equal(t_ab[defined], ab[defined])


# ------------------------------------------------------------------ the evaluator


@st.composite
def ground_truth(draw) -> Annotations:
    """1-4 videos of the `test` subset with positive-length instances, at least one in all."""
    k = draw(st.integers(1, 3))
    videos = []
    for i in range(draw(st.integers(1, 4))):
        duration = draw(st.floats(5.0, 200.0))
        n = draw(st.integers(0, 5))
        starts = np.array(draw(st.lists(st.floats(0.0, duration - 0.1), min_size=n, max_size=n)))
        lengths = np.array(draw(st.lists(st.floats(0.1, duration), min_size=n, max_size=n)))
        labels = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=np.int64)
        segments = np.stack([starts, np.minimum(starts + lengths, duration)], axis=1).reshape(-1, 2)
        videos.append(Video(id=f"video_{i}", subset="test", duration=duration, segments=segments, labels=labels))
    assume(sum(len(v.segments) for v in videos) > 0)
    return Annotations(videos=videos, classes=CLASSES[:k])


@st.composite
def random_predictions(draw, gt: Annotations) -> dict:
    """Predictions on the GT videos and one unknown video; labels include one the GT does not know."""
    labels = gt.classes + ["Unheard"]
    ids = [v.id for v in gt.videos] + ["not_in_gt"]
    n = draw(st.integers(0, 25))
    # distinct scores, so the ranking (and so every metric) does not depend on file order
    scores = draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n, unique=True))
    preds: dict[str, list] = {}
    for score in scores:
        s, e = sorted(draw(st.tuples(st.floats(-5.0, 210.0), st.floats(-5.0, 210.0))))
        preds.setdefault(draw(st.sampled_from(ids)), []).append(
            {"label": draw(st.sampled_from(labels)), "score": score, "segment": [s, e]})
    return preds


def _metrics(gt: Annotations, predictions: dict) -> dict:
    return evaluate_detection(gt, predictions, tiou="anet").to_json()


@SETTINGS
@given(data=st.data())
def test_map_of_random_predictions_is_in_unit_interval(data):
    gt = data.draw(ground_truth())
    predictions = data.draw(random_predictions(gt))
    m = _metrics(gt, predictions)
    values = np.array(m["mAP"] + [m["average_mAP"]] + [x for v in m["per_class_ap"].values() for x in v])
    assert np.all((values >= 0) & (values <= 1))
    assert m["average_mAP"] == pytest.approx(float(np.mean(m["mAP"])))
    assert set(m["per_class_ap"]) == {gt.classes[c] for v in gt.videos for c in v.labels.tolist()}
    # mAP cannot grow with a stricter tIoU threshold
    assert np.all(np.diff(m["mAP"]) <= 1e-12)


@SETTINGS
@given(data=st.data())
def test_shuffling_predictions_with_distinct_scores_changes_nothing(data):
    gt = data.draw(ground_truth())
    predictions = data.draw(random_predictions(gt))
    order = data.draw(st.permutations(list(predictions)))
    shuffled = {vid: data.draw(st.permutations(predictions[vid])) for vid in order}
    assert _metrics(gt, shuffled) == _metrics(gt, predictions)


@SETTINGS
@given(data=st.data())
def test_perfect_predictions_give_one(data):
    gt = data.draw(ground_truth())
    n = sum(len(v.segments) for v in gt.videos)
    scores = iter(data.draw(st.permutations(list(range(1, n + 1)))))
    predictions = {v.id: [{"label": gt.classes[c], "score": next(scores) / n, "segment": [s, e]}
                          for (s, e), c in zip(v.segments.tolist(), v.labels.tolist())] for v in gt.videos}
    m = _metrics(gt, predictions)
    assert m["mAP"] == [1.0] * 10
    assert m["average_mAP"] == 1.0
    assert all(ap == [1.0] * 10 for ap in m["per_class_ap"].values())


@SETTINGS
@given(data=st.data())
def test_no_predictions_give_zero(data):
    gt = data.draw(ground_truth())
    empty = data.draw(st.sampled_from([{}, {v.id: [] for v in gt.videos}]))
    m = _metrics(gt, empty)
    assert m["mAP"] == [0.0] * 10 and m["average_mAP"] == 0.0
    assert not math.isnan(m["average_mAP"])
