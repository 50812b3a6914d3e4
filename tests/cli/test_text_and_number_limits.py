"""Issue 33, items 2 and 3: text that would become structure (class labels holding line breaks or
`-->` written into WebVTT) and parsing limits (duplicate YAML keys, integers past every float and
past Python's int-string limit), each one exact error line, exit 2. Hand-built inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsmt.cli import main
from gsmt.errors import GsmtError

LONG, HUGE = "1" + "0" * 400, "1" + "0" * 5000  # OverflowError in float(); ValueError in int() (4,300 digits)
PRESET = Path(__file__).resolve().parents[2] / "src" / "gsmt" / "configs" / "demo.yaml"


def _gt(label: str = "jump", *, duration: str = "10.0", start: str = "1.0") -> str:
    return ('{"version": "1.3", "database": {"a": {"subset": "validation", "duration": %s, "annotations": '
            '[{"label": %s, "segment": [%s, 2.0]}]}}}' % (duration, json.dumps(label), start))


def _pred(*, score: str = "0.9", start: str = "1.0") -> str:
    return ('{"version": "1.3", "results": {"a": [{"label": "jump", "segment": [%s, 2.0], "score": %s}]}, '
            '"external_data": {}}' % (start, score))


def _error(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: "), err
    return err[0]


def _eval(tmp_path, capsys, gt: str, pred: str) -> tuple[str, Path, Path]:
    (tmp_path / "gt.json").write_text(gt, encoding="utf-8")
    (tmp_path / "pred.json").write_text(pred, encoding="utf-8")
    return _error(capsys, ["eval", "--gt", tmp_path / "gt.json", "--pred", tmp_path / "pred.json"]), \
        tmp_path / "gt.json", tmp_path / "pred.json"


# ------------------------------------------------------------------ 2. labels that hold structure

@pytest.mark.parametrize("label,code", [
    ("jump\n\n99:00:00.000 --> 99:00:01.000\nfake cue", "000A"), ("a\rb", "000D"), ("a\tb", "0009"),
    ("a\x00b", "0000"), ("a\x1bb", "001B"), ("a\x7fb", "007F"), ("a\x85b", "0085"), ("a\u2028b", "2028"),
    ("a\u2029b", "2029"),
])
def test_a_class_label_holding_a_control_character_is_refused(tmp_path, capsys, label, code):
    line, gt, _ = _eval(tmp_path, capsys, _gt(label), _pred())
    assert line == (f"gsmt: error: {gt}: class label {label!r} holds a control character (U+{code}): "
                    "a class name must be one line of printable text")


def test_a_control_character_in_a_class_list_or_another_format_is_refused(tmp_path):
    from gsmt.annotations.load import load_annotations

    listed = json.loads(_gt())
    listed["classes"] = ["jump", "sit\ndown"]
    (tmp_path / "listed.json").write_text(json.dumps(listed))
    with pytest.raises(GsmtError) as info:
        load_annotations(tmp_path / "listed.json")
    assert str(info.value) == (f"{tmp_path / 'listed.json'}: class label 'sit\\ndown' holds a control character "
                               "(U+000A): a class name must be one line of printable text")
    (tmp_path / "ann.csv").write_text("video,start,end,label,duration,subset\na,1,2,\"x\u2028y\",10,validation\n",
                                      encoding="utf-8")
    with pytest.raises(GsmtError, match=r"class label 'x\\u2028y' holds a control character \(U\+2028\)"):
        load_annotations(tmp_path / "ann.csv")


def test_webvtt_cue_text_is_one_line_and_never_a_timing_line():
    pytest.importorskip("av")
    from gsmt.api import Detection
    from gsmt.video.pipeline import webvtt

    label = "jump\n\n99:00:00.000 --> 99:00:01.000\r\nfake <b>cue</b> & co\u2028end"
    vtt = webvtt([Detection(1.0, 2.0, label, 0.9)], 6.0)
    assert vtt.splitlines() == [
        "WEBVTT", "", "NOTE written by gsmt detect", "", "1", "00:00:01.000 --> 00:00:02.000",
        "jump 99:00:00.000 --&gt; 99:00:01.000 fake &lt;b&gt;cue&lt;/b&gt; &amp; co end (0.90)"]
    assert sum("-->" in line for line in vtt.splitlines()) == 1  # the one cue's own timing line


# ------------------------------------------------------------------ 3. parsing limits

def test_a_duplicate_key_in_a_yaml_config_is_refused(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n")
    line = _error(capsys, ["train", cfg, "--data", tmp_path / "missing", "--out", tmp_path / "run"])
    assert line == f"gsmt: error: {cfg}: not a readable YAML file (duplicate key 'lr', listed again at line 4, column 3)"
    cfg.write_text("train:\n  lr: 0.1\ndata:\n  T: 32\ntrain:\n  epochs: 3\n")
    line = _error(capsys, ["train", cfg, "--data", tmp_path / "missing", "--out", tmp_path / "run"])
    assert line == (f"gsmt: error: {cfg}: not a readable YAML file (duplicate key 'train', listed again at "
                    "line 5, column 1)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("number", [LONG, HUGE], ids=["400 digits", "5000 digits"])
@pytest.mark.parametrize("where", ["gt duration", "gt segment", "pred score", "pred segment"])
def test_a_number_past_every_float_in_ground_truth_or_predictions(tmp_path, capsys, number, where):
    gt = _gt(**({"duration": number} if where == "gt duration" else {"start": number} if where == "gt segment"
                else {}))
    pred = _pred(**({"score": number} if where == "pred score" else {"start": number} if where == "pred segment"
                    else {}))
    line, gt_path, pred_path = _eval(tmp_path, capsys, gt, pred)
    named = gt_path if where.startswith("gt") else pred_path
    assert line == (f"gsmt: error: {named}: not valid JSON for gsmt: a number of {len(number)} digits: gsmt reads "
                    "whole numbers of at most 300 digits")


def test_the_predictions_fast_path_and_the_python_checks_say_the_same(tmp_path):
    from gsmt.evaluation.detection import read_predictions
    from gsmt.evaluation.predictions import _check_results

    for number in (LONG, HUGE):
        (tmp_path / "pred.json").write_text(_pred(score=number))
        with pytest.raises(GsmtError) as info:
            read_predictions(tmp_path / "pred.json")
        assert str(info.value) == (f"{tmp_path / 'pred.json'}: not valid JSON for gsmt: a number of {len(number)} "
                                   "digits: gsmt reads whole numbers of at most 300 digits")
    with pytest.raises(GsmtError, match="prediction 0: expected"):  # not OverflowError
        _check_results({"a": [{"label": "x", "score": 10 ** 400, "segment": [1, 2]}]}, "api")
    with pytest.raises(GsmtError, match="holding a number too long to show"):  # no repr past 4,300 digits
        _check_results({"a": [{"label": "x", "score": 0.5, "segment": [1, 10 ** 5000]}]}, "api")


@pytest.mark.parametrize("key,number", [("train.lr", LONG), ("train.epochs", LONG), ("train.epochs", HUGE),
                                        ("decode.thresholds", f"[0.5, {HUGE}]")])
def test_a_number_past_every_float_in_set(tmp_path, capsys, key, number):
    digits = len(number) if number[0] != "[" else len(HUGE)
    line = _error(capsys, ["train", "demo", "--data", tmp_path / "missing", "--out", tmp_path / "run",
                           "--set", f"{key}={number}"])
    assert line == (f"gsmt: error: --set: config key '{key}': a number of {digits} digits: gsmt reads whole "
                    "numbers of at most 300 digits")


def test_a_number_past_every_float_in_a_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"train:\n  epochs: {HUGE}\n")
    line = _error(capsys, ["train", cfg, "--data", tmp_path / "missing", "--out", tmp_path / "run"])
    assert line == (f"gsmt: error: {cfg}: not a readable YAML file (a number of 5001 digits: gsmt reads whole "
                    "numbers of at most 300 digits at line 2, column 11)")
    assert PRESET.exists()
