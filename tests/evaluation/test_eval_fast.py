"""`gsmt eval` end to end (issue 14, item 4): no torch, and the msgspec reader of predictions gives
the strict reader's records and refuses what it refuses (the strict reader then names the fault)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_fatal, cli
from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation import evaluate_detection, flatten_predictions, load_predictions
from gsmt.evaluation.predictions import _fast_results, read_predictions

GT = {"version": "1.3", "database": {
    "v_a": {"subset": "validation", "duration": 20.0, "annotations": [
        {"label": "jump", "segment": [1.0, 5.0]}, {"label": "run", "segment": [8.0, 12.5]}]},
    "v_b": {"subset": "validation", "duration": 30.0, "annotations": [
        {"label": "run", "segment": [3.0, 9.0]}]}}}
PRED = {"version": "VERSION 1.3", "external_data": {"used": False, "details": "a: b"}, "results": {
    "v_a": [{"label": "jump", "score": 0.9, "segment": [1.2, 5.1]},
            {"label": "run", "score": 0.4, "segment": [8, 12]},
            {"label": "swim: free", "score": 1, "segment": [0.0, 1e-3]}],
    "b": [{"label": "run", "score": 0.30000000000000004, "segment": [2.9, 9.5]}],
    "v:c": []}}


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps(PRED))
    return gt, pred


def test_eval_and_analyze_never_import_torch(files, tmp_path):
    gt, pred = files
    out, folder = tmp_path / "m.json", tmp_path / "analysis"
    code = ("import sys; from gsmt.cli import main; "
            f"assert main(['eval', '--gt', {str(gt)!r}, '--pred', {str(pred)!r}, '--json', {str(out)!r}]) == 0; "
            "assert 'torch' not in sys.modules, 'gsmt eval imported torch'; "
            f"assert main(['analyze', '--gt', {str(gt)!r}, '--pred', {str(pred)!r}, '--out', {str(folder)!r}]) == 0; "
            "assert 'torch' not in sys.modules, 'gsmt analyze imported torch'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["average_mAP"] > 0
    assert (folder / "analysis.json").is_file()


def test_fast_reader_gives_the_strict_readers_numbers(files):
    gt, pred = files
    fast = _fast_results(pred)
    assert fast is not None, "the fast path should take a well-formed submission"
    strict = load_predictions(pred)
    assert list(fast) == list(strict)
    classes = ["jump", "run"]
    a, b = flatten_predictions(fast, classes), flatten_predictions(strict, classes)
    for name in ("video", "segments", "label", "score"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.unknown_labels == b.unknown_labels == ["swim: free"]
    assert fast["v_a"][0]["score"] == fast["v_a"][0].score == 0.9
    ann = Annotations(videos=[Video(id="v_a", subset="validation", duration=20.0,
                                    segments=np.array([[1.0, 5.0], [8.0, 12.5]]), labels=np.array([0, 1])),
                              Video(id="v_b", subset="validation", duration=30.0,
                                    segments=np.array([[3.0, 9.0]]), labels=np.array([1]))],
                      classes=classes)
    assert evaluate_detection(ann, fast).to_json() == evaluate_detection(ann, strict).to_json()


def test_eval_json_is_the_same_through_either_reader(files, tmp_path, capsys, monkeypatch):
    gt, pred = files
    fast_out, strict_out = tmp_path / "fast.json", tmp_path / "strict.json"
    assert cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", fast_out)[0] == 0
    monkeypatch.setattr("gsmt.evaluation.predictions._fast_results", lambda path: None)
    assert cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", strict_out)[0] == 0
    assert fast_out.read_bytes() == strict_out.read_bytes()


DET = '{"label": "run", "score": 0.5, "segment": [1, 2]}'


@pytest.mark.parametrize("text, problem", [
    # a key listed twice at each level msgspec would silently collapse
    ('{"results": {"v_a": [%s]}, "results": {}}' % DET, "duplicate key 'results'"),
    ('{"results": {"v_a": [%s], "v_a": []}}' % DET, "duplicate key 'v_a'"),
    ('{"results": {"v_a": [{"label": "run", "score": 0.5, "score": 0.7, "segment": [1, 2]}]}}',
     "duplicate key 'score'"),
    ('{"version": "1", "external_data": {"used": true, "used": false}, "results": {}}', "duplicate key 'used'"),
    # the same, hidden behind an escaped colon or an escaped key
    ('{"results": {"v\\u003aa": [%s], "v:a": [], "v:a": []}}' % DET, "duplicate key 'v:a'"),
    ('{"results": {"v_a": [{"label": "run", "score": 0.5, "\\u0073core": 0.7, "segment": [1, 2]}]}}',
     "duplicate key 'score'"),
    # numbers and types msgspec refuses: the strict reader's message
    ('{"results": {"v_a": [{"label": "run", "score": NaN, "segment": [1, 2]}]}}', "finite numbers"),
    ('{"results": {"v_a": [{"label": "run", "score": 1e400, "segment": [1, 2]}]}}', "finite numbers"),
    ('{"results": {"v_a": [{"label": "run", "score": true, "segment": [1, 2]}]}}', "finite numbers"),
    ('{"results": {"v_a": [{"label": "run", "score": 0.5, "segment": [1, 2, 3]}]}}', "prediction 0"),
    ('{"results": {"v_a": {"label": "run"}}}', "must be a list"),
    ('{"results": []}', "'results' must map"),
    ('{"result": {}}', "no top-level 'results'"),
    ('{"results": {"v_a": [' + "[" * 100000 + "]" * 100000 + "]}}", "nested too deeply"),
    ('{"results": {}} trailing', "not valid JSON"),
])
def test_what_the_strict_reader_refuses_stays_refused(tmp_path, capsys, files, text, problem):
    gt, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(GsmtError) as info:
        read_predictions(bad)
    assert problem.lower() in str(info.value).lower()
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", bad), bad, problem=problem)


def test_an_extra_field_is_accepted_as_before(tmp_path):
    pred = tmp_path / "extra.json"
    pred.write_text('{"results": {"v_a": [{"label": "run", "score": 0.5, "segment": [1, 2], "note": "x"}]}}')
    assert _fast_results(pred) is None  # not the fast path's shape: the strict reader reads it
    assert read_predictions(pred) == load_predictions(pred)


def test_class_agnostic_eval_merges_every_label(tmp_path, capsys):
    # Every prediction has the wrong label: 0 mAP with classes; merged, tIoUs 0.93 / 0.89 / 0.91
    # (scores 0.9 / 0.4 / 0.3): AP 1 at tIoU 0.5; at 0.9 the second is a false positive:
    # precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3, so AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps({"results": {
        "v_a": [{"label": "run", "score": 0.9, "segment": [1.2, 5.1]},
                {"label": "jump", "score": 0.4, "segment": [8, 12]}],
        "v_b": [{"label": "jump", "score": 0.3, "segment": [2.9, 9.5]}]}}))
    metrics = {}
    for flag in ([], ["--class-agnostic"]):
        out = tmp_path / f"m{len(flag)}.json"
        code, _, err = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--tiou", "0.5,0.9", "--json", out, *flag)
        assert code == 0, err
        metrics[bool(flag)] = json.loads(out.read_text())
    assert metrics[False]["mAP"] == [0.0, 0.0]
    assert metrics[True]["mAP"] == pytest.approx([1.0, 5 / 9], abs=1e-12)
    assert list(metrics[True]["per_class_ap"]) == ["action"]
