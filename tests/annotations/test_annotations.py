"""Annotation readers, the ActivityNet JSON writer and atomic writes (gsmt.annotations.load, gsmt.io.guard)."""

from __future__ import annotations

import gzip
import json
import os
import stat

import numpy as np
import pytest

from gsmt.annotations.types import Annotations, Video, check_video_id
from gsmt.annotations.load import load_annotations
from gsmt.annotations.write import save_activitynet_json
from gsmt.annotations.packaged import timelines_path
from gsmt.errors import GsmtError
from gsmt.io.write import atomic_path, atomic_write_bytes, atomic_write_text

THUMOS_CLASSES = [
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
]


def _count(videos: list[Video]) -> int:
    return sum(len(v.segments) for v in videos)


def _write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


# ---------------------------------------------------------------------------------------------
# Real files


@pytest.fixture(scope="module")
def thumos() -> Annotations:
    return load_annotations(timelines_path("thumos14"))


@pytest.fixture(scope="module")
def anet() -> Annotations:
    return load_annotations(timelines_path("activitynet13"))


def test_thumos14_counts(thumos):
    assert thumos.subsets == ["test", "validation"]
    assert len(thumos.subset("validation")) == 200
    assert len(thumos.subset("test")) == 213
    assert _count(thumos.subset("validation")) == 3007
    assert _count(thumos.subset("test")) == 3358
    # THUMOS official ids 7..97 follow the alphabetical order of the names.
    assert thumos.classes == THUMOS_CLASSES
    assert {round(v.fps) for v in thumos.videos} == {24, 25, 30}
    assert all(v.labels.dtype == np.int64 and v.segments.dtype == np.float64 for v in thumos.videos)
    assert max(int(v.labels.max()) for v in thumos.videos if len(v.labels)) == 19


def test_thumos14_ambiguous_only_video(thumos):
    v = thumos.by_id()["video_test_0001292"]
    assert v.subset == "test"
    assert v.segments.shape == (0, 2) and v.labels.shape == (0,)
    assert v.ambiguous.shape == (3, 2)
    np.testing.assert_array_equal(v.ambiguous[0], [78.4, 113.2])
    assert "Ambiguous" not in thumos.classes


def test_activitynet13_counts_and_faults(anet):
    assert len(anet.subset("training")) == 10024
    assert len(anet.subset("validation")) == 4926
    assert _count(anet.subset("training")) == 15410
    assert _count(anet.subset("validation")) == 7654
    assert anet.num_classes == 200 and anet.classes == sorted(anet.classes)
    assert anet.faults.counts["segments ending after the video's end"] == 1732
    assert anet.faults.counts["segments starting after the video's end"] == 1
    assert anet.faults.counts["zero-length segments (kept)"] == 12
    assert "segments with end < start (dropped)" not in anet.faults.counts


def test_activitynet13_segments_kept_raw(anet):
    past = [v for v in anet.videos if len(v.segments) and v.segments[:, 1].max() > v.duration]
    assert sum(int((v.segments[:, 1] > v.duration).sum()) for v in past) == 1732
    zero = {"training": 0, "validation": 0}
    for v in anet.videos:
        zero[v.subset] += int((v.segments[:, 0] == v.segments[:, 1]).sum())
    assert zero == {"training": 9, "validation": 3}
    first = anet.by_id()["sJFgo9H6zNo"]
    np.testing.assert_array_equal(first.segments, [[0.01, 123.42336739937599]])
    assert anet.classes[first.labels[0]] == "Fun sliding down"


def test_mmaction2_fixture_strips_prefix(test_data):
    path = test_data / "mmaction2" / "eval_localization_gt.json.gz"
    ann = load_annotations(path)
    assert [v.id for v in ann.videos] == ["bYUmtLBL7W4", "hDPLy21Yyuk"]
    assert ann.classes == ["Cleaning shoes", "Wakeboarding"]
    assert [v.labels.tolist() for v in ann.videos] == [[1, 1, 1], [0]]
    assert ann.videos[1].duration == 76.23
    assert not ann.faults
    kept = load_annotations(path, id_prefix=None)
    assert [v.id for v in kept.videos] == ["v_bYUmtLBL7W4", "v_hDPLy21Yyuk"]


# ---------------------------------------------------------------------------------------------
# Hand-written files in every other format


def test_activitynet_json_grid_meta_and_taxonomy(tmp_path):
    path = _write_json(tmp_path / "a.json", {
        "version": "x", "taxonomy": [{"nodeName": "Zeta", "nodeId": 1}],
        "gsmt": {"preset": "thumos-like", "grid": {"fps": 25}},
        "database": {
            "a": {"subset": "training", "duration": 10, "fps": 25, "feature_stride": 4, "feature_window": 16,
                  "annotations": [{"label": "Zeta", "segment": [1, 2]}, {"label": "Alpha", "segment": ["3", 4.5]}]},
            "b": {"subset": "validation", "duration": 5.5, "annotations": []},
        },
    })
    ann = load_annotations(path)
    assert ann.classes == ["Alpha", "Zeta"]
    a, b = ann.videos
    assert (a.fps, a.feature_stride, a.feature_window) == (25.0, 4, 16)
    assert (b.fps, b.feature_stride, b.feature_window) == (None, None, None)
    np.testing.assert_array_equal(a.segments, [[1, 2], [3, 4.5]])
    assert a.labels.tolist() == [1, 0]
    assert b.segments.shape == (0, 2) and b.duration == 5.5
    assert ann.meta == {"preset": "thumos-like", "grid": {"fps": 25}}
    assert ann.source == str(path)


def test_actionformer_json_keeps_label_id_order(tmp_path):
    path = _write_json(tmp_path / "af.json", {"database": {
        "video_test_1": {"subset": "Test", "duration": 30, "fps": 30, "annotations": [
            {"label": "Shotput", "segment": [1, 2], "label_id": 7},
            {"label": "Billiards", "segment": [3, 4], "label_id": 12},
            {"label": "Ambiguous", "segment": [5, 6], "label_id": -1},
        ]},
        "video_validation_1": {"subset": "Validation", "duration": 20, "fps": 30, "annotations": [
            {"label": "Archery", "segment": [2, 3], "label_id": 97},
        ]},
    }})
    ann = load_annotations(path)
    assert ann.classes == ["Shotput", "Billiards", "Archery"]
    t, v = ann.videos
    assert t.labels.tolist() == [0, 1] and v.labels.tolist() == [2]
    np.testing.assert_array_equal(t.ambiguous, [[5, 6]])
    assert (t.subset, v.subset) == ("test", "validation")
    # Read as plain ActivityNet JSON the ids are ignored: alphabetical order.
    assert load_annotations(path, fmt="activitynet").classes == ["Archery", "Billiards", "Shotput"]


def test_actionformer_conflicting_label_id_is_fatal(tmp_path):
    path = _write_json(tmp_path / "af.json", {"database": {"v": {"subset": "test", "duration": 9, "annotations": [
        {"label": "A", "segment": [1, 2], "label_id": 0}, {"label": "A", "segment": [3, 4], "label_id": 1}]}}})
    with pytest.raises(GsmtError, match="class 'A' has two label_id values"):
        load_annotations(path)
    _write_json(path, {"database": {"v": {"subset": "test", "duration": 9, "annotations": [
        {"label": "A", "segment": [1, 2], "label_id": 3}, {"label": "B", "segment": [3, 4], "label_id": 3.0}]}}})
    with pytest.raises(GsmtError, match="two classes share one label_id"):
        load_annotations(path)


def _thumos_folder(tmp_path):
    folder = tmp_path / "thumos_txt"
    folder.mkdir()
    (folder / "BaseballPitch_val.txt").write_text("video_validation_2 1.0 2.5\nvideo_validation_1  3.0 4.0 \n\n")
    (folder / "Billiards_val.txt").write_text("video_validation_1 5.5 7.0\n")
    (folder / "Billiards_test.txt").write_text("video_test_9 0.5 1.0\n")
    (folder / "Ambiguous_test.txt").write_text("video_test_9 2.0 3.0\nvideo_test_4 1.0 2.0\n")
    (folder / "detclasslist.txt").write_text("7 BaseballPitch\n12 Billiards\n")
    return folder


def test_thumos_txt_folder(tmp_path):
    folder = _thumos_folder(tmp_path)
    info = tmp_path / "info.csv"
    info.write_text("video,duration,fps\nvideo_validation_1,60,30\nvideo_validation_2,50,25\n"
                    "video_test_9,40,30\nvideo_test_4,10,30\nvideo_test_7,99,30\n")
    ann = load_annotations(folder, video_info=info)
    assert ann.classes == ["BaseballPitch", "Billiards"]
    assert [v.id for v in ann.videos] == ["video_test_4", "video_test_9", "video_validation_1", "video_validation_2"]
    t4, t9, v1, v2 = ann.videos
    assert [v.subset for v in ann.videos] == ["test", "test", "validation", "validation"]
    np.testing.assert_array_equal(v1.segments, [[3.0, 4.0], [5.5, 7.0]])
    assert v1.labels.tolist() == [0, 1] and v1.duration == 60.0 and v1.fps == 30.0
    assert v2.fps == 25.0
    np.testing.assert_array_equal(t9.ambiguous, [[2.0, 3.0]])
    assert t4.segments.shape == (0, 2) and t4.ambiguous.shape == (1, 2)
    # The dict form of video_info, and a subset renaming.
    durations = {v: 100.0 for v in ("video_validation_1", "video_validation_2", "video_test_9", "video_test_4")}
    renamed = load_annotations(folder, video_info=durations, subset_map={"val": "training"})
    assert renamed.subsets == ["test", "training"]
    assert all(v.fps is None and v.duration == 100.0 for v in renamed.videos)


def test_thumos_txt_needs_durations(tmp_path):
    folder = _thumos_folder(tmp_path)
    with pytest.raises(GsmtError, match="pass video_info") as exc:
        load_annotations(folder)
    assert exc.value.where == str(folder)
    info = tmp_path / "info.csv"
    info.write_text("video,duration\nvideo_validation_1,60\nvideo_validation_2,50\nvideo_test_9,40\n")
    with pytest.raises(GsmtError, match="no duration for video 'video_test_4'") as exc:
        load_annotations(folder, video_info=info)
    assert exc.value.where == str(info)


def test_thumos_txt_bad_line(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "Diving_test.txt").write_text("video_test_1 1.0\n")
    with pytest.raises(GsmtError, match="line 1: expected 'video start end'") as exc:
        load_annotations(folder, video_info={"video_test_1": 9})
    assert exc.value.where == str(folder / "Diving_test.txt")


def test_bsn_json_with_video_info(tmp_path):
    anno = _write_json(tmp_path / "anet_anno_action.json", {
        "v_aaa": {"duration_second": 12.5, "duration_frame": 375, "feature_frame": 368,
                  "annotations": [{"segment": [1.0, 5.0], "label": "Surfing"}]},
        "v_bbb": {"duration_second": 8.0, "duration_frame": 240, "feature_frame": 240,
                  "annotations": [{"segment": [0.0, 8.5], "label": "Archery"}]},
        "v_ccc": {"duration_second": 3.0, "duration_frame": 90, "feature_frame": 80, "annotations": []},
    })
    csv_path = tmp_path / "video_info_new.csv"
    csv_path.write_text("video,numFrame,seconds,fps,rfps,subset,featureFrame\n"
                        "v_aaa,375,12.5,30.0,30,training,368\nv_bbb,240,8.0,30.0,30,validation,240\n"
                        "v_zzz,100,3.3,30.0,30,testing,96\n")
    for ann in (load_annotations(anno, video_info=csv_path), load_annotations(anno)):  # CSV found beside
        assert [v.id for v in ann.videos] == ["aaa", "bbb"]
        assert [v.subset for v in ann.videos] == ["training", "validation"]
        assert ann.classes == ["Archery", "Surfing"]
        assert ann.videos[0].labels.tolist() == [1] and ann.videos[0].fps == 30.0
        assert ann.faults.counts == {"videos not in video_info (skipped)": 1,
                                     "segments ending after the video's end": 1}


def test_plain_csv(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("video,start,end,label,subset,duration\n"
                    "a,1.5,3,Jump,training,20\na,4,5,Run,training,20\n"
                    "b,0,2,Run,validation,10\nb,2,3,Ambiguous,validation,10\nc,,,,validation,7\n")
    ann = load_annotations(path)
    assert ann.classes == ["Jump", "Run"]
    a, b, c = ann.videos
    np.testing.assert_array_equal(a.segments, [[1.5, 3], [4, 5]])
    assert a.labels.tolist() == [0, 1] and a.duration == 20.0 and a.subset == "training"
    np.testing.assert_array_equal(b.ambiguous, [[2, 3]])
    assert c.segments.shape == (0, 2) and c.duration == 7.0
    assert not ann.faults


def _gzip(src, dst):
    dst.write_bytes(gzip.compress(src.read_bytes(), mtime=0))
    return dst


def _same(a: Annotations, b: Annotations) -> None:
    assert (a.videos, a.classes, a.meta, a.faults.counts) == (b.videos, b.classes, b.meta, b.faults.counts)


def test_gzip_json_and_csv_read_like_the_plain_files(tmp_path, thumos):
    plain_json = tmp_path / "gt.json"
    save_activitynet_json(thumos, plain_json, videos=thumos.videos[:30])
    plain_csv = tmp_path / "gt.csv"
    plain_csv.write_text("video,start,end,label,subset,duration\n"
                         "a,1.5,3,Jump,training,20\nb,0,2,Run,validation,10\nb,2,3,Ambiguous,validation,10\n"
                         "c,,,,validation,7\nc,8,9,Run,validation,7\n")  # one segment past the end
    for plain in (plain_json, plain_csv):
        want = load_annotations(plain)
        assert want.videos and (plain is plain_json or want.faults)
        _same(load_annotations(_gzip(plain, tmp_path / (plain.name + ".gz"))), want)
        # Detected by the gzip magic bytes too, whatever the name says.
        _same(load_annotations(_gzip(plain, tmp_path / ("magic_" + plain.name))), want)
    # A gzip video_info CSV (here for a THUMOS14 txt folder) reads like the plain one.
    info = tmp_path / "info.csv"
    info.write_text("video,duration,fps\nv1,12.5,30\n")
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "Diving_test.txt").write_text("v1 1.0 2.0\n")
    _same(load_annotations(folder, video_info=_gzip(info, tmp_path / "info.csv.gz")),
          load_annotations(folder, video_info=info))


def test_packaged_timelines_are_the_gzip_files():
    path = timelines_path("thumos14")
    assert path.name == "thumos14.json.gz" and path.read_bytes()[:2] == b"\x1f\x8b"
    assert len(json.loads(gzip.decompress(path.read_bytes()))["database"]) == 413


def test_corrupt_gzip_is_one_error_naming_the_file(tmp_path):
    good = gzip.compress(b'{"database": {}}', mtime=0)
    cases = {
        "truncated.json.gz": good[:-12],
        "flipped.json.gz": good[:12] + bytes([good[12] ^ 0xFF]) + good[13:],
        "plain_text.json.gz": b'{"database": {}}',  # a .gz name without gzip content
        "bad_crc.csv": good[:-8] + b"\0\0\0\0" + good[-4:],  # magic bytes, wrong checksum
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(GsmtError, match="gzip") as exc:
            load_annotations(path)
        assert exc.value.where == str(path) and "\n" not in str(exc.value)
    gz_bin = tmp_path / "bin.json.gz"
    gz_bin.write_bytes(gzip.compress(b"\xff\xfe\x00\x01", mtime=0))
    with pytest.raises(GsmtError, match="not UTF-8") as exc:
        load_annotations(gz_bin)
    assert exc.value.where == str(gz_bin)
    other = tmp_path / "gt.xml.gz"
    other.write_bytes(gzip.compress(b"<x/>", mtime=0))
    with pytest.raises(GsmtError, match="unknown annotation format"):
        load_annotations(other)


def test_plain_csv_duration_from_video_info_or_max_end(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("video,start,end,label\na,1,3,Jump\na,4,6.5,Jump\nb,2,3,Run\n")
    ann = load_annotations(path, video_info={"b": {"duration": 30, "subset": "test"}})
    assert [(v.duration, v.subset) for v in ann.videos] == [(6.5, "all"), (30.0, "test")]
    assert ann.faults.counts == {"videos without a duration (max segment end used)": 1}


def test_plain_csv_needs_header(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("a,1,3,Jump\n")
    with pytest.raises(GsmtError, match="CSV header must hold video,start,end,label"):
        load_annotations(path)


# ---------------------------------------------------------------------------------------------
# Faults, unsafe ids, errors


def test_fault_counting(tmp_path):
    path = _write_json(tmp_path / "f.json", {"database": {"v": {"subset": "test", "duration": 10, "annotations": [
        {"label": "A", "segment": [1, 2]},      # fine
        {"label": "A", "segment": [3, 3]},      # zero-length: kept
        {"label": "A", "segment": [5, 4]},      # end < start: kept, as the official evaluator does
        {"label": "B", "segment": [8, 12]},     # past the end: kept raw
        {"label": "B", "segment": [11, 13]},    # starts after the end: kept raw
        {"label": "B", "segment": [-1, 2]},     # starts before 0
        {"label": "B", "segment": [1, "NaN"]},  # non-finite: dropped
    ]}}})
    ann = load_annotations(path)
    v = ann.videos[0]
    np.testing.assert_array_equal(v.segments, [[1, 2], [3, 3], [5, 4], [8, 12], [11, 13], [-1, 2]])
    assert v.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ann.faults.summary("f.json") == (
        "f.json: 1 non-finite segment (dropped), 2 segments ending after the video's end, "
        "1 segment starting after the video's end, 1 segment starting before 0, "
        "1 segment with end < start (kept, as the official evaluator does), 1 zero-length segment (kept)"
    )


@pytest.mark.parametrize("bad", ["../../x", "/etc/x", "..", ".", "a/b", "a\\b", "a\0b", "", "C:x", 7])
def test_check_video_id_refuses(bad):
    with pytest.raises(GsmtError, match="unsafe video id") as exc:
        check_video_id(bad, "src.json")
    assert exc.value.where == "src.json"


def test_check_video_id_accepts():
    for ok in ("v_abc-DEF_12", "video_test_0000004", "a..b", "..a", "x y"):
        assert check_video_id(ok, "s") == ok


@pytest.mark.parametrize("bad", ["../../x", "/etc/x"])
def test_readers_refuse_unsafe_ids(tmp_path, bad):
    js = _write_json(tmp_path / "a.json", {"database": {bad: {"subset": "test", "duration": 5, "annotations": []}}})
    with pytest.raises(GsmtError, match="unsafe video id"):
        load_annotations(js)
    bsn = _write_json(tmp_path / "b.json", {bad: {"duration_second": 5, "annotations": []}})
    with pytest.raises(GsmtError, match="unsafe video id"):
        load_annotations(bsn, fmt="bsn")
    cs = tmp_path / "a.csv"
    cs.write_text(f"video,start,end,label,duration\n{bad},1,2,A,5\n")
    with pytest.raises(GsmtError, match="unsafe video id"):
        load_annotations(cs)
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "A_test.txt").write_text(f"{bad} 1 2\n")
    with pytest.raises(GsmtError, match="unsafe video id"):
        load_annotations(folder, video_info={bad: 5})


def test_prefix_strip_cannot_make_an_unsafe_id(tmp_path):
    path = _write_json(tmp_path / "a.json", {"v_..": {"subset": "test", "duration": 5, "annotations": []}})
    with pytest.raises(GsmtError, match=r"unsafe video id '\.\.'"):
        load_annotations(path)


def test_error_messages(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(GsmtError, match="no such file") as exc:
        load_annotations(missing)
    assert exc.value.where == str(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"database": ')
    with pytest.raises(GsmtError, match="not valid JSON"):
        load_annotations(bad)
    with pytest.raises(GsmtError, match="no videos in the file"):
        load_annotations(_write_json(tmp_path / "empty.json", {"version": "1", "database": {}}))
    with pytest.raises(GsmtError, match="no videos in the file"):
        load_annotations(_write_json(tmp_path / "empty2.json", {"version": "1"}))
    with pytest.raises(GsmtError, match="unknown annotation format"):
        load_annotations(_write_json(tmp_path / "list.json", [1, 2]))
    other = tmp_path / "gt.xml"
    other.write_text("<x/>")
    with pytest.raises(GsmtError, match="unknown annotation format"):
        load_annotations(other)
    with pytest.raises(GsmtError, match="unknown annotation format 'kinetics'"):
        load_annotations(bad, fmt="kinetics")
    with pytest.raises(GsmtError, match="predictions file"):
        load_annotations(_write_json(tmp_path / "pred.json", {"version": "1", "results": {}}))
    with pytest.raises(GsmtError, match="folder of <Class>_<subset>.txt"):
        load_annotations(bad, fmt="thumos")
    with pytest.raises(GsmtError, match="label 'B' is not in the file's class list"):
        load_annotations(_write_json(tmp_path / "cls.json", {"classes": ["A"], "database": {"v": {
            "subset": "test", "duration": 5, "annotations": [{"label": "B", "segment": [1, 2]}]}}}))
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(GsmtError, match="not UTF-8"):
        load_annotations(binary)


def test_missing_duration_names_file_and_video(tmp_path):
    path = _write_json(tmp_path / "a.json", {"database": {
        "ok": {"subset": "test", "duration": 5, "annotations": []},
        "vid42": {"subset": "test", "annotations": [{"label": "A", "segment": [1, 2]}]}}})
    with pytest.raises(GsmtError, match="video 'vid42' has no duration") as exc:
        load_annotations(path)
    assert exc.value.where == str(path)
    assert load_annotations(path, video_info={"vid42": 9.5}).videos[1].duration == 9.5
    _write_json(path, {"database": {"vid43": {"subset": "test", "duration": "?", "annotations": []}}})
    with pytest.raises(GsmtError, match="video 'vid43' has no valid duration"):
        load_annotations(path)


# ---------------------------------------------------------------------------------------------
# Writer and round trips


def test_round_trip_thumos(thumos, tmp_path):
    out = tmp_path / "sub" / "gt.json"
    save_activitynet_json(thumos, out)
    again = load_annotations(out)
    assert again.classes == thumos.classes
    assert again.videos == thumos.videos
    assert again.faults.counts == thumos.faults.counts
    raw = json.loads(out.read_text())
    entry = raw["database"]["video_test_0001292"]
    assert entry["annotations"] == [] and entry["ambiguous"][0] == {"label": "Ambiguous", "segment": [78.4, 113.2]}
    assert "gsmt" not in raw


def test_round_trip_keeps_class_order_meta_grid_and_selection(tmp_path):
    ann = Annotations(
        videos=[
            Video("b", "training", 12.25, np.array([[0.1, 0.30000000000000004]]), np.array([1]),
                  fps=29.97, feature_stride=4, feature_window=16),
            Video("a", "validation", 3.0, np.array([[1.0, 1.0], [0.5, 2.0]]), np.array([0, 1]),
                  ambiguous=np.array([[2.0, 2.5]])),
        ],
        classes=["Zebra", "Ant", "Unused"],
        meta={"preset": "anet-like", "grid": {"fps": 29.97, "feature_stride": 4}},
    )
    out = tmp_path / "gt.json"
    save_activitynet_json(ann, out)
    again = load_annotations(out)
    assert again.classes == ["Zebra", "Ant", "Unused"]
    assert again.videos == ann.videos
    assert again.meta == ann.meta
    save_activitynet_json(ann, out, videos=ann.subset("validation"))
    only = load_annotations(out)
    assert [v.id for v in only.videos] == ["a"] and only.videos[0] == ann.videos[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json"]


def test_save_unserialisable_meta_is_a_user_error(tmp_path):
    ann = Annotations(videos=[Video("a", "test", 1.0)], classes=[], meta={"bad": object()})
    with pytest.raises(GsmtError, match="cannot write annotations"):
        save_activitynet_json(ann, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_video_equality_compares_arrays():
    a = Video("a", "test", 5.0, np.array([[1.0, 2.0]]), np.array([0]))
    assert a == Video("a", "test", 5.0, np.array([[1.0, 2.0]]), np.array([0]))
    assert a != Video("a", "test", 5.0, np.array([[1.0, 2.5]]), np.array([0]))
    assert a != Video("a", "test", 5.0, np.array([[1.0, 2.0]]), np.array([1]))
    assert a != Video("a", "test", 5.0, np.array([[1.0, 2.0]]), np.array([0]), fps=30.0)


# ---------------------------------------------------------------------------------------------
# Atomic writes (gsmt.io.guard)


def test_atomic_write_text_and_bytes(tmp_path):
    out = tmp_path / "deep" / "er" / "f.txt"
    atomic_write_text(out, "héllo\n")
    assert out.read_bytes() == "héllo\n".encode()
    atomic_write_bytes(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    # Not the 0600 a bare mkstemp would leave: what open() with the process umask gives.
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.txt"]


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    out = tmp_path / "ckpt.npy"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            assert tmp.parent == tmp_path and tmp != out
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npy"]
    with atomic_path(out) as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.load(out).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npy"]


def test_atomic_write_into_a_file_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(GsmtError, match="cannot write"):
        atomic_write_text(blocker / "out.json", "{}")
