"""The dense multi-label JSON of MultiTHUMOS / Charades (`gsmt.annotations.formats.dense`) and the
packaged MultiTHUMOS timelines."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from gsmt.annotations.load import load_annotations
from gsmt.annotations.packaged import TIMELINES, timelines_path
from gsmt.errors import GsmtError

PAST_END = "segments ending after the video's end"
ZERO = "zero-length segments (kept)"
REVERSED = "segments with end < start (kept, as the official evaluator does)"


@pytest.fixture
def dense_file(test_data):
    return test_data / "dense" / "dense_small.json"  # hand-made (tests/fixtures/README.md)


def _expect_small(ann) -> None:
    # ids 2, 9, 10 in numeric order ("10" after "9"; code point order would put it first)
    assert ann.classes == ["2", "9", "10"]
    assert [(v.id, v.subset, v.duration) for v in ann.videos] == [
        ("vid_a", "training", 30.0), ("vid_b", "testing", 12.5), ("vid_c", "testing", 8.0)]
    a, b, c = ann.videos
    # segments as in the file, co-occurring ones included (vid_a: 10 over [1, 5] and 9 over [2, 4])
    np.testing.assert_array_equal(a.segments, [[1, 5], [2, 4], [20, 31.5], [7, 7]])
    assert a.labels.tolist() == [2, 1, 2, 0]
    np.testing.assert_array_equal(b.segments, [[0, 3.5], [11, 10]])
    assert b.labels.tolist() == [0, 1]
    assert c.segments.shape == (0, 2) and c.labels.shape == (0,)
    assert all(v.ambiguous.shape == (0, 2) for v in ann.videos)
    assert dict(ann.faults.counts) == {PAST_END: 1, ZERO: 1, REVERSED: 1}


def test_dense_json_auto_and_explicit(dense_file):
    _expect_small(load_annotations(dense_file))
    _expect_small(load_annotations(dense_file, fmt="dense"))


def test_dense_json_gzip(dense_file, tmp_path):
    data = gzip.compress(dense_file.read_bytes(), mtime=0)
    for name in ("gt.json.gz", "gt.json"):  # by name, and by the magic bytes alone
        (tmp_path / name).write_bytes(data)
        _expect_small(load_annotations(tmp_path / name))


def test_dense_json_class_names_and_subset_map(dense_file, tmp_path):
    obj = json.loads(dense_file.read_text())
    obj["classes"] = {"11": "unused", "10": "walk", "9": "open door", "2": "sit"}
    path = tmp_path / "named.json"
    path.write_text(json.dumps(obj))
    ann = load_annotations(path, subset_map={"training": "validation", "testing": "test"})
    # ordered by id, every listed class kept (the object is the vocabulary)
    assert ann.classes == ["sit", "open door", "walk", "unused"]
    assert ann.videos[0].labels.tolist() == [2, 1, 2, 0]
    assert [v.subset for v in ann.videos] == ["validation", "test", "test"]


def test_dense_json_string_ids_and_video_info(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"x": {"actions": [["7", 1, 2], [7, 3, 4], ["007", 5, 6], [12, 0, 1]]}}))
    ann = load_annotations(path, fmt="dense", video_info={"x": {"duration": 9, "subset": "test"}})
    assert ann.classes == ["7", "12"] and ann.videos[0].labels.tolist() == [0, 0, 0, 1]
    assert (ann.videos[0].subset, ann.videos[0].duration) == ("test", 9.0)


@pytest.mark.parametrize("actions, problem", [
    ([["jump", 1, 2]], "video 'v' action 0: class id must be a whole number >= 0, got 'jump'"),
    ([[1.5, 1, 2]], "class id must be a whole number >= 0, got 1.5"),
    ([[-1, 1, 2]], "class id must be a whole number >= 0, got -1"),
    ([[True, 1, 2]], "class id must be a whole number >= 0, got True"),
    ([["9" * 5000, 1, 2]], "video 'v' action 0: class id is a number of 5000 digits: gsmt reads whole numbers"),
    ([[1, 2]], r"video 'v' action 0: expected \[class_id, start, end\], got \[1, 2\]"),
    ([[1, 2, 3, 4]], r"expected \[class_id, start, end\]"),
    ([{"label": 1}], r"expected \[class_id, start, end\]"),
    ([[1, "soon", 3]], "video 'v' action 0 start: not a number"),
    ([[1, 2, None]], "video 'v' action 0 end: not a number"),
    ({"1": [2, 3]}, "'actions' must be a list"),
])
def test_dense_json_malformed_entries_are_one_line_errors(tmp_path, actions, problem):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"ok": {"duration": 5, "actions": []}, "v": {"duration": 5, "actions": actions}}))
    with pytest.raises(GsmtError, match=problem) as exc:
        load_annotations(path, fmt="dense")
    assert exc.value.where == str(path) and "\n" not in str(exc.value)


@pytest.mark.parametrize("classes, problem", [
    (["a", "b"], "'classes' must be an object mapping class ids to names"),
    ({"x": "a"}, "'classes': class id must be a whole number"),
    ({"1" * 4400: "a"}, "'classes': class id is a number of 4400 digits"),
    ({"1": "a", "01": "b"}, "class id 1 listed twice"),
    ({"1": ""}, "the name of class id 1 must be a non-empty string"),
    ({"1": "a", "2": "a"}, "two class ids share one name"),
    ({"2": "b"}, "video 'v' action 0: class id 1 is not in 'classes'"),
])
def test_dense_json_bad_classes(tmp_path, classes, problem):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"classes": classes, "v": {"duration": 5, "actions": [[1, 0, 1]]}}))
    with pytest.raises(GsmtError, match=problem) as exc:
        load_annotations(path)
    assert exc.value.where == str(path)


def test_dense_json_other_faults(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"v": {"subset": "test", "actions": [[1, 0, 1]]}}))
    with pytest.raises(GsmtError, match="video 'v' has no duration"):
        load_annotations(path)
    path.write_text(json.dumps({"v": {"duration": 5, "actions": [[1, "NaN", 1], [1, 0, 2]]}}))
    ann = load_annotations(path)
    assert ann.faults.counts == {"non-finite segments (dropped)": 1}
    np.testing.assert_array_equal(ann.videos[0].segments, [[0, 2]])


def test_activitynet_json_is_not_taken_for_dense(tmp_path):
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"v": {"duration": 5, "annotations": [{"label": "A", "segment": [1, 2]}]}}))
    assert load_annotations(path).classes == ["A"]


# ---------------------------------------------------------------------------------------------
# The packaged MultiTHUMOS timelines


def test_packaged_multithumos_has_the_published_counts():
    assert "multithumos" in TIMELINES
    path = timelines_path("multithumos")
    assert path.name == "multithumos.json.gz" and path.read_bytes()[:2] == b"\x1f\x8b"
    ann = load_annotations(path)
    assert len(ann.videos) == 413 and ann.num_classes == 65
    assert ann.classes == [str(i) for i in range(1, 66)]  # the ids, no invented names
    assert sum(len(v.segments) for v in ann.videos) == 38690
    # training / testing renamed as THUMOS14's own packaged timelines (src/gsmt/timelines/README.md)
    assert ann.subsets == ["test", "validation"]
    assert len(ann.subset("validation")) == 200 and len(ann.subset("test")) == 213
    assert dict(ann.faults.counts) == {PAST_END: 65, "segments starting after the video's end": 60, ZERO: 7}
    thumos = load_annotations(timelines_path("thumos14"))
    for subset in ("validation", "test"):
        assert {v.id for v in ann.subset(subset)} == {v.id for v in thumos.subset(subset)}
    # co-occurring labels: more than one label over the same moment
    v = ann.by_id()["video_test_0000896"]
    at = (v.segments[:, 0] <= 20.0) & (v.segments[:, 1] >= 20.0)
    assert len(set(v.labels[at].tolist())) >= 2
