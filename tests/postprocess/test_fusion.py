"""Video-level class fusion with the video's own detections (`decode.video_fusion`)."""

from __future__ import annotations

import math

import numpy as np

from gsmt.postprocess.decode import FlatDetections
from gsmt.postprocess.fusion import weigh_by_video_classes


def _dets(group, labels, scores) -> FlatDetections:
    n = len(scores)
    segments = np.stack([np.arange(n, dtype=float), np.arange(n, dtype=float) + 1.0], axis=1)
    return FlatDetections(np.asarray(group, np.int64), segments, np.asarray(labels, np.int64),
                          np.asarray(scores, dtype=float))


def test_a_class_the_video_barely_holds_is_pushed_down_by_hand():
    # Video 0: class 0 holds 0.8 + 0.4 = 1.2, class 1 holds 0.6 -> class 1 weighs (0.6 / 1.2) ** 0.5.
    # Video 1: one class, weight 1. Video 2: class 2 holds 0.3 + 0.3, class 0 holds 0.2 -> (0.2 / 0.6) ** 0.5.
    dets = _dets([0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 0, 3, 3, 2, 2, 0], [0.8, 0.6, 0.4, 0.9, 0.1, 0.3, 0.3, 0.2])
    out = weigh_by_video_classes(dets, 0.5)
    assert out.group.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(out.scores, [0.8, 0.6 * math.sqrt(0.5), 0.4, 0.9, 0.1, 0.3, 0.3, 0.2 * math.sqrt(1 / 3)],
                               rtol=0, atol=1e-15)
    assert out.labels.tolist() == [0, 1, 0, 3, 3, 2, 2, 0]
    # each row keeps its own segment (rows of video 0: 0 -> 0, 1 -> 1, 2 -> 2; the equal 0.3 keep their order)
    assert out.segments[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


def test_the_weights_reorder_a_video_and_power_1_is_the_plain_share():
    dets = _dets([0, 0, 0], [0, 1, 1], [0.5, 0.45, 0.05])  # class 1 holds 0.5 as class 0 does: weight 1
    assert np.array_equal(weigh_by_video_classes(dets, 1.0).scores, dets.scores)
    dets = _dets([0, 0, 0], [1, 0, 0], [0.9, 0.8, 0.7])  # class 1 holds 0.9 of class 0's 1.5
    out = weigh_by_video_classes(dets, 1.0)
    np.testing.assert_allclose(out.scores, [0.8, 0.7, 0.9 * 0.9 / 1.5], rtol=0, atol=1e-15)
    assert out.labels.tolist() == [0, 0, 1] and out.segments[:, 0].tolist() == [1, 2, 0]


def test_power_0_no_detections_and_zero_scores_leave_everything_as_it_is():
    dets = _dets([0, 0], [0, 1], [0.9, 0.1])
    assert weigh_by_video_classes(dets, 0.0) is dets
    empty = FlatDetections.empty()
    assert len(weigh_by_video_classes(empty, 0.5)) == 0
    zero = _dets([0, 0], [0, 1], [0.0, 0.0])
    out = weigh_by_video_classes(zero, 0.5)
    assert out.scores.tolist() == [0.0, 0.0] and np.isfinite(out.scores).all()
