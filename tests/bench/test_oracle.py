"""Oracle rows (`benchmarks/oracle.py`): what each design can represent, on hand-built timelines."""

import json

import pytest

from benchmarks import oracle


def _dense(path, videos):
    """A MultiTHUMOS/Charades-layout file: {video: {subset, duration, actions: [[class_id, start, end]]}}."""
    path.write_text(json.dumps({vid: {"subset": "testing", "duration": 40.0, "actions": actions}
                                for vid, actions in videos.items()}))
    return path


def test_a_twin_is_lost_by_the_single_label_oracle_only(tmp_path):
    # Classes 1 and 2 on the same 8 s (30 snippets of the window grid): one label per snippet gives
    # them to class 1 (the lower id), so class 2 is never proposed and its AP is 0.
    path = _dense(tmp_path / "twin.json", {"v": [[1, 8.0, 16.0], [2, 8.0, 16.0]]})
    single = oracle.oracle(path, "single", "multithumos")
    multi = oracle.oracle(path, "multi", "multithumos")
    assert (single["videos"], single["instances"], len(single["tiou"])) == (1, 2, 9)
    assert multi["mAP"] == pytest.approx([1.0] * 9)  # snippet-aligned: exact at every tIoU up to 0.9
    assert single["mAP"] == pytest.approx([0.5] * 9)


def test_one_class_per_video_gives_both_designs_the_same_numbers(tmp_path):
    # ActivityNet's case: no snippet holds instances of two classes (same-class nesting is handled
    # alike by both designs); resized to T = 100 (0.4 s a snippet), every instance is found exactly.
    path = _dense(tmp_path / "one.json", {"a": [[0, 2.0, 30.0], [0, 10.0, 14.0]], "b": [[1, 5.0, 25.0]]})
    single = oracle.oracle(path, "single", "anet")
    multi = oracle.oracle(path, "multi", "anet")
    assert single["mAP"] == multi["mAP"] == pytest.approx([1.0] * 10)
    assert single["preset"] == "anet" and len(single["tiou"]) == 10
