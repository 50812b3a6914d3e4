"""Tests for gsmt.evaluation: hand-computed cases, the mmaction2 fixture, and equality with a
loop-by-loop reference of the official ActivityNet code on random inputs."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation import (
    TIOU_PRESETS,
    evaluate_detection,
    flatten_predictions,
    load_predictions,
    parse_tiou,
    recall_at_k,
)
from gsmt.evaluation.matching import ground_truth_arrays

from official_reference import (
    reference_average_recall,
    reference_detection,
    reference_topkx_recall,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mmaction2"  # provenance: tests/fixtures/README.md


def annotations(database: dict) -> Annotations:
    """Annotations from `{vid: {"subset", "annotations": [{"label", "segment"}]}}`."""
    classes: list[str] = []
    for v in database.values():
        for a in v["annotations"]:
            if a["label"] not in classes:
                classes.append(a["label"])
    videos = []
    for vid, v in database.items():
        anns = v["annotations"]
        videos.append(Video(
            id=vid, subset=v.get("subset", "validation"), duration=float(v.get("duration", 100.0)),
            segments=np.array([a["segment"] for a in anns], dtype=np.float64).reshape(-1, 2),
            labels=np.array([classes.index(a["label"]) for a in anns], dtype=np.int64)))
    return Annotations(videos=videos, classes=classes)


def gt(*anns, subset="validation"):
    return {"subset": subset, "annotations": [{"label": l, "segment": list(s)} for l, s in anns]}


def pred(label, score, s, e):
    return {"label": label, "score": score, "segment": [s, e]}


def evaluate(database, results, **kw):
    return evaluate_detection(annotations(database), results, **kw)


# ------------------------------------------------------------------ parsing


def test_parse_tiou_presets_and_lists():
    assert np.array_equal(parse_tiou("anet"), np.linspace(0.5, 0.95, 10))
    assert np.array_equal(parse_tiou("THUMOS"), np.linspace(0.3, 0.7, 5))
    assert np.array_equal(parse_tiou("epic"), np.linspace(0.1, 0.5, 5))
    # 0.1:0.1:0.9 as the decimals (the comma list's doubles), not linspace's 0.30000000000000004
    assert parse_tiou("multithumos").tolist() == parse_tiou("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9").tolist()
    assert parse_tiou("multithumos")[2] == 0.3 != np.linspace(0.1, 0.9, 9)[2]
    assert parse_tiou("0.3,0.5").tolist() == [0.3, 0.5]
    assert parse_tiou([0.5]).tolist() == [0.5]
    # the preset is linspace, whose 0.85 differs from arange's in the last bit
    assert TIOU_PRESETS["anet"][7] != np.arange(0.5, 0.96, 0.05)[7]
    for bad in ("nope", "0.5,x", "", "1.5"):
        with pytest.raises(GsmtError):
            parse_tiou(bad)


def test_load_predictions_valid_and_malformed(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"results": {"a": [pred("A", 0.5, 1, 2)], "b": []}}))
    assert load_predictions(good) == {"a": [pred("A", 0.5, 1, 2)], "b": []}
    cases = {
        "notjson": "{",
        "noresults": json.dumps({"version": 1}),
        "notlist": json.dumps({"results": {"a": {"label": "A"}}}),
        "badseg": json.dumps({"results": {"a": [pred("A", 0.5, 1, 2) | {"segment": [1]}]}}),
        "badscore": json.dumps({"results": {"a": [pred("A", "high", 1, 2)]}}),
        "nanscore": '{"results": {"a": [{"label": "A", "score": NaN, "segment": [1, 2]}]}}',
        "nolabel": json.dumps({"results": {"a": [{"score": 1, "segment": [1, 2]}]}}),
    }
    for name, text in cases.items():
        p = tmp_path / f"{name}.json"
        p.write_text(text)
        with pytest.raises(GsmtError) as err:
            load_predictions(p)
        assert str(p) in str(err.value)
    with pytest.raises(GsmtError, match="not found"):
        load_predictions(tmp_path / "missing.json")


def test_flatten_keeps_file_order_and_marks_unknown_labels():
    flat = flatten_predictions({"b": [pred("Y", 0.1, 0, 1), pred("Q", 0.2, 2, 3)],
                                "a": [pred("X", 0.3, 4, 5)]}, ["X", "Y"])
    assert flat.video_ids == ["b", "a"]
    assert flat.video.tolist() == [0, 0, 1]
    assert flat.label.tolist() == [1, -1, 0]
    assert flat.score.tolist() == [0.1, 0.2, 0.3]
    assert flat.segments.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert flat.unknown_labels == ["Q"]


# ------------------------------------------------------------------ hand-computed AP


def test_perfect_prediction_is_one():
    db = {"a": gt(("A", (0, 10)), ("B", (20, 30))), "b": gt(("A", (5, 6)))}
    res = {"a": [pred("A", 0.9, 0, 10), pred("B", 0.8, 20, 30)], "b": [pred("A", 0.7, 5, 6)]}
    m = evaluate(db, res)
    assert m.mAP.tolist() == [1.0] * 10
    assert m.average_mAP == 1.0
    assert m.per_class_ap == {"A": [1.0] * 10, "B": [1.0] * 10}
    assert m.num_predictions == 3 and m.ignored_labels == 0


def test_duplicate_and_near_miss_exact_ap():
    db = {"a": gt(("A", (0, 10)), ("A", (20, 30)))}
    # a hit, its duplicate (FP: the GT is taken) and a near miss of tIoU 8/10
    res = {"a": [pred("A", 0.9, 0, 10), pred("A", 0.8, 0, 10), pred("A", 0.7, 20, 28)]}
    m = evaluate(db, res, tiou=[0.5, 0.8, 0.9])
    # tIoU 0.5 and 0.8: tp 1,0,1 -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 + 1/2 * 2/3
    # tIoU 0.9: tp 1,0,0 -> 1/2 * 1
    assert m.mAP == pytest.approx([5 / 6, 5 / 6, 0.5], abs=1e-12)
    assert m.average_mAP == pytest.approx((5 / 6 + 5 / 6 + 0.5) / 3, abs=1e-12)


def test_equal_scores_follow_the_official_argsort():
    db = {"a": gt(("A", (0, 10)))}
    hit, miss = pred("A", 0.5, 0, 10), pred("A", 0.5, 50, 60)
    first = int(np.array([0.5, 0.5]).argsort()[::-1][0])  # the rule, on this machine's NumPy
    aps = {}
    for name, order in (("hit_first", [hit, miss]), ("miss_first", [miss, hit])):
        ap = evaluate(db, {"a": order}, tiou=[0.5]).mAP[0]
        ranked_first = order[first]
        # hit ranked first: AP 1; miss first: precision 1/2 at recall 1 -> 1/2
        assert ap == (1.0 if ranked_first is hit else 0.5)
        aps[name] = ap
    assert sorted(aps.values()) == [0.5, 1.0]


@pytest.mark.parametrize("swap", [False, True])
def test_equal_tiou_ground_truth_visited_in_official_order(swap):
    a, b = ("A", (5, 15)), ("A", (15, 25))
    db = {"v": gt(*((b, a) if swap else (a, b)))}
    # p1 overlaps a and b equally (tIoU 1/3 each) and takes the one visited first; p2 = a, p3 = b
    res = {"v": [pred("A", 0.9, 10, 20), pred("A", 0.8, 5, 15), pred("A", 0.7, 15, 25)]}
    tiou = np.array([5 / 15, 5 / 15])
    first = int(tiou.argsort()[::-1][0])  # the rule, on this machine's NumPy
    took_a = (first == 0) != swap
    # p1 took a: p2 FP, p3 TP -> 1/2 + 1/2 * 2/3; p1 took b: p2 TP, p3 FP -> 1
    expect = 5 / 6 if took_a else 1.0
    assert evaluate(db, res, tiou=[0.3]).mAP[0] == pytest.approx(expect, abs=1e-12)
    assert reference_detection(db, res, "validation", [0.3])[0][0, 0] == pytest.approx(expect, abs=1e-12)


def test_class_without_predictions_has_ap_zero():
    db = {"a": gt(("A", (0, 10)), ("B", (20, 30)))}
    m = evaluate(db, {"a": [pred("A", 0.9, 0, 10)]}, tiou=[0.5])
    assert m.per_class_ap == {"A": [1.0], "B": [0.0]}
    assert m.mAP.tolist() == [0.5]


def test_predictions_on_video_without_ground_truth_are_false_positives():
    db = {"a": gt(("A", (0, 10))), "c": gt(("A", (0, 10)), subset="training")}
    res = {"b": [pred("A", 0.9, 0, 10)], "c": [pred("A", 0.85, 0, 10)], "a": [pred("A", 0.8, 0, 10)]}
    # both the unknown video and the other-subset video rank above the hit: precision 1/3
    m = evaluate(db, res, subset="validation", tiou=[0.5])
    assert m.mAP[0] == pytest.approx(1 / 3, abs=1e-12)
    assert m.num_predictions == 3


def test_blocked_videos_drop_ground_truth_and_predictions():
    db = {"a": gt(("A", (0, 10))), "b": gt(("A", (0, 10)))}
    res = {"a": [pred("A", 0.9, 0, 10)], "b": [pred("A", 0.95, 40, 50)], "x": [pred("A", 0.99, 0, 1)]}
    assert evaluate(db, res, tiou=[0.5]).mAP[0] == pytest.approx(1 / 3 * 0.5, abs=1e-12)
    m = evaluate(db, res, tiou=[0.5], blocked=["b", "x"])
    assert m.mAP[0] == 1.0 and m.num_predictions == 1
    # a blocked id written with the v_ prefix blocks the bare prediction id too
    assert evaluate(db, res, tiou=[0.5], blocked=["v_b", "v_x"]).mAP[0] == 1.0


def test_zero_length_ground_truth_matches_like_official():
    db = {"a": gt(("A", (5, 5)))}
    for seg, expect in (((5, 5), 1.0), ((7, 7), 1.0), ((5, 6), 0.0)):
        # 0/0 is NaN, and NaN passes the official `tiou < thr` test: any zero-length prediction
        # matches a zero-length GT; a 1 s prediction has tIoU 0/1 = 0 and misses
        m = evaluate(db, {"a": [pred("A", 0.5, *seg)]}, tiou="anet")
        assert m.mAP.tolist() == [expect] * 10


def test_nan_tiou_is_visited_first():
    # GT 1 is zero-length, GT 0 overlaps fully: the zero-length prediction has tIoU [0, NaN];
    # NaN sorts first in argsort()[::-1], so it takes GT 1 and a later exact hit on GT 0 is a TP
    db = {"a": gt(("A", (0, 10)), ("A", (3, 3)))}
    res = {"a": [pred("A", 0.9, 3, 3), pred("A", 0.8, 0, 10)]}
    assert evaluate(db, res, tiou=[0.5]).mAP[0] == 1.0
    ref, _ = reference_detection(db, res, "validation", [0.5])
    assert ref[0, 0] == 1.0


def test_unknown_labels_are_ignored_and_counted(caplog):
    db = {"a": gt(("A", (0, 10))), "t": gt(("B", (0, 10)), subset="training")}
    res = {"a": [pred("Nope", 0.99, 0, 10), pred("B", 0.98, 0, 10), pred("A", 0.5, 0, 10)]}
    with caplog.at_level(logging.WARNING, logger="gsmt.evaluation"):
        m = evaluate(db, res, subset="validation", tiou=[0.5])
    assert m.mAP[0] == 1.0 and m.ignored_labels == 2 and m.num_predictions == 1
    assert "2 predictions" in caplog.text and "'Nope'" in caplog.text and "'B'" in caplog.text


def test_video_ids_match_with_or_without_v_prefix():
    db = {"v_abc": gt(("A", (0, 10))), "def": gt(("A", (0, 10)))}
    res = {"abc": [pred("A", 0.9, 0, 10)], "v_def": [pred("A", 0.8, 0, 10)]}
    assert evaluate(db, res, tiou=[0.5]).mAP[0] == 1.0


def test_list_of_videos_needs_classes_and_accepts_submission_dict():
    ann = annotations({"a": gt(("A", (0, 10)))})
    sub = {"results": {"a": [pred("A", 1.0, 0, 10)]}}
    assert evaluate_detection(ann.videos, sub, classes=ann.classes).average_mAP == 1.0
    with pytest.raises(GsmtError):
        evaluate_detection(ann.videos, sub)


def test_to_json_and_table():
    m = evaluate({"a": gt(("A", (0, 10)))}, {"a": [pred("A", 1.0, 0, 6.5)]}, tiou="thumos")
    out = m.to_json()
    assert set(out) == {"tiou", "mAP", "average_mAP", "per_class_ap", "recall"}
    json.dumps(out)
    assert out["mAP"] == [1.0, 1.0, 1.0, 1.0, 0.0]  # tIoU 0.65 passes 0.3..0.6, fails 0.7
    assert out["average_mAP"] == pytest.approx(0.8)
    table = m.format_table()
    assert "0.70" in table and "80.00" in table and "AR@100" in table


# ------------------------------------------------------------------ recall


def test_recall_at_kx_by_hand():
    db = {"a": gt(("A", (0, 10)), ("A", (20, 30)), ("B", (40, 50)))}
    res = {"a": [pred("A", 0.9, 0, 10), pred("A", 0.8, 60, 70), pred("A", 0.7, 20, 30),
                 pred("B", 0.6, 90, 99), pred("B", 0.5, 40, 50)]}
    r = evaluate(db, res, tiou=[0.5]).recall
    # class A, x = 2: the top 2 recall GT 0 only (1/2); the top 10 both.  B, x = 1: top 1 misses.
    assert r["recall@1x"] == [pytest.approx((0.5 + 0.0) / 2)]
    assert r["recall@5x"] == [1.0]
    # AR@AN (class-agnostic): 1 video, 5 proposals, ratio 100 * 1 / 5 = 20 keeps all 5; the first
    # grid point keeps int(5 * 0.01 * 20) = 1 proposal (recalls 1 GT of 3), the last keeps all 5
    assert r["AR@1"] == pytest.approx(1 / 3)
    assert r["AR@100"] == 1.0


def test_recall_at_kx_class_agnostic_by_hand():
    ann = annotations({"a": gt(("A", (0, 10)), ("A", (20, 30)), ("B", (40, 50)))})
    g = ground_truth_arrays(ann.videos, ann.classes)
    seg = np.array([[0, 10], [60, 70], [20, 30], [90, 99], [40, 50]], dtype=float)
    label = np.array([0, 0, 0, 1, 1])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    video = np.zeros(5, dtype=np.int64)
    # any class competes, x = 3 GT in the video: the top 3 recall GT 0 and 1; the top 15 all
    r = recall_at_k(g, video, seg, label, score, np.array([0.5]), (1, 5), class_agnostic=True)
    assert r.tolist() == [[pytest.approx(2 / 3), 1.0]]
    r = recall_at_k(g, video, seg, label, score, np.array([0.5]), (1, 5))
    assert r.tolist() == [[0.25, 1.0]]


# ------------------------------------------------------------------ real fixture


def test_mmaction2_fixture_average_map():
    database = json.loads(gzip.decompress((FIXTURE / "eval_localization_gt.json.gz").read_bytes()))
    results = load_predictions(FIXTURE / "eval_localization_result.json.gz")  # read through gzip
    m = evaluate_detection(annotations(database), results, subset="validation", tiou="anet")
    assert abs(m.average_mAP - 0.6177579365079365) <= 1e-9
    stripped = {k[2:]: v for k, v in database.items()}
    ref, _ = reference_detection(stripped, results, "validation", TIOU_PRESETS["anet"])
    assert np.abs(m.mAP - ref.mean(axis=1)).max() <= 1e-12


def test_eval_command_on_gzip_files_and_packaged_blocked_list(tmp_path, capsys):
    from gsmt.cli import main

    gt, res = FIXTURE / "eval_localization_gt.json.gz", FIXTURE / "eval_localization_result.json.gz"
    runs = {}
    for name, blocked in (("none", []), ("packaged", ["--blocked", "activitynet13"]),
                          ("file", ["--blocked", str(tmp_path / "b.json.gz")])):
        (tmp_path / "b.json.gz").write_bytes(gzip.compress(b'["v_hDPLy21Yyuk"]', mtime=0))
        assert main(["eval", "--gt", str(gt), "--pred", str(res), "--json", str(tmp_path / f"{name}.json")]
                    + blocked) == 0
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["average_mAP"]
    capsys.readouterr()
    # Neither fixture video is among the 198; blocking one of them changes the result.
    assert abs(runs["none"] - 0.6177579365079365) <= 1e-9 and runs["packaged"] == runs["none"]
    assert runs["file"] != runs["none"]
    missing = tmp_path / "blocked.json"
    assert main(["eval", "--gt", str(gt), "--pred", str(res), "--blocked", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "activitynet13" in err
    (tmp_path / "dict.json").write_text('{"a": 1}')
    assert main(["eval", "--gt", str(gt), "--pred", str(res), "--blocked", str(tmp_path / "dict.json")]) == 2
    assert "expected a JSON list of video ids" in capsys.readouterr().err


# ------------------------------------------------------------------ random equality


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    labels = [f"c{i}" for i in range(int(rng.integers(2, 6)))]
    grid = np.arange(0, 40, 2.5)  # coarse grid: many exact ties in scores and tIoU
    database, results = {}, {}
    for v in range(int(rng.integers(3, 9))):
        vid = f"vid{v}"
        anns = []
        for _ in range(int(rng.integers(0, 5))):
            s = float(rng.choice(grid))
            e = s + float(rng.choice([0.0, 2.5, 5.0, 10.0]))  # zero-length included
            anns.append((str(rng.choice(labels[:-1])), (s, e)))  # the last class never in GT
        database[vid] = gt(*anns, subset=str(rng.choice(["validation", "validation", "training"])))
    vids = list(database) + ["nogt0", "nogt1"]
    for vid in rng.permutation(vids):
        preds = []
        for _ in range(int(rng.integers(0, 25))):
            s = float(rng.choice(grid))
            e = s + float(rng.choice([0.0, 2.5, 5.0, 7.5, 10.0]))
            score = float(rng.choice([0.1, 0.2, 0.5, 0.9])) if rng.random() < 0.7 else float(rng.random())
            preds.append(pred(str(rng.choice(labels)), score, s, e))
        results[str(vid)] = preds
    blocked = [str(rng.choice(vids))] if rng.random() < 0.5 else []
    return database, results, blocked


@pytest.mark.parametrize("seed", range(40))
def test_equals_official_reference_on_random_inputs(seed):
    database, results, blocked = random_case(seed)
    tiou = np.linspace(0.1, 0.9, 9)
    ann = annotations(database)
    if not any(len(v.labels) for v in ann.subset("validation") if v.id not in blocked):
        with pytest.raises(GsmtError, match="no ground-truth segment"):
            evaluate_detection(ann, results, subset="validation", tiou=tiou, blocked=blocked)
        return
    m = evaluate_detection(ann, results, subset="validation", tiou=tiou, blocked=blocked)
    ref, index = reference_detection(database, results, "validation", tiou, blocked=blocked)
    assert np.abs(m.mAP - ref.mean(axis=1)).max() <= 1e-6
    for label, col in index.items():
        assert np.abs(np.array(m.per_class_ap[label]) - ref[:, col]).max() <= 1e-6
    rk = reference_topkx_recall(database, results, "validation", tiou, blocked=blocked)
    assert np.abs(np.array([m.recall["recall@1x"], m.recall["recall@5x"]]).T - rk).max() <= 1e-12
    if m.num_predictions:
        _, avg, _ = reference_average_recall(database, results, "validation", tiou, blocked=blocked)
        got = [m.recall[k] for k in ("AR@1", "AR@5", "AR@10", "AR@100")]
        assert np.abs(np.array(got) - avg[[0, 4, 9, 99]]).max() <= 1e-12
