"""Tests for `gsmt analyze` (gsmt.evaluation.analysis): hand-built error types, the order rule,
bin edges, the bins' mAP rule, equality with the evaluator, an empty prediction file, pictures
and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from gsmt.annotations.types import Annotations, Video
from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.evaluation import evaluate_detection
from gsmt.evaluation.analysis import (
    BIN_NAMES,
    COVERAGE_EDGES,
    ERROR_TYPES,
    LENGTH_EDGES,
    analyze_detection,
    bin_index,
    classify,
)
from gsmt.evaluation.matching import ground_truth_arrays, match_predictions, match_video_ids
from gsmt.viz.analysis import (
    ERROR_COLORS,
    fp_pie_figure,
    fp_profile_figure,
    map_bins_figure,
    plot_analysis,
)

JSON_KEYS = {"tiou", "num_gt", "num_predictions", "counts", "profile", "by_length", "by_coverage",
             "false_negatives", "mAP_tiou", "average_mAP", "localization_kinds"}
PICTURES = ("fp_profile.png", "fp_pie.png", "map_bins.png")


def video(vid, segments, labels, *, duration=100.0, subset="validation"):
    return Video(id=vid, subset=subset, duration=duration,
                 segments=np.array(segments, dtype=np.float64).reshape(-1, 2),
                 labels=np.array(labels, dtype=np.int64))


def p(label, score, start, end):
    return {"label": label, "score": score, "segment": [start, end]}


def zero_counts():
    return dict.fromkeys(ERROR_TYPES, 0)


# ------------------------------------------------------------------ error types


def test_co_occurring_instances_of_two_labels_are_two_true_positives():
    # jump and run over the same 10 s (co-occurring, as in MultiTHUMOS): one prediction per label
    ann = Annotations(classes=["jump", "run"], videos=[video("a", [[10, 20], [10, 20]], [0, 1])])
    for preds in ({"a": [p("jump", 0.9, 10, 20), p("run", 0.8, 10, 20)]},
                  {"a": [p("run", 0.9, 10, 20), p("jump", 0.8, 10, 20)]}):  # either label ranked first
        r = analyze_detection(ann, preds)
        assert r.types == ["true_positive", "true_positive"]
        assert r.counts == {**zero_counts(), "true_positive": 2}
        assert r.false_negatives["M"] == 0.0 and r.average_mAP == 1.0
    # a second jump on the same extent is a double detection (not a wrong label for run's instance);
    # a run at tIoU 0.43 with its own [40, 50] is a localization error; a jump meeting only run's
    # [40, 50] (tIoU 0.9) is the one wrong label
    ann = Annotations(classes=["jump", "run"], videos=[video("a", [[10, 20], [10, 20], [40, 50]], [0, 1, 1])])
    preds = {"a": [p("jump", 0.9, 10, 20), p("run", 0.8, 10, 20), p("jump", 0.7, 10, 19.5),
                   p("run", 0.6, 44, 54), p("jump", 0.5, 41, 50)]}
    assert analyze_detection(ann, preds).types == [
        "true_positive", "true_positive", "double_detection", "localization", "wrong_label"]


def test_each_type_and_the_order_rule():
    ann = Annotations(classes=["x", "y", "z"], videos=[
        video("a", [[10, 20], [30, 40], [38, 48], [70, 80]], [0, 0, 1, 1]),
        video("b", [[100, 110], [104, 114]], [0, 0]),
    ])
    preds = {
        "a": [
            p("x", 0.99, 10, 20),  # tIoU 1 with x [10, 20]: true positive
            p("x", 0.98, 10, 19),  # 0.9 with the same, already matched: double detection
            p("x", 0.97, 35, 47),  # 0.69 with y [38, 48] and 0.29 with x [30, 40]: wrong label, not localization
            p("x", 0.96, 30, 34),  # 0.4 with x [30, 40] (unmatched, below a): localization
            p("z", 0.95, 70, 74),  # 0.4 with y [70, 80], nothing of its own label: confusion
            p("x", 0.94, 90, 95),  # no overlap: background
            p("w", 0.93, 70, 80),  # a label no ground truth has, 1.0 with y: wrong label
            p("x", 0.92, 48, 49.5),  # touches y [38, 48] at one point only: background
        ],
        "b": [
            # 0.583 with x [100, 110], 0.727 with x [104, 114]: the highest tIoU is matched ...
            p("x", 0.91, 103, 112),
            # ... so this one still finds [100, 110] free: a second true positive
            p("x", 0.90, 100, 110),
            p("x", 0.89, 101, 110),  # 0.9 with [100, 110], now matched: double detection
        ],
    }
    r = analyze_detection(ann, preds, tiou_set=[0.5])
    assert r.types == ["true_positive", "double_detection", "wrong_label", "localization", "confusion",
                       "background", "wrong_label", "background",
                       "true_positive", "true_positive", "double_detection"]
    assert r.counts == {"true_positive": 3, "double_detection": 2, "wrong_label": 2, "localization": 1,
                        "confusion": 1, "background": 2}
    assert (r.num_gt, r.num_predictions) == (6, 11)
    # blocks of G = 6: ranks 0-5, then 6-10
    assert r.profile[0] == {"true_positive": 1, "double_detection": 1, "wrong_label": 1, "localization": 1,
                            "confusion": 1, "background": 1}
    assert r.profile[1] == {"true_positive": 2, "double_detection": 1, "wrong_label": 1, "localization": 0,
                            "confusion": 0, "background": 1}
    assert r.profile[2:] == [zero_counts()] * 8
    # missed: x [30, 40], y [38, 48], y [70, 80]; all ground truth lies in length bin M (6, 12]
    assert r.false_negatives == {"XS": None, "S": None, "M": 0.5, "L": None, "XL": None}


def test_localization_errors_by_kind():
    ann = Annotations(classes=["x", "y"], videos=[
        video("a", [[10, 20], [30, 40], [50, 60], [80, 100], [60, 75]], [0, 0, 0, 0, 1])])
    preds = {"a": [
        p("x", 0.9, 12, 38),  # over 8/10 of x [10, 20] and of x [30, 40]: merged (tIoU 0.29 with each)
        p("x", 0.8, 50, 53),  # all inside x [50, 60]: too short
        p("x", 0.7, 79, 89),  # 9 of its 10 s inside x [80, 100], exactly 90%: too short
        p("x", 0.6, 78.9, 88.9),  # 89% inside, 45% of the instance: shifted
        p("x", 0.5, 28, 52),  # all of x [30, 40] inside it: too long
        # all of x [50, 60] and 12 of 15 s of y [60, 75] (tIoU 0.48): only its own label can merge
        p("x", 0.4, 50, 72),
    ]}
    r = analyze_detection(ann, preds, tiou_set=[0.5])
    assert r.types == ["localization"] * 6
    assert r.localization_kinds == {  # G = 5: the last prediction is in the top N only
        "top_G": {"merged": 1, "too_short": 2, "too_long": 1, "shifted": 1},
        "top_N": {"merged": 1, "too_short": 2, "too_long": 2, "shifted": 1}}
    table = r.format_table()
    assert "  too short              2   40.0%       2   33.3%" in table
    assert table.index("localization") < table.index("  merged") < table.index("confusion")
    assert r.to_json()["localization_kinds"] == r.localization_kinds


def test_thresholds_sit_on_their_edges():
    # exactly a is enough for a true positive; exactly 0.1 is a localization, just below is background
    ann = Annotations(classes=["x", "y"], videos=[video("a", [[0, 10]], [0]), video("b", [[0, 10]], [1])])
    preds = {"a": [p("x", 0.9, 0, 5), p("x", 0.8, 0, 1), p("x", 0.7, 0, 0.999)],
             "b": [p("x", 0.6, 0, 1), p("x", 0.5, 5, 10)]}
    r = analyze_detection(ann, preds, tiou=0.5, tiou_set=[0.5])
    assert r.types == ["true_positive", "localization", "background", "confusion", "wrong_label"]
    # a higher threshold turns the true positive into a localization error
    assert analyze_detection(ann, preds, tiou=0.6, tiou_set=[0.5]).types[0] == "localization"


def test_only_the_top_10g_of_the_evaluated_videos_count():
    ann = Annotations(classes=["x"], videos=[video("a", [[0, 10]], [0]),
                                             video("t", [[0, 10]], [0], subset="training"),
                                             video("k", [[0, 10]], [0])])
    preds = {"a": [p("x", 1 - i / 100, 50, 60) for i in range(12)] + [p("x", 0.5, 0, 10)],
             "t": [p("x", 1.0, 0, 10)],  # another subset: ignored
             "k": [p("x", 1.0, 0, 10)],  # blocked: ignored
             "elsewhere": [p("x", 1.0, 0, 10)]}  # no such video: ignored
    r = analyze_detection(ann, preds, subset="validation", blocked=["k"], tiou_set=[0.5])
    assert (r.num_gt, r.num_predictions) == (1, 10)
    assert r.types == ["background"] * 10  # the true positive is ranked 13th, beyond 10G
    assert [b["background"] for b in r.profile] == [1] * 10
    assert r.false_negatives["M"] == 1.0


def test_classify_agrees_with_the_evaluator_matching():
    rng = np.random.default_rng(3)
    videos = []
    for i in range(30):
        n = int(rng.integers(1, 6))
        start = rng.uniform(0, 80, n)
        videos.append(video(f"v{i}", np.stack([start, start + rng.uniform(1, 20, n)], 1), rng.integers(0, 3, n)))
    gt = ground_truth_arrays(videos, ["a", "b", "c"])
    n = 2000
    vid = rng.integers(0, 30, n)
    start = rng.uniform(0, 90, n)
    seg = np.stack([start, start + rng.uniform(0.5, 20, n)], 1)
    label = rng.integers(-1, 3, n)
    for a in (0.3, 0.5, 0.7):
        kind, matched = classify(gt, vid, seg, label, a)
        tp = match_predictions(gt, vid, seg, label, np.arange(n), np.array([a]))[0]
        assert np.array_equal(kind == 0, tp)
        assert len(np.unique(matched[matched >= 0])) == tp.sum()


# ------------------------------------------------------------------ bins


def test_bin_edges():
    assert bin_index([0.0, 3.0, 3.0001, 6.0, 12.0, 12.5, 18.0, 18.0001, 1e9, np.inf, np.nan, -1.0],
                     LENGTH_EDGES).tolist() == [-1, 0, 1, 1, 2, 3, 3, 4, 4, 4, -1, -1]
    assert bin_index([0.02, 0.0200001, 0.04, 0.06, 0.08, 0.0800001, 1.5],
                     COVERAGE_EDGES).tolist() == [0, 1, 1, 2, 3, 4, 4]


def test_bins_of_ground_truth_at_their_edges():
    # lengths 3.0 (XS), 3.0001 (S), 18 (L), 18.5 (XL), 0 (no bin); video of 100 s: coverage 2 s = .02 is XS
    ann = Annotations(classes=["x"], videos=[
        video("a", [[10, 13], [20, 23.0001], [40, 58], [60, 78.5], [90, 90]], [0] * 5),
        video("b", [[0, 2], [10, 12.5]], [0, 0]),
    ])
    r = analyze_detection(ann, {"a": [], "b": []}, tiou_set=[0.5])
    assert {b: v["instances"] for b, v in r.by_length.items()} == {"XS": 3, "S": 1, "M": 0, "L": 1, "XL": 1}
    # coverage: .03 .030001 .18 .185 | .02 .025
    assert {b: v["instances"] for b, v in r.by_coverage.items()} == {"XS": 1, "S": 3, "M": 0, "L": 0, "XL": 2}
    assert r.by_length["M"] == {"instances": 0, "average_mAP": None}


def test_bin_map_drops_predictions_of_other_bins_ground_truth():
    ann = Annotations(classes=["x"], videos=[video("a", [[0, 2], [20, 40]], [0, 0])])  # XS and XL
    preds = {"a": [p("x", 0.9, 20, 40), p("x", 0.8, 0, 2)]}
    r = analyze_detection(ann, preds, tiou_set=[0.5])
    # each bin drops the other bin's true positive: AP 1 in both (0.5 if it were kept as a FP)
    assert r.by_length["XS"]["average_mAP"] == 1.0 and r.by_length["XL"]["average_mAP"] == 1.0
    assert r.average_mAP == 1.0
    # best ground truth in another bin but below the smallest threshold: kept, a false positive
    preds["a"].insert(0, p("x", 0.95, 35, 60))  # tIoU 0.125 with [20, 40], 0 with [0, 2]
    r = analyze_detection(ann, preds, tiou_set=[0.5])
    assert r.by_length["XS"]["average_mAP"] == 0.5 and r.by_length["XL"]["average_mAP"] == 0.5
    # the smallest threshold of the set decides: at 0.1 that prediction is XL's and dropped from XS
    r = analyze_detection(ann, preds, tiou_set=[0.1, 0.5])
    assert r.by_length["XS"]["average_mAP"] == 1.0
    assert r.false_negatives == {"XS": 0.0, "S": None, "M": None, "L": None, "XL": 0.0}


def random_case(seed: int, short_only: bool):
    rng = np.random.default_rng(seed)
    classes = [f"c{k}" for k in range(6)]
    videos, results = [], {}
    for i in range(40):
        duration = float(rng.uniform(30, 200))
        n = int(rng.integers(0, 6))
        start = rng.uniform(0, duration - 25, n)
        length = rng.uniform(0.2, 3.0, n) if short_only else rng.uniform(0.2, 25.0, n)
        videos.append(video(f"v{i}", np.stack([start, start + length], 1), rng.integers(0, 6, n),
                            duration=duration, subset="validation" if i < 35 else "training"))
        m = int(rng.integers(0, 30))
        c = rng.uniform(0, duration, m)
        w = rng.uniform(0.2, 25, m)
        # coarse scores: many ties, which both must break the official way
        results[f"v{i}"] = [p(classes[k] if k < 6 else "unknown", float(s), float(a), float(b))
                            for k, s, a, b in zip(rng.integers(0, 7, m), rng.integers(0, 8, m) / 8,
                                                  c - w / 2, c + w / 2)]
    results["v_outside"] = [p("c0", 0.9, 0, 10)]  # a video without ground truth: a false positive
    return Annotations(classes=classes, videos=videos), results


@pytest.mark.parametrize("seed", [0, 1])
def test_one_bin_map_equals_the_evaluator(seed):
    ann, results = random_case(seed, short_only=True)
    kw = {"subset": "validation", "blocked": ["v3"]}
    for tiou in ("anet", "thumos"):
        expected = evaluate_detection(ann, results, tiou=tiou, **kw).average_mAP
        r = analyze_detection(ann, results, tiou_set=tiou, **kw)
        assert r.by_length["XS"]["average_mAP"] == expected
        assert r.average_mAP == expected
        assert sum(b["instances"] for b in r.by_length.values()) == r.by_length["XS"]["instances"]


def test_overall_map_equals_the_evaluator_with_several_bins():
    ann, results = random_case(5, short_only=False)
    r = analyze_detection(ann, results, subset="validation", tiou_set="thumos")
    assert sum(v["instances"] > 0 for v in r.by_length.values()) >= 3
    assert r.average_mAP == evaluate_detection(ann, results, subset="validation", tiou="thumos").average_mAP


def test_empty_predictions_give_zeros_and_valid_json():
    ann = Annotations(classes=["x"], videos=[video("a", [[0, 2], [10, 30]], [0, 0])])
    r = analyze_detection(ann, {"results": {}}, tiou_set=[0.5])
    assert (r.num_gt, r.num_predictions, r.types) == (2, 0, [])
    assert r.counts == zero_counts() and r.profile == [zero_counts()] * 10
    assert r.localization_kinds == {k: {"merged": 0, "too_short": 0, "too_long": 0, "shifted": 0}
                                    for k in ("top_G", "top_N")}
    assert r.by_length["XS"] == {"instances": 1, "average_mAP": 0.0}
    assert r.by_length["S"] == {"instances": 0, "average_mAP": None}
    assert r.false_negatives == {"XS": 1.0, "S": None, "M": None, "L": None, "XL": 1.0}
    doc = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert set(doc) == JSON_KEYS and doc["average_mAP"] == 0.0
    assert "true_positive" in r.format_table()


def test_bad_inputs():
    ann = Annotations(classes=["x"], videos=[video("a", [[0, 2]], [0])])
    with pytest.raises(GsmtError, match="tiou"):
        analyze_detection(ann, {}, tiou=0.0)
    with pytest.raises(GsmtError, match="no ground-truth segment"):
        analyze_detection(ann, {}, subset="test")
    with pytest.raises(GsmtError, match="prediction 0"):
        analyze_detection(ann, {"results": {"a": [{"label": "x", "score": "high", "segment": [0, 1]}]}})


# ------------------------------------------------------------------ pictures


def test_pictures_share_the_type_colours(tmp_path):
    ann, results = random_case(2, short_only=False)
    doc = analyze_detection(ann, results, subset="validation").to_json()
    profile = fp_profile_figure(doc)
    ax = profile.axes[0]
    assert len(ax.containers) == len(ERROR_TYPES)
    for container, key in zip(ax.containers, ERROR_TYPES):
        assert container.get_label() == key.replace("_", " ")
        assert all(bar.get_facecolor() == pytest.approx(to_rgba(ERROR_COLORS[key]))
                   for bar in container)
    heights = np.array([[bar.get_height() for bar in c] for c in ax.containers])  # [type, block]
    g = doc["num_gt"]
    np.testing.assert_allclose(heights.T, [[100 * b[k] / g for k in ERROR_TYPES] for b in doc["profile"]])
    pie = fp_pie_figure(doc)
    wedges = pie.axes[0].patches
    errors = [k for k in ERROR_TYPES[1:] if doc["profile"][0][k]]
    assert len(errors) >= 3 and len(wedges) == len(errors)
    np.testing.assert_allclose([w.get_facecolor() for w in wedges], [to_rgba(ERROR_COLORS[k]) for k in errors])
    bins = map_bins_figure(doc)
    assert [a.get_title() for a in bins.axes] == ["by ground-truth length",
                                                 "by ground-truth coverage (length / video duration)"]
    paths = plot_analysis(tmp_path, doc)
    assert sorted(path.name for path in paths.values()) == sorted(PICTURES)
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ the command


def write_case(tmp_path, results):
    database = {
        "a": {"subset": "validation", "duration": 100.0,
              "annotations": [{"label": "x", "segment": [10, 20]}, {"label": "y", "segment": [50, 52]}]},
        "b": {"subset": "validation", "duration": 50.0, "annotations": [{"label": "x", "segment": [0, 30]}]},
        "c": {"subset": "training", "duration": 50.0, "annotations": [{"label": "y", "segment": [0, 30]}]},
    }
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": database}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": results}))
    return gt, pred


def test_command_end_to_end(tmp_path, capsys):
    gt, pred = write_case(tmp_path, {"a": [p("x", 0.9, 10, 20), p("y", 0.8, 10, 20)], "b": [p("x", 0.7, 5, 30)]})
    out = tmp_path / "analysis"
    assert main(["analyze", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "error analysis at tIoU 0.5: 3 ground-truth instances, top 3 predictions" in printed
    doc = json.loads((out / "analysis.json").read_text())
    assert set(doc) == JSON_KEYS and doc["counts"]["true_positive"] == 2 and doc["counts"]["wrong_label"] == 1
    assert doc["average_mAP"] == evaluate_detection_file(gt, pred)
    for name in PICTURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --tiou and --tiou-set
    assert main(["analyze", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--tiou", "0.9",
                 "--tiou-set", "0.3,0.5"]) == 0
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["tiou"] == 0.9 and doc["mAP_tiou"] == [0.3, 0.5] and doc["counts"]["localization"] == 1


def evaluate_detection_file(gt, pred) -> float:
    from gsmt.commands.eval import run_eval

    return run_eval(gt, pred).average_mAP


def test_command_with_an_empty_prediction_file(tmp_path):
    gt, pred = write_case(tmp_path, {})
    out = tmp_path / "out"
    assert main(["analyze", "--gt", str(gt), "--pred", str(pred), "--subset", "validation", "--out", str(out)]) == 0
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["num_predictions"] == 0 and doc["counts"] == zero_counts() and doc["num_gt"] == 3
    assert all((out / name).stat().st_size > 0 for name in PICTURES)


@pytest.mark.parametrize("problem", ["missing gt", "missing pred", "corrupt pred", "out is an input",
                                     "out is analysis.json's input"])
def test_command_errors_are_one_line(tmp_path, capsys, problem):
    gt, pred = write_case(tmp_path, {"a": [p("x", 0.9, 10, 20)]})
    out = tmp_path / "out"
    if problem == "missing gt":
        gt = tmp_path / "nope.json"
    elif problem == "missing pred":
        pred = tmp_path / "nope.json"
    elif problem == "corrupt pred":
        pred.write_text('{"results": {"a": [')
    elif problem == "out is an input":
        out = pred
    else:
        out = tmp_path / "o"
        out.mkdir()
        pred = out / "analysis.json"
        pred.write_text(json.dumps({"results": {}}))
    before = pred.read_bytes() if pred.exists() else None
    assert main(["analyze", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: ")
    expected = {"missing gt": gt, "missing pred": pred, "corrupt pred": pred}.get(problem, pred)
    assert err[0].startswith(f"gsmt: error: {expected}: ")
    if problem.startswith("out"):
        assert "is also an input of this command (--pred)" in err[0]
    if before is not None:
        assert pred.read_bytes() == before


def test_flatten_is_the_evaluator_reader():
    # the analysis reads predictions with the evaluator's own reader (one implementation)
    from gsmt.evaluation import analysis, detection, tiou

    assert analysis.gather_inputs is detection.gather_inputs  # readers, subset, blocked, flattening
    assert analysis.segment_tiou is tiou.segment_tiou
    assert analysis.match_video_ids is match_video_ids
    assert BIN_NAMES == ("XS", "S", "M", "L", "XL")
