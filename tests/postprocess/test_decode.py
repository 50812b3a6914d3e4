"""Tests for gsmt.postprocess.decode: proposal-free decoding of masks and class scores."""

from __future__ import annotations

import numpy as np
import pytest

from gsmt.errors import GsmtError
from gsmt.postprocess.decode import decode_many, decode_pairs_many, select_pairs
from gsmt.postprocess import (
    DEFAULT_THRESHOLDS,
    Detections,
    actionness_decode,
    decode,
    decode_batch,
    find_runs,
    to_video_time,
)

T = 6
BG = [0.1, 0.1, 0.8]  # a background snippet: actionness 0.1


def _sample(columns: dict[int, list[float]], probs_at: dict[int, list[float]]):
    """probs [3, T] (K=2) and masks [T, T] with the given columns; unit snippets [t, t+1)."""
    probs = np.array([BG] * T).T.copy()
    for t, p in probs_at.items():
        probs[:, t] = p
    masks = np.zeros((T, T))
    for t, col in columns.items():
        masks[:, t] = col
    t_start = np.arange(T, dtype=float)
    return probs, masks, np.ones(T, bool), t_start, t_start + 1.0


def _as_tuples(d: Detections):
    return [(s, e, int(c), round(float(p), 12)) for (s, e), c, p in zip(d.segments, d.labels, d.scores)]


def test_detections_helpers():
    d = Detections([[0, 1], [2, 3]], [1, 0], [0.2, 0.7])
    assert len(d) == 2 and d.segments.dtype == np.float64 and d.labels.dtype == np.int64
    both = Detections.concatenate([d, Detections.empty(), d.take([1])])
    assert len(both) == 3
    np.testing.assert_array_equal(both.labels, [1, 0, 0])
    np.testing.assert_array_equal(d.sorted().scores, [0.7, 0.2])
    np.testing.assert_array_equal(d.take(d.scores > 0.5).segments, [[2, 3]])
    assert len(Detections.concatenate([])) == 0
    with pytest.raises(ValueError):
        Detections([[0, 1]], [0, 1], [0.5])


def test_default_thresholds():
    assert DEFAULT_THRESHOLDS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_find_runs():
    active = np.array([[1, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    rows, first, last = find_runs(active)
    np.testing.assert_array_equal(rows, [0, 0, 0, 2])
    np.testing.assert_array_equal(first, [0, 3, 5, 0])
    np.testing.assert_array_equal(last, [1, 3, 5, 5])


def test_asymmetric_mask_uses_columns():
    probs, masks, valid, ts, te = _sample({2: [0, 0, 0.8, 0.9, 0.7, 0]}, {2: [0.7, 0.2, 0.1]})
    masks[2, :] = [0.6, 0.6, 0.8, 0, 0, 0]  # row 2 differs from column 2
    kw = dict(thresholds=[0.5], m1=1)
    # column 2 activates snippets 2..4: [2, 5], score 0.7 * 0.9
    assert _as_tuples(decode(probs, masks, valid, ts, te, 6.0, **kw)) == [(2.0, 5.0, 0, 0.63)]
    # the transposed matrix reads row 2 instead: snippets 0..2 -> [0, 3], score 0.7 * 0.8
    assert _as_tuples(decode(probs, masks.T, valid, ts, te, 6.0, **kw)) == [(0.0, 3.0, 0, 0.56)]


TWO_RUNS = {0: [0.9, 0.8, 0.2, 0.6, 0.7, 0.1]}
P0 = {0: [0.7, 0.2, 0.1]}


def test_long_vs_short_on_two_runs():
    probs, masks, valid, ts, te = _sample(TWO_RUNS, P0)
    long = decode(probs, masks, valid, ts, te, 6.0, mode="long", thresholds=[0.5], m1=1)
    # first to last activated snippet: 0..4, max over the column 0.9
    assert _as_tuples(long) == [(0.0, 5.0, 0, 0.63)]
    short = decode(probs, masks, valid, ts, te, 6.0, mode="short", thresholds=[0.5], m1=1, theta_c=0.0)
    # runs 0..1 (max 0.9) and 3..4 (max 0.7)
    assert _as_tuples(short) == [(0.0, 2.0, 0, 0.63), (3.0, 5.0, 0, 0.49)]
    # own: only the run that holds the source snippet 0
    own = decode(probs, masks, valid, ts, te, 6.0, mode="own", thresholds=[0.5], m1=1, theta_c=0.0)
    assert _as_tuples(own) == [(0.0, 2.0, 0, 0.63)]


def test_own_plus_long_and_the_soft_iou_mask_score():
    # Column 0 = [0.9, 0.8, 0.2, 0.6, 0.7, 0.1], theta 0.5: own run 0..1 and long span 0..4.
    probs, masks, valid, ts, te = _sample(TWO_RUNS, P0)
    kw = dict(thresholds=[0.5], m1=1, theta_c=0.0)
    both = decode(probs, masks, valid, ts, te, 6.0, mode="own+long", **kw)
    assert _as_tuples(both) == [(0.0, 5.0, 0, 0.63), (0.0, 2.0, 0, 0.63)]  # both 0.7 * max 0.9: longest first
    # Soft IoU, column sum 3.3: own 0..1 -> 1.7 / (2 + 1.6); long 0..4 -> 3.2 / (5 + 0.1).
    iou = decode(probs, masks, valid, ts, te, 6.0, mode="own+long", mask_score="iou", **kw)
    assert _as_tuples(iou) == [(0.0, 5.0, 0, round(0.7 * 3.2 / 5.1, 12)), (0.0, 2.0, 0, round(0.7 * 1.7 / 3.6, 12))]
    # Padding is neither inside nor outside: snippet 4 invalid -> long 0..3 -> 2.5 / (4 + 0.1).
    valid[4] = False
    iou = decode(probs, masks, valid, ts, te, 6.0, mode="long", mask_score="iou", **kw)
    assert _as_tuples(iou) == [(0.0, 4.0, 0, round(0.7 * 2.5 / 4.1, 12))]
    with pytest.raises(GsmtError, match="mask_score"):
        decode(probs, masks, valid, ts, te, 6.0, mask_score="mean", **kw)


def test_own_keeps_the_run_of_each_source_snippet():
    # snippet 4 (actionness 0.8) predicts runs 0..1 and 3..4; snippet 1 (0.6) predicts 0..1 only
    probs, masks, valid, ts, te = _sample({4: [0.9, 0.8, 0.2, 0.6, 0.7, 0.1], 1: [0.8, 0.9, 0, 0, 0, 0]},
                                          {4: [0.8, 0.1, 0.1], 1: [0.6, 0.2, 0.2]})
    own = decode(probs, masks, valid, ts, te, 6.0, mode="own", thresholds=[0.5], m1=2, theta_c=0.0)
    # 3..4 from snippet 4 (0.8 * 0.7); 0..1 from snippet 1 (0.6 * 0.9), not snippet 4's 0.8 * 0.9
    assert _as_tuples(own) == [(3.0, 5.0, 0, 0.56), (0.0, 2.0, 0, 0.54)]
    # a source snippet below the threshold in its own column gives no candidate at that threshold
    masks[4, 4] = 0.4
    own = decode(probs, masks, valid, ts, te, 6.0, mode="own", thresholds=[0.5], m1=2, theta_c=0.0)
    assert _as_tuples(own) == [(0.0, 2.0, 0, 0.54)]


def test_thresholds_merge_identical_candidates():
    probs, masks, valid, ts, te = _sample(TWO_RUNS, P0)
    # theta 0.5: runs 0..1 and 3..4; theta 0.75: run 0..1 again -> merged into one
    short = decode(probs, masks, valid, ts, te, 6.0, mode="short", thresholds=[0.5, 0.75], m1=1,
                   theta_c=0.0)
    assert _as_tuples(short) == [(0.0, 2.0, 0, 0.63), (3.0, 5.0, 0, 0.49)]
    # long: theta 0.5 -> 0..4, theta 0.75 -> 0..1 (0.6 and 0.7 fall below), both scored 0.7 * 0.9
    long = decode(probs, masks, valid, ts, te, 6.0, mode="long", thresholds=[0.5, 0.75], m1=1)
    assert _as_tuples(long) == [(0.0, 2.0, 0, 0.63), (0.0, 5.0, 0, 0.63)]  # long: (start, end) order


def test_equal_scores_rank_the_longest_first():
    # One column, own runs at theta 0.3 (0..3), 0.5 (0..2) and 0.8 (0..0): nested, all sharing the
    # start and the maximum 0.9, so all scored 0.7 * 0.9; the whole instance comes before its parts.
    probs, masks, valid, ts, te = _sample({0: [0.9, 0.6, 0.55, 0.4, 0.1, 0.1]}, P0)
    out = decode(probs, masks, valid, ts, te, 6.0, mode="own", thresholds=[0.3, 0.5, 0.8], m1=1, theta_c=0.0)
    assert _as_tuples(out) == [(0.0, 4.0, 0, 0.63), (0.0, 3.0, 0, 0.63), (0.0, 1.0, 0, 0.63)]
    # `long` spans of equal score keep the (start, end) order: a lower threshold's span reaches further.
    long = decode(probs, masks, valid, ts, te, 6.0, mode="long", thresholds=[0.3, 0.5, 0.8], m1=1, theta_c=0.0)
    assert _as_tuples(long) == [(0.0, 1.0, 0, 0.63), (0.0, 3.0, 0, 0.63), (0.0, 4.0, 0, 0.63)]
    # Equal scores and lengths keep the (start, end) order; a higher score still comes first.
    short = dict(mode="short", thresholds=[0.5], m1=1, theta_c=0.0)
    probs, masks, valid, ts, te = _sample({0: [0.9, 0.9, 0, 0.9, 0.9, 0]}, P0)
    assert _as_tuples(decode(probs, masks, valid, ts, te, 6.0, **short)) == [(0.0, 2.0, 0, 0.63), (3.0, 5.0, 0, 0.63)]
    probs, masks, valid, ts, te = _sample({0: [0.95, 0, 0.9, 0.9, 0.9, 0]}, P0)
    out = decode(probs, masks, valid, ts, te, 6.0, **short)
    assert _as_tuples(out) == [(0.0, 1.0, 0, round(0.7 * 0.95, 12)), (2.0, 5.0, 0, 0.63)]


def test_merge_keeps_highest_score_per_segment_and_class():
    col = [0.9, 0.9, 0, 0, 0, 0]
    probs, masks, valid, ts, te = _sample(
        {0: col, 1: col, 2: col},
        {0: [0.5, 0.3, 0.2], 1: [0.8, 0.1, 0.1], 2: [0.1, 0.6, 0.3]},
    )
    out = decode(probs, masks, valid, ts, te, 6.0, thresholds=[0.5], m1=3)
    # snippets 0 and 1 give [0, 2] class 0 (0.45, 0.72): one kept at 0.72; snippet 2 gives class 1
    assert _as_tuples(out) == [(0.0, 2.0, 0, 0.72), (0.0, 2.0, 1, 0.54)]


def test_topk_classes_two():
    probs, masks, valid, ts, te = _sample({1: [0, 0.8, 0.8, 0, 0, 0]}, {1: [0.3, 0.25, 0.45]})
    one = decode(probs, masks, valid, ts, te, 6.0, thresholds=[0.5], m1=1)
    # background (0.45) is never a candidate class: best action class is 0
    assert _as_tuples(one) == [(1.0, 3.0, 0, 0.24)]
    two = decode(probs, masks, valid, ts, te, 6.0, thresholds=[0.5], m1=1, topk_classes=2)
    assert _as_tuples(two) == [(1.0, 3.0, 0, 0.24), (1.0, 3.0, 1, 0.2)]
    with pytest.raises(GsmtError, match="topk_classes"):
        decode(probs, masks, valid, ts, te, 6.0, topk_classes=3)
    with pytest.raises(GsmtError, match="mode"):
        decode(probs, masks, valid, ts, te, 6.0, mode="medium")


def test_theta_c_drops_low_scores():
    probs, masks, valid, ts, te = _sample(TWO_RUNS, P0)
    kw = dict(mode="short", thresholds=[0.5], m1=1)
    assert len(decode(probs, masks, valid, ts, te, 6.0, theta_c=0.0, **kw)) == 2
    assert _as_tuples(decode(probs, masks, valid, ts, te, 6.0, theta_c=0.5, **kw)) == [(0.0, 2.0, 0, 0.63)]
    assert len(decode(probs, masks, valid, ts, te, 6.0, theta_c=0.64, **kw)) == 0
    # the default theta_c = 0.1 drops a 0.2 * 0.45 = 0.09 candidate
    probs, masks, valid, ts, te = _sample({0: [0.45, 0, 0, 0, 0, 0]}, {0: [0.2, 0.1, 0.7]})
    assert len(decode(probs, masks, valid, ts, te, 6.0, thresholds=[0.4])) == 0


def test_m1_limits_snippets_and_breaks_ties_by_index():
    col = {t: [float(i == t) for i in range(T)] for t in range(T)}  # snippet t predicts itself
    probs, masks, valid, ts, te = _sample(col, {1: [0.6, 0.2, 0.2], 3: [0.9, 0.05, 0.05], 4: [0.6, 0.3, 0.1]})
    kw = dict(thresholds=[0.5], theta_c=0.0)
    # actionness: 3 (0.9), then 1 and 4 tie at 0.6 -> the lower index (1) first
    out = decode(probs, masks, valid, ts, te, 6.0, m1=2, **kw)
    assert sorted(out.segments[:, 0].tolist()) == [1.0, 3.0]
    out = decode(probs, masks, valid, ts, te, 6.0, m1=3, **kw)
    assert sorted(out.segments[:, 0].tolist()) == [1.0, 3.0, 4.0]
    out = decode(probs, masks, valid, ts, te, 6.0, m1=50, **kw)
    assert len(out) == T
    # m2 keeps the best scores
    out = decode(probs, masks, valid, ts, te, 6.0, m1=50, m2=2, **kw)
    np.testing.assert_allclose(out.scores, [0.9, 0.6])
    np.testing.assert_array_equal(out.segments, [[3, 4], [1, 2]])


def test_padding_never_selected_or_activated():
    col = [0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    probs, masks, valid, ts, te = _sample({1: col, 4: col, 5: col},
                                         {1: [0.6, 0.3, 0.1], 4: [0.99, 0, 0.01], 5: [0.99, 0, 0.01]})
    valid[4:] = False  # snippets 4, 5 are padding with the highest actionness
    ts[4:] = te[4:] = 0.0  # padding spans are meaningless
    out = decode(probs, masks, valid, ts, te, 6.0, mode="short", thresholds=[0.5], m1=1)
    # snippet 1 is the top valid one; its run stops at the last valid snippet 3
    assert _as_tuples(out) == [(0.0, 4.0, 0, 0.54)]
    out = decode(probs, masks, valid, ts, te, 6.0, mode="long", thresholds=[0.5], m1=50)
    assert _as_tuples(out) == [(0.0, 4.0, 0, 0.54)]
    assert len(decode(probs, masks, np.zeros(T, bool), ts, te, 6.0)) == 0


def test_window_offset_and_clipping_to_duration():
    probs, masks, valid, ts, te = _sample(TWO_RUNS, P0)
    out = decode(probs, masks, valid, ts + 10.0, te + 10.0, 100.0, mode="short", thresholds=[0.5], m1=1,
                 theta_c=0.0)
    assert _as_tuples(out) == [(10.0, 12.0, 0, 0.63), (13.0, 15.0, 0, 0.49)]
    # video of 4.5 s: the second run [3, 5] is clipped to [3, 4.5]; spans starting before 0 clip to 0
    out = decode(probs, masks, valid, ts - 0.5, te, 4.5, mode="short", thresholds=[0.5], m1=1, theta_c=0.0)
    assert _as_tuples(out) == [(0.0, 2.0, 0, 0.63), (2.5, 4.5, 0, 0.49)]


def test_to_video_time_shifts_and_clips():
    d = Detections([[0.0, 2.0], [3.0, 5.0]], [0, 1], [0.5, 0.4])
    out = to_video_time(d, 7.5, 11.0)
    np.testing.assert_array_equal(out.segments, [[7.5, 9.5], [10.5, 11.0]])
    np.testing.assert_array_equal(d.segments, [[0.0, 2.0], [3.0, 5.0]])  # input untouched


def _reference_decode(probs, masks, valid, ts, te, duration, mode, k, thresholds, m1, m2, theta_c,
                      mask_score="max"):
    """Plain loops over snippets, thresholds and runs; output sorted by (-score, -length, start, end,
    label), `long` by (-score, start, end, label)."""
    n_cls, n = probs.shape[0] - 1, probs.shape[1]
    act = {t: max(probs[:n_cls, t]) for t in range(n) if valid[t]}
    kept = sorted(act, key=lambda t: (-act[t], t))[:m1]
    best = {}
    for t in kept:
        classes = sorted(range(n_cls), key=lambda c: (-probs[c, t], c))[:k]
        for th in thresholds:
            on = [bool(valid[i]) and masks[i, t] >= th for i in range(n)]
            idx = [i for i in range(n) if on[i]]
            runs = []
            if mode in ("short", "own", "own+long"):
                i = 0
                while i < n:
                    if on[i]:
                        j = i
                        while j + 1 < n and on[j + 1]:
                            j += 1
                        runs.append((i, j))
                        i = j + 1
                    else:
                        i += 1
            if mode in ("own", "own+long"):
                runs = [(a, b) for a, b in runs if a <= t <= b]
            if mode in ("long", "own+long") and idx:
                runs.append((idx[0], idx[-1]))
            for a, b in runs:
                if mask_score == "iou":
                    inside = sum(masks[i, t] for i in range(a, b + 1) if valid[i])
                    total = sum(masks[i, t] for i in range(n) if valid[i])
                    factor = inside / (sum(1 for i in range(a, b + 1) if valid[i]) + total - inside)
                else:
                    factor = max(masks[i, t] for i in range(a, b + 1) if on[i])
                for c in classes:
                    key = (min(max(ts[a], 0.0), duration), min(max(te[b], 0.0), duration), c)
                    best[key] = max(best.get(key, -1.0), probs[c, t] * factor)
    out = sorted(((s, key) for key, s in best.items() if s >= theta_c),
                 key=lambda x: (-x[0], 0 if mode == "long" else x[1][0] - x[1][1], x[1]))
    return out[:m2]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["long", "short", "own", "own+long"])
@pytest.mark.parametrize("mask_score", ["max", "iou"])
def test_matches_plain_reference_loop(seed, mode, mask_score):
    rng = np.random.default_rng(seed)
    n, n_cls = 20, 4
    logits = rng.normal(size=(n_cls + 1, n)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    masks = rng.uniform(size=(n, n)) ** 2
    valid = np.arange(n) < n - 3 * (seed % 2)
    ts = np.arange(n) * 0.8 - 1.0
    te = ts + 0.8
    kw = dict(mode=mode, topk_classes=1 + seed % 2, thresholds=DEFAULT_THRESHOLDS, m1=8, m2=30, theta_c=0.05)
    out = decode(probs, masks, valid, ts, te, 14.0, mask_score=mask_score, **kw)
    ref = _reference_decode(probs, masks, valid, ts, te, 14.0, kw["mode"], kw["topk_classes"],
                            kw["thresholds"], kw["m1"], kw["m2"], kw["theta_c"], mask_score)
    assert len(out) == len(ref) > 0
    if mask_score == "max":
        np.testing.assert_array_equal(out.scores, [s for s, _ in ref])
    else:  # the reference sums in another order than the cumulative sums: the last bits may differ
        np.testing.assert_allclose(out.scores, [s for s, _ in ref], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(out.segments, [key[:2] for _, key in ref])
    np.testing.assert_array_equal(out.labels, [key[2] for _, key in ref])


@pytest.mark.parametrize("mode, mask_score", [("short", "max"), ("own", "max"), ("own+long", "iou")])
def test_decode_batch_matches_per_sample(mode, mask_score):
    rng = np.random.default_rng(7)
    b, n = 3, 10
    probs = rng.dirichlet(np.ones(4), size=(b, n)).transpose(0, 2, 1)
    masks = rng.uniform(size=(b, n, n))
    valid = np.ones((b, n), bool)
    valid[1, 7:] = False
    ts = np.tile(np.arange(n, dtype=float), (b, 1)) + np.array([[0.0], [5.0], [10.0]])
    durations = [20.0, 20.0, 18.0]
    outs = decode_batch(probs, masks, valid, ts, ts + 1, durations, mode=mode, mask_score=mask_score, m1=5)
    assert len(outs) == b
    for i in range(b):
        one = decode(probs[i], masks[i], valid[i], ts[i], ts[i] + 1, durations[i], mode=mode,
                     mask_score=mask_score, m1=5)
        assert len(one) > 0
        np.testing.assert_array_equal(outs[i].segments, one.segments)
        np.testing.assert_array_equal(outs[i].scores, one.scores)


def test_actionness_decode_hand_computed():
    probs = np.array([
        [0.2, 0.1, 0.7],
        [0.6, 0.3, 0.1],
        [0.2, 0.8, 0.0],
        [0.3, 0.1, 0.6],
        [0.1, 0.7, 0.2],
        [0.1, 0.05, 0.85],
    ]).T  # actionness = [0.2, 0.6, 0.8, 0.3, 0.7, 0.1]
    ts = np.arange(T, dtype=float)
    out = actionness_decode(probs, np.ones(T, bool), ts, ts + 1, 6.0, thresholds=[0.5])
    # run 1..2: mean P = (0.4, 0.55) -> class 1, mean actionness 0.7 -> 0.7 * 0.55 = 0.385
    # run 4..4: class 1 (0.7), actionness 0.7 -> 0.49
    np.testing.assert_array_equal(out.segments, [[4, 5], [1, 3]])
    np.testing.assert_array_equal(out.labels, [1, 1])
    np.testing.assert_allclose(out.scores, [0.49, 0.385])
    # theta 0.75 adds run 2..2 (class 1, 0.8 * 0.8 = 0.64); padding of snippet 4 removes that run
    valid = np.array([1, 1, 1, 1, 0, 1], bool)
    out = actionness_decode(probs, valid, ts, ts + 1, 6.0, thresholds=[0.5, 0.75], topk_classes=2,
                            theta_c=0.2)
    # topk=2 on run 1..2: class 1 (0.385) and class 0 (0.7 * 0.4 = 0.28); run 2..2 class 0 0.8*0.2 < 0.2
    np.testing.assert_array_equal(out.segments, [[2, 3], [1, 3], [1, 3]])
    np.testing.assert_array_equal(out.labels, [1, 1, 0])
    np.testing.assert_allclose(out.scores, [0.64, 0.385, 0.28])


def test_run_score_averages_the_class_probability_over_the_segment():
    # Snippet 2 (P[0] = 0.9) predicts a mask over snippets 1..3 (values 0.6, 0.8, 0.6); snippets 1
    # and 3 are background (P[0] = 0.1). Source score 0.9 * 0.8; run score mean(0.1, 0.9, 0.1) * 0.8.
    probs, masks, valid, t_start, t_end = _sample({2: [0, 0.6, 0.8, 0.6, 0, 0]}, {2: [0.9, 0.05, 0.05]})
    kw = dict(mode="short", thresholds=[0.5], m1=1, theta_c=0.0)
    src = decode(probs, masks, valid, t_start, t_end, 6.0, **kw)
    run = decode(probs, masks, valid, t_start, t_end, 6.0, score="run", **kw)
    assert _as_tuples(src) == [(1.0, 4.0, 0, round(0.9 * 0.8, 12))]
    assert _as_tuples(run) == [(1.0, 4.0, 0, round((0.1 + 0.9 + 0.1) / 3 * 0.8, 12))]
    with pytest.raises(GsmtError):
        decode(probs, masks, valid, t_start, t_end, 6.0, score="nope", **kw)


# ---------------------------------------------------------------- multi-label decoding (issue 32)


def _nested_pairs():
    """Six unit snippets; a long instance of class 1 over all of them and a short one of class 0 over
    snippets 2-3. Every snippet is class 1 (0.9), snippets 2-3 also class 0 (0.8)."""
    probs = np.full((1, 2, 6), 0.01)
    probs[0, 1] = 0.9
    probs[0, 0, 2:4] = 0.8
    valid = np.ones((1, 6), bool)
    return probs, valid, np.arange(6.0)[None], np.arange(6.0)[None] + 1.0


def test_select_pairs_takes_every_class_above_theta_c_most_probable_first():
    probs, valid, _, _ = _nested_pairs()
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=20)
    assert list(zip(snippet[0].tolist(), cls[0].tolist())) == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1),
                                                               (2, 0), (3, 0)]
    snippet, cls = select_pairs(probs, valid, theta_c=0.85, m1=20)  # class 0 is below theta_c
    assert cls[0].tolist() == [1] * 6
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=3)  # at most m1 pairs
    assert snippet[0].tolist() == [0, 1, 2]
    valid[0, 5] = False
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=20)
    assert 5 not in snippet[0].tolist()


def test_select_pairs_colabel_ratio_keeps_labels_near_the_top_one():
    """`colabel_ratio`: snippets 2-3 (class 1 at 0.9, class 0 at 0.8) keep class 0 at a ratio up to
    0.8 / 0.9 and drop it above; the top class always stays; 0 is every class above theta_c."""
    probs, valid, _, _ = _nested_pairs()
    every = select_pairs(probs, valid, theta_c=0.1, m1=20)
    for ratio in (0.0, 0.5, 0.8 / 0.9):
        kept = select_pairs(probs, valid, theta_c=0.1, m1=20, colabel_ratio=ratio)
        assert all(np.array_equal(a, b) for a, b in zip(kept, every)), ratio
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=20, colabel_ratio=0.9)
    assert list(zip(snippet[0].tolist(), cls[0].tolist())) == [(t, 1) for t in range(6)]
    probs[0, 0, 3] = 0.2  # a half-match beside a confident class
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=20, colabel_ratio=0.5)
    assert list(zip(snippet[0].tolist(), cls[0].tolist())) == [(t, 1) for t in range(6)] + [(2, 0)]


def test_long_and_short_instances_of_two_classes_decode_with_their_own_extents():
    """Each (snippet, class) pair has its own mask: the long one under class 1, the short one under
    class 0, so both instances come out of decoding, each with its own extent and label."""
    probs, valid, t_start, t_end = _nested_pairs()
    snippet, cls = select_pairs(probs, valid, theta_c=0.1, m1=20)
    columns = np.where((cls == 1)[..., None], 0.95, np.array([0, 0, 0.95, 0.95, 0, 0])[None, None, :])
    dets = decode_pairs_many(probs, columns, snippet, cls, valid, t_start, t_end, np.array([6.0]), mode="own",
                             thresholds=[0.5], m2=10, theta_c=0.1).split(1)[0]
    assert dets.segments.tolist() == [[0.0, 6.0], [2.0, 4.0]]
    assert dets.labels.tolist() == [1, 0]
    np.testing.assert_allclose(dets.scores, [0.9 * 0.95, 0.8 * 0.95])


def test_decode_pairs_equals_decode_when_each_snippet_has_one_pair():
    """With one pair per snippet (its top class, `topk_classes=1`) and that snippet's mask, the
    multi-label decoding is the single-label one, candidate for candidate."""
    rng = np.random.default_rng(3)
    b, k, t = 2, 3, 12
    logits = rng.normal(size=(b, k + 1, t))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    masks = rng.uniform(size=(b, t, t))
    valid = np.ones((b, t), bool)
    valid[1, 9:] = False
    t_start = np.tile(np.arange(t, dtype=float), (b, 1))
    t_end, durations = t_start + 1.0, np.array([12.0, 9.0])
    for mode in ("own", "own+long", "short", "long"):
        for mask_score in ("max", "iou"):
            single = decode_many(probs, masks, valid, t_start, t_end, durations, mode=mode, m1=t, m2=50,
                                 thresholds=[0.3, 0.6], theta_c=0.0, mask_score=mask_score)
            snippet = np.where(valid, np.arange(t)[None], -1)
            cls = np.where(valid, probs[:, :k].argmax(1), -1)
            columns = np.take_along_axis(masks, np.maximum(snippet, 0)[:, None, :], axis=2).transpose(0, 2, 1)
            multi = decode_pairs_many(probs[:, :k], columns, snippet, cls, valid, t_start, t_end, durations,
                                      mode=mode, m2=50, thresholds=[0.3, 0.6], theta_c=0.0, mask_score=mask_score)
            for name in ("group", "segments", "labels", "scores"):
                np.testing.assert_array_equal(getattr(single, name), getattr(multi, name), err_msg=f"{mode} {name}")


def test_select_pairs_per_snippet_gives_the_one_label_candidates():
    """`per_snippet=k`: the m1 most action-like snippets with their top k classes above theta_c, so a
    model whose pairs share their snippet's mask decodes exactly the one-label candidates of
    `decode_many(m1, topk_classes=k)`, padding and ties included."""
    rng = np.random.default_rng(5)
    b, k, t = 3, 4, 16
    probs = rng.dirichlet(np.ones(k + 1), size=(b, t)).transpose(0, 2, 1)  # [B, K+1, T]
    probs[2, :k, 3] = probs[2, :k, 4] = 0.2  # a tie in actionness and classes
    probs[2, k, 3:5] = 0.2
    masks = rng.uniform(size=(b, t, t))
    valid = np.ones((b, t), bool)
    valid[1, 5:] = False  # fewer valid snippets than m1
    t_start = np.tile(np.arange(t, dtype=float), (b, 1))
    t_end, durations = t_start + 1.0, np.array([16.0, 5.0, 16.0])
    for m1, topk, theta_c in ((6, 2, 0.15), (16, 3, 0.0), (3, 1, 0.3)):
        single = decode_many(probs, masks, valid, t_start, t_end, durations, mode="own", m1=m1, m2=80,
                             topk_classes=topk, thresholds=[0.3, 0.6], theta_c=theta_c)
        snippet, cls = select_pairs(probs[:, :k], valid, theta_c, m1, per_snippet=topk)
        assert (snippet >= 0).sum(1).max() <= m1 * topk
        assert np.all(valid[np.arange(b)[:, None], np.maximum(snippet, 0)] | (snippet < 0))
        columns = np.take_along_axis(masks, np.maximum(snippet, 0)[:, None, :], axis=2).transpose(0, 2, 1)
        multi = decode_pairs_many(probs[:, :k], columns, snippet, cls, valid, t_start, t_end, durations,
                                  mode="own", m2=80, thresholds=[0.3, 0.6], theta_c=theta_c)
        for name in ("group", "segments", "labels", "scores"):
            np.testing.assert_array_equal(getattr(single, name), getattr(multi, name), err_msg=f"{m1} {name}")
    # the nested pair: m1 = 2 snippets (the first two of equal actionness 0.9), both classes above 0.1
    nested, nvalid, _, _ = _nested_pairs()
    snippet, cls = select_pairs(nested, nvalid, theta_c=0.1, m1=2, per_snippet=2)
    assert list(zip(snippet[0].tolist(), cls[0].tolist())) == [(0, 1), (1, 1)]
    snippet, cls = select_pairs(nested, nvalid, theta_c=0.1, m1=6, per_snippet=2)
    assert list(zip(snippet[0].tolist(), cls[0].tolist())) == [(0, 1), (1, 1), (2, 1), (2, 0), (3, 1), (3, 0),
                                                               (4, 1), (5, 1)]
