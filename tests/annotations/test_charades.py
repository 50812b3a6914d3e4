"""Charades' own CSV (`gsmt.annotations.formats.charades`), on a hand-made 3-video file (the
Charades licence forbids packaging its data)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from gsmt.annotations.load import load_annotations
from gsmt.errors import GsmtError

HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


@pytest.fixture
def charades_file(test_data):
    return test_data / "charades" / "Charades_v1_test.csv"  # hand-made (tests/fixtures/README.md)


def _expect(ann, subset="testing") -> None:
    # c009, c010, c092, c147 -> "9", "10", "92", "147", numeric order
    assert ann.classes == ["9", "10", "92", "147"]
    assert [(v.id, v.subset, v.duration) for v in ann.videos] == [
        ("AB12C", subset, 30.21), ("XY34Z", subset, 18.0), ("QW56E", subset, 19.4)]
    a, b, c = ann.videos
    np.testing.assert_array_equal(a.segments, [[11.9, 21.2], [0.0, 12.6], [3.0, 4.5]])
    assert a.labels.tolist() == [2, 3, 0]
    assert b.segments.shape == (0, 2)  # an empty `actions` field
    np.testing.assert_array_equal(c.segments, [[2.0, 9.75], [8.5, 20.0]])
    assert c.labels.tolist() == [3, 1]
    assert dict(ann.faults.counts) == {"segments ending after the video's end": 1}  # QW56E c010


def test_charades_csv_auto_and_explicit(charades_file):
    _expect(load_annotations(charades_file))
    _expect(load_annotations(charades_file, fmt="charades"))


def test_charades_csv_gzip(charades_file, tmp_path):
    data = gzip.compress(charades_file.read_bytes(), mtime=0)
    (tmp_path / "Charades_v1_test.csv.gz").write_bytes(data)
    _expect(load_annotations(tmp_path / "Charades_v1_test.csv.gz"))
    (tmp_path / "Charades_v1_test.csv").write_bytes(data)  # gzip bytes under a plain name
    _expect(load_annotations(tmp_path / "Charades_v1_test.csv"))


@pytest.mark.parametrize("name, subset", [("Charades_v1_train.csv", "training"),
                                          ("charades-test.csv", "testing"),
                                          ("contest.csv", "all"), ("labels.csv", "all")])
def test_charades_subset_from_the_file_name(charades_file, tmp_path, name, subset):
    path = tmp_path / name
    path.write_bytes(charades_file.read_bytes())
    _expect(load_annotations(path), subset)


def test_charades_subset_map_and_video_info(charades_file, tmp_path):
    ann = load_annotations(charades_file, subset_map={"testing": "test"})
    assert {v.subset for v in ann.videos} == {"test"}
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "V1,,,,,,,,,c001 0 1,\n")
    ann = load_annotations(path, video_info={"V1": {"duration": 4.5, "subset": "validation"}})
    assert (ann.videos[0].duration, ann.videos[0].subset, ann.classes) == (4.5, "validation", ["1"])


def test_plain_csv_is_still_the_generic_reader(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("video,start,end,label,duration\na,1,2,Jump,10\n")
    assert load_annotations(path).classes == ["Jump"]


@pytest.mark.parametrize("actions, length, problem", [
    ("x092 1.0 2.0", "10", "line 2: action 'x092 1.0 2.0' is not 'cNNN start end'"),
    ("c092 1.0", "10", "line 2: action 'c092 1.0' is not 'cNNN start end'"),
    ("c09a 1.0 2.0", "10", "is not 'cNNN start end'"),
    ("c092 1.0 2.0 3.0", "10", "is not 'cNNN start end'"),
    ("c092 soon 2.0", "10", "line 2 start: not a number"),
    ("c" + "9" * 5000 + " 1.0 2.0", "10", "line 2: action 'c9999.*': class id is a number of 5000 digits"),
    ("c092 1.0 2.0", "", "line 2: video 'V1' has no length"),
    ("c092 1.0 2.0", "long", "video 'V1' has no valid duration"),
])
def test_charades_malformed_rows_are_one_line_errors(tmp_path, actions, length, problem):
    path = tmp_path / "Charades_v1_train.csv"
    path.write_text(HEADER + f"V1,,,,,,,,,{actions},{length}\n")
    with pytest.raises(GsmtError, match=problem) as exc:
        load_annotations(path)
    assert exc.value.where == str(path) and "\n" not in str(exc.value)


def test_charades_needs_its_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,length\nV1,10\n")
    with pytest.raises(GsmtError, match="needs the columns id, actions, length \\(missing: actions\\)"):
        load_annotations(path, fmt="charades")
    path.write_text(HEADER)
    with pytest.raises(GsmtError, match="no videos in the file"):
        load_annotations(path)
