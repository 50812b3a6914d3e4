"""Per-frame mAP (`gsmt.evaluation.frames`, `gsmt eval --frame-map`): a hand-computed case, the AP
against Charades' own formula, the cover maximum against a plain loop, the command."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from conftest import assert_fatal, cli
from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation.frames import _cover_max, average_precision, evaluate_frames, frame_times


def video(vid, duration, segments, labels):
    return Video(id=vid, subset="test", duration=duration,
                 segments=np.array(segments, dtype=np.float64).reshape(-1, 2),
                 labels=np.array(labels, dtype=np.int64))


def p(label, score, start, end):
    return {"label": label, "score": score, "segment": [start, end]}


# Two videos, two co-occurring classes. At 1 frame per second the frames are A: t = 0, 1, 2, 3 and
# B: t = 0, 1, 2 (t < duration); a segment covers the frames with start <= t <= end.
GT = Annotations(classes=["jump", "run"], videos=[
    video("A", 4.0, [[0.5, 2.5], [1.5, 3.5]], [0, 1]),  # jump: A1 A2; run: A2 A3 (both at t = 2)
    video("B", 3.0, [[0.0, 0.5]], [0]),  # jump: B0
])
PRED = {
    "A": [p("jump", 0.9, 0.8, 1.2),  # jump: A1
          p("jump", 0.6, 1.8, 3.0),  # jump: A2 A3
          p("run", 0.8, 2.0, 3.0),  # run: A2 A3
          p("run", 0.3, 0.0, 0.9),  # run: A0
          p("run", 0.95, 3.0, 2.0)],  # end < start: covers nothing
    "B": [p("jump", 0.6, 1.0, 2.0),  # jump: B1 B2
          p("run", 0.85, 0.0, 1.0),  # run: B0 B1
          p("swim", 0.99, 0.0, 3.0)],  # a label the ground truth lacks: left out
    "C": [p("jump", 1.0, 0.0, 9.0)],  # a video not evaluated: left out
}
# jump, frames by score: 0.9 {A1+}; 0.6 {A2+, A3, B1, B2}; 0 {A0, B0+}. 3 positives.
#   AP = (1 x 1/1 + 1 x 2/5 + 1 x 3/7) / 3 = (1 + 2/5 + 3/7) / 3 = 64/105
# run, frames by score: 0.85 {B0, B1}; 0.8 {A2+, A3+}; 0.3 {A0}; 0 {A1, B2}. 2 positives.
#   AP = (2 x 2/4) / 2 = 1/2
JUMP, RUN = Fraction(64, 105), Fraction(1, 2)
# Charades' rule with 2 frames per video: A: t = 0, 2; B: t = 0, 1.5.
# jump: positives A2, B0; scores 0.6 {A2+, B1.5}, 0 {A0, B0+}: AP = (1/2 + 2/4) / 2 = 1/2
# run: positive A2; scores 0.85 {B0}, 0.8 {A2+}, 0.3 {A0}, 0 {B1.5}: AP = 1/2


def test_hand_computed_frame_map():
    m = evaluate_frames(GT, PRED, frame_rate=1)
    assert m.per_class_ap == {"jump": pytest.approx(float(JUMP), abs=1e-15),
                              "run": pytest.approx(float(RUN), abs=1e-15)}
    assert m.mAP == pytest.approx(float((JUMP + RUN) / 2), abs=1e-15)  # 233/420
    assert (m.frames, m.videos, m.frame_rate, m.frames_per_video) == (7, 2, 1.0, None)
    c = evaluate_frames(GT, PRED, frames_per_video=2)
    assert c.per_class_ap == {"jump": 0.5, "run": 0.5} and c.mAP == 0.5 and c.frames == 4


def test_frame_times():
    np.testing.assert_array_equal(frame_times(4.0, frame_rate=1), [0, 1, 2, 3])
    np.testing.assert_array_equal(frame_times(3.01, frame_rate=1), [0, 1, 2, 3])
    assert len(frame_times(10.0)) == 250  # 25 per second by default, t < duration
    np.testing.assert_array_equal(frame_times(30.0, frames_per_video=25), np.arange(25) / 25 * 30.0)
    for bad in ({"frame_rate": 0}, {"frame_rate": float("nan")}, {"frames_per_video": 0},
                {"frames_per_video": 2.5}, {"frame_rate": 1, "frames_per_video": 2}):
        with pytest.raises(GsmtError):
            frame_times(5.0, **bad)


def _charades_ap(scores: np.ndarray, positive: np.ndarray) -> float:
    """Charades' THUMOSeventclspr: precision at each positive's rank, averaged (one at a time)."""
    order = np.argsort(-scores, kind="stable")
    tp, ap = 0, 0.0
    for rank, i in enumerate(order, 1):
        if positive[i]:
            tp += 1
            ap += tp / rank
    return ap / positive.sum()


def test_average_precision_is_charades_without_ties_and_order_free_with_them():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        scores, positive = rng.random(n), rng.random(n) < 0.3
        positive[rng.integers(n)] = True
        assert average_precision(scores, positive) == pytest.approx(_charades_ap(scores, positive), rel=1e-12)
        tied = np.round(scores * 3) / 3 * (rng.random(n) < 0.6)  # few values, many zeros
        perm = rng.permutation(n)
        assert average_precision(tied, positive) == pytest.approx(average_precision(tied[perm], positive[perm]),
                                                                  rel=1e-12)
    assert np.isnan(average_precision(np.ones(3), np.zeros(3, dtype=bool)))
    # all tied: the AP is the share of positives
    assert average_precision(np.zeros(8), np.arange(8) < 2) == 0.25


def test_cover_max_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(1, 200))
        m = int(rng.integers(0, 40))
        lo = rng.integers(0, n + 1, m)
        hi = np.minimum(lo + rng.integers(-3, n, m), n)
        score = rng.normal(size=m)
        want = np.full(n, -np.inf)
        for a, b, s in zip(lo, hi, score):
            want[a:b] = np.maximum(want[a:b], s)
        np.testing.assert_array_equal(_cover_max(n, lo, hi, score), want)


def test_eval_frame_map_prints_and_writes_json(tmp_path, capsys):
    gt, pred, out = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "m.json"
    gt.write_text(json.dumps({"classes": ["jump", "run"], "database": {
        "A": {"subset": "test", "duration": 4.0, "annotations": [
            {"label": "jump", "segment": [0.5, 2.5]}, {"label": "run", "segment": [1.5, 3.5]}]},
        "B": {"subset": "test", "duration": 3.0, "annotations": [{"label": "jump", "segment": [0.0, 0.5]}]}}}))
    pred.write_text(json.dumps({"results": PRED}))
    code, stdout, _ = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--subset", "test", "--frame-map",
                          "--frame-rate", "1", "--tiou", "multithumos", "--json", out)
    assert code == 0
    assert "frame mAP: 55.48 (2 classes, 7 frames of 2 videos, 1 frames per second)" in stdout
    doc = json.loads(out.read_text())
    assert len(doc["tiou"]) == 9
    assert doc["frame_mAP"]["mAP"] == pytest.approx(233 / 420, abs=1e-15)
    assert doc["frame_mAP"]["frame_rate"] == 1.0 and doc["frame_mAP"]["frames_per_video"] is None
    # --frames-per-video alone turns it on; without either option nothing of it is printed or written
    code, stdout, _ = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--frames-per-video", "2")
    assert code == 0 and "frame mAP: 50.00 (2 classes, 4 frames of 2 videos, 2 frames per video)" in stdout
    code, stdout, _ = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", out)
    assert code == 0 and "frame mAP" not in stdout and "frame_mAP" not in json.loads(out.read_text())
    code, stdout, _ = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--frame-map")
    assert code == 0 and "25 frames per second" in stdout


def test_eval_frame_options_are_checked(tmp_path, capsys):
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    for argv, problem in ((["--frame-rate", "1", "--frames-per-video", "2"], "not allowed with argument"),
                          (["--frame-rate", "0"], "--frame-rate: must be"),
                          (["--frames-per-video", "1.5"], "--frames-per-video: must be")):
        with pytest.raises(SystemExit) as exc:
            cli(capsys, "eval", "--gt", gt, "--pred", pred, *argv)
        assert exc.value.code == 2 and problem in capsys.readouterr().err
    gt.write_text(json.dumps({"database": {"A": {"subset": "test", "duration": 1e6, "annotations": [
        {"label": "jump", "segment": [0.5, 2.5]}]}}}))
    pred.write_text(json.dumps({"results": {"A": []}}))
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred, "--frame-rate", "1000"), "--frame-rate",
                 problem="sample fewer")
