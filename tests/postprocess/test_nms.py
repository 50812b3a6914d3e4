"""Tests for gsmt.postprocess.nms: 1-D IoU and greedy Soft-NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gsmt.errors import GsmtError
from gsmt.postprocess import Detections, merge_windows, segment_iou, soft_nms

# A = [0, 10], B = [5, 15], C = [0, 10] (same as A), D = [20, 30]
# iou(A, B) = 5 / 15 = 1/3, iou(A, C) = 1, iou(B, C) = 1/3, D overlaps nothing.
SEGS = np.array([[0.0, 10.0], [5.0, 15.0], [0.0, 10.0], [20.0, 30.0]])
SCORES = np.array([0.9, 0.8, 0.7, 0.6])


def test_segment_iou_hand_values():
    a = np.array([[0.0, 10.0], [3.0, 3.0]])
    b = np.array([[5.0, 15.0], [10.0, 20.0], [0.0, 10.0], [2.0, 4.0], [3.0, 3.0], [-5.0, 1.0]])
    iou = segment_iou(a, b)
    assert iou.shape == (2, 6)
    # [0,10] vs: 5/15, touching -> 0, identical -> 1, inside 2/10, zero-length inside -> 0/10, 1/15
    np.testing.assert_allclose(iou[0], [1 / 3, 0.0, 1.0, 0.2, 0.0, 1 / 15])
    # zero-length [3,3]: 0/0 against itself is taken as 0; 0/2 against [2,4]
    np.testing.assert_array_equal(iou[1], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(segment_iou(b, a), iou.T)
    assert segment_iou(np.zeros((0, 2)), b).shape == (0, 6)


def test_gaussian_decay_class_agnostic_hand_computed():
    out = soft_nms(SEGS, SCORES, np.zeros(4), sigma=0.5, per_class=False)
    # pick A (0.9). B: 0.8 * exp(-(1/3)^2 / 0.5) = 0.8 * exp(-2/9) = 0.640590...
    #               C: 0.7 * exp(-1^2 / 0.5)    = 0.7 * exp(-2)   = 0.094735...;  D: 0.6 (iou 0)
    # pick B (0.6406 > 0.6). C: 0.094735 * exp(-2/9) = 0.075858...
    # pick D (0.6), then C (0.0759).
    b = 0.8 * math.exp(-2 / 9)
    c = 0.7 * math.exp(-2) * math.exp(-2 / 9)
    np.testing.assert_allclose(out.scores, [0.9, b, 0.6, c], rtol=1e-12)
    np.testing.assert_array_equal(out.segments, SEGS[[0, 1, 3, 2]])
    assert out.scores[1] == pytest.approx(0.6405899, abs=1e-7)
    assert out.scores[3] == pytest.approx(0.0758576, abs=1e-7)


def test_gaussian_decay_per_class_only_between_same_labels():
    labels = np.array([0, 1, 0, 0])
    out = soft_nms(SEGS, SCORES, labels, sigma=0.5)
    # B is alone in class 1: never decayed. C is decayed by A only: 0.7 * exp(-2) = 0.094735...
    np.testing.assert_allclose(out.scores, [0.9, 0.8, 0.6, 0.7 * math.exp(-2)], rtol=1e-12)
    np.testing.assert_array_equal(out.labels, [0, 1, 0, 0])
    np.testing.assert_array_equal(out.segments, SEGS[[0, 1, 3, 2]])
    # the same input class-agnostic decays B
    assert soft_nms(SEGS, SCORES, labels, sigma=0.5, per_class=False).scores[1] < 0.8


def test_linear_decay_hand_computed():
    labels = np.zeros(4)
    out = soft_nms(SEGS, SCORES, labels, method="linear", iou_threshold=0.3)
    # pick A. B: iou 1/3 > 0.3 -> 0.8 * (1 - 1/3) = 0.5333...; C: iou 1 -> 0.7 * 0 = 0 < 1e-3, dropped
    # pick D (0.6), then B (0.5333).
    np.testing.assert_allclose(out.scores, [0.9, 0.6, 0.8 * (2 / 3)], rtol=1e-12)
    np.testing.assert_array_equal(out.segments, SEGS[[0, 3, 1]])
    # at the default 0.5 threshold B (iou 1/3) is not decayed; C still is (iou 1 > 0.5)
    out = soft_nms(SEGS, SCORES, labels, method="linear")
    np.testing.assert_allclose(out.scores, [0.9, 0.8, 0.6])
    np.testing.assert_array_equal(out.segments, SEGS[[0, 1, 3]])


def test_min_score_max_keep_and_empty():
    out = soft_nms(SEGS, SCORES, np.zeros(4), sigma=0.5, per_class=False, min_score=0.1)
    assert len(out) == 3  # C decays to 0.0759 < 0.1
    out = soft_nms(SEGS, SCORES, np.zeros(4), sigma=0.5, per_class=False, max_keep=2)
    np.testing.assert_array_equal(out.segments, SEGS[[0, 1]])
    # inputs already below min_score are never kept
    assert len(soft_nms(SEGS, np.full(4, 1e-4), np.zeros(4))) == 0
    empty = soft_nms(np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    assert len(empty) == 0 and empty.segments.shape == (0, 2)


def test_bad_method_is_a_user_error():
    with pytest.raises(GsmtError, match="unknown method"):
        soft_nms(SEGS, SCORES, np.zeros(4), method="hard")


def _reference_soft_nms(segs, scores, labels, *, sigma, method, iou_threshold, per_class, min_score, max_keep):
    """Plain per-class Soft-NMS: one independent greedy loop per class, then a global sort.

    Tie rule: within a class the highest score is picked, equal scores by lowest input index; the
    final list is sorted by (-score, input index).
    """
    groups = [np.arange(len(scores))]
    if per_class:
        groups = [np.nonzero(labels == c)[0] for c in np.unique(labels)]
    kept = []
    for group in groups:
        current = {int(i): float(scores[i]) for i in group if scores[i] >= min_score}
        while current:
            p = max(current, key=lambda i: (current[i], -i))
            kept.append((current.pop(p), p))
            for i in list(current):
                inter = max(0.0, min(segs[i, 1], segs[p, 1]) - max(segs[i, 0], segs[p, 0]))
                union = (segs[i, 1] - segs[i, 0]) + (segs[p, 1] - segs[p, 0]) - inter
                iou = inter / union if union > 0 else 0.0
                if method == "gaussian":
                    w = float(np.exp(-(iou * iou) / sigma))
                else:
                    w = 1.0 - iou if iou > iou_threshold else 1.0
                current[i] *= w
                if current[i] < min_score:
                    del current[i]
    kept.sort(key=lambda x: (-x[0], x[1]))
    kept = kept[:max_keep]
    return np.array([s for s, _ in kept]), np.array([i for _, i in kept], dtype=np.int64)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
@pytest.mark.parametrize("per_class", [True, False])
def test_matches_plain_reference_loop(seed, method, per_class):
    rng = np.random.default_rng(seed)
    n = 60
    # integer grid and coarse scores: identical segments, zero IoUs and exact score ties all occur
    start = rng.integers(0, 40, n).astype(float)
    segs = np.stack([start, start + rng.integers(1, 12, n)], axis=1)
    scores = np.round(rng.uniform(0.0, 1.0, n), 1 if seed % 2 else 6)
    labels = rng.integers(0, 3, n)
    options = dict(sigma=0.4 + 0.1 * seed, method=method, iou_threshold=0.3, per_class=per_class,
                   min_score=0.05, max_keep=25 + seed)
    out = soft_nms(segs, scores, labels, **options)
    ref_scores, ref_idx = _reference_soft_nms(segs, scores, labels, **options)
    assert len(out) == len(ref_idx) > 0
    np.testing.assert_allclose(out.scores, ref_scores, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(out.segments, segs[ref_idx])
    np.testing.assert_array_equal(out.labels, labels[ref_idx])
    assert np.all(np.diff(out.scores) <= 0)


def test_merge_windows_is_concatenate_then_soft_nms():
    w1 = Detections(SEGS[:2], [0, 0], SCORES[:2])
    w2 = Detections(SEGS[2:], [0, 0], SCORES[2:])
    merged = merge_windows([w1, w2], sigma=0.5)
    direct = soft_nms(SEGS, SCORES, np.zeros(4), sigma=0.5)
    np.testing.assert_array_equal(merged.segments, direct.segments)
    np.testing.assert_array_equal(merged.scores, direct.scores)
    assert len(merge_windows([])) == 0


def test_decay_fragments_hand_computed():
    from gsmt.postprocess.decode import FlatDetections
    from gsmt.postprocess.nms import decay_fragments

    # video 0: whole [0, 10] (0.8); its first phase [0, 3] (0.9, higher: kept); its last phase
    # [7.5, 10] (0.6, inside and 4x shorter: decayed); [8, 12] (0.5: only half inside); [2, 4] of
    # label 1 (another class: kept). Video 1: [0, 4] (0.7) inside video 0's whole: other video, kept.
    dets = FlatDetections(np.array([0, 0, 0, 0, 0, 1]),
                          np.array([[0, 3], [0, 10], [7.5, 10], [8, 12], [2, 4], [0, 4]], dtype=float),
                          np.array([0, 0, 0, 0, 1, 0]), np.array([0.9, 0.8, 0.6, 0.5, 0.4, 0.7]))
    out = decay_fragments(dets, 0.2)
    np.testing.assert_array_equal(out.group, [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(out.scores, [0.9, 0.8, 0.5, 0.4, 0.12, 0.7])
    np.testing.assert_array_equal(out.segments[:, 0], [0, 0, 8, 2, 7.5, 0])
    # [4.5, 10] is inside too but more than half as long as [0, 10] (5.5 > 10 / 2): not a fragment
    near_whole = FlatDetections(np.zeros(2, np.int64), np.array([[0, 10], [4.5, 10]], dtype=float),
                                np.zeros(2, np.int64), np.array([0.8, 0.6]))
    np.testing.assert_allclose(decay_fragments(near_whole, 0.2).scores, [0.8, 0.6])
    assert decay_fragments(dets, 1.0) is dets  # off
