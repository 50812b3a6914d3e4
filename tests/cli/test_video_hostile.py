"""gsmt extract / gsmt detect against hostile input: outputs over inputs, foreign files, resumes after
a kill, absurd numbers, crafted model folders, huge frames and timestamps. Tiny random-weight models
saved with save_pretrained and 2 s clips of 64 x 48 px: nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import VIDEO_GRID, tiny_video_world

from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.video import frames
from gsmt.video.backbones import load_backbone
from gsmt.video.clips import encode_mp4
from gsmt.video.frames import VideoReader
from gsmt.video.extract import extract_video



@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A DINOv2 and a VideoMAE of a few thousand weights, two clips (2 s, 1.5 s) and a checkpoint
    trained for one epoch on synthetic 48-dimensional features (it records no backbone)."""
    return tiny_video_world(tmp_path_factory.mktemp("hostile"), "videomae", None)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: "), err
    return err[0]


def _extract(world, out: Path, *extra: str, videos: Path | None = None) -> int:
    return main(["extract", "--videos", str(videos or world["videos"]), "--backbone", str(world["dino"]), *VIDEO_GRID,
                 "--out", str(out), "--quiet", *extra])


# ------------------------------------------------------------------ extract: where it writes


def test_extract_out_holding_other_files_is_refused(world, tmp_path, capsys):
    """--out the video folder, the backbone folder or a data set: nothing written, one line."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes((world["videos"] / "a.mp4").read_bytes())
    (videos / "annotations.json").write_text('{"database": {}}')
    model = tmp_path / "model"
    model.mkdir()
    for f in world["dino"].iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    # The data set's annotations.json is at an output name: refused naming it (gsmt.io.owned); the model
    # folder's files are at none: the folder is refused as one holding other files.
    for out, refused in ((videos, f"{videos / 'annotations.json'}: exists and was not written by gsmt extract"),
                         (model, f"{model}: is not empty and holds no extract.json of an earlier gsmt extract")):
        before = _hashes(out)
        assert main(["extract", "--videos", str(videos), "--backbone", str(model), *VIDEO_GRID, "--out", str(out),
                     "--quiet"]) == 2
        assert refused in _one_error(capsys)
        assert _hashes(out) == before


def test_extract_never_replaces_its_annotations_input(world, tmp_path, capsys):
    """Resuming with the earlier output as --annotations (directly or through a link) is refused."""
    out = tmp_path / "data"
    assert _extract(world, out) == 0
    capsys.readouterr()
    (out / "link.json").symlink_to("annotations.json")
    before = _hashes(out)
    for given in (out / "annotations.json", out / "link.json"):
        assert _extract(world, out, "--annotations", str(given)) == 2
        line = _one_error(capsys)
        assert f"{out / 'annotations.json'}: is also an input of this command (--annotations" in line
    assert _hashes(out) == before
    # a copy is another file: read, and the folder's annotations.json written anew
    copy = tmp_path / "copy.json"
    copy.write_text((out / "annotations.json").read_text())
    assert _extract(world, out, "--annotations", str(copy)) == 0
    assert "extracted 0 videos (2 already done, 0 without features)" in capsys.readouterr().out


def test_extract_refuses_a_record_it_did_not_write(world, tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    # Not in the folder's record as gsmt extract's (gsmt.io.owned): refused before it is read.
    for text in ("[1, 2]", "{not json", '{"backbone": {"digest": "0"}, "grid": {}}'):
        (out / "extract.json").write_text(text)
        assert _extract(world, out) == 2
        assert "extract.json: exists and was not written by gsmt extract" in _one_error(capsys)
        assert sorted(p.name for p in out.iterdir()) == ["extract.json"]


def test_resume_after_a_kill_removes_leftovers_and_redoes_broken_records(world, tmp_path, capsys):
    out = tmp_path / "data"
    assert _extract(world, out) == 0
    capsys.readouterr()
    good = np.load(out / "features" / "b.npy")
    # what a SIGKILL leaves: atomic_path temporaries, and a record written by no gsmt
    for junk in (out / "features" / ".b.k1ll3d.tmp.npy", out / "extracted" / ".b.k1ll3d.tmp.json",
                 out / ".annotations.k1ll3d.tmp.json"):
        junk.write_bytes(b"partial")
    (out / "features" / "user.tmp.npy").write_bytes(b"not ours: no leading dot")
    # A done-record changed since gsmt extract wrote it (atomic writes: no kill leaves one half written)
    # is not gsmt's any more: refused naming it (gsmt.io.owned), never replaced; removed, it is redone.
    (out / "extracted" / "b.json").write_text("[1")
    assert _extract(world, out) == 2
    assert "b.json: exists and was not written by gsmt extract" in capsys.readouterr().err
    (out / "extracted" / "b.json").unlink()
    assert _extract(world, out) == 0
    assert "extracted 1 video (1 already done, 0 without features)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "features").iterdir()) == ["a.npy", "b.npy", "user.tmp.npy"]
    assert sorted(p.name for p in (out / "extracted").iterdir()) == ["a.json", "b.json"]
    assert not (out / ".annotations.k1ll3d.tmp.json").exists()
    np.testing.assert_array_equal(np.load(out / "features" / "b.npy"), good)
    assert json.loads((out / "extracted" / "b.json").read_text())["duration"] == pytest.approx(1.5)


def test_a_folder_with_other_files_subfolders_and_an_unreadable_video(world, tmp_path, capsys):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    (folder / "dir.mp4").mkdir()  # a folder with a video's name
    (folder / "notes.txt").write_text("not a video")
    (folder / "a.mp4").write_bytes((world["videos"] / "a.mp4").read_bytes())
    (folder / "sub" / "b.mp4").write_bytes((world["videos"] / "b.mp4").read_bytes())  # not recursed into
    locked = folder / "locked.mp4"
    locked.write_bytes((world["videos"] / "b.mp4").read_bytes())
    locked.chmod(0)
    try:
        assert _extract(world, tmp_path / "data", videos=folder) == 0
    finally:
        locked.chmod(0o644)
    err = capsys.readouterr().err
    assert "dir.mp4: not a regular file (a folder, a device or a pipe)" in err
    ann = json.loads((tmp_path / "data" / "annotations.json").read_text())["database"]
    if os.geteuid() == 0:  # root reads a chmod 000 file: the real outcome is a normal extraction
        assert sorted(ann) == ["a", "locked"] and "1 video not extracted (unreadable)" in err
    else:
        assert sorted(ann) == ["a"] and "locked.mp4: cannot read: Permission denied" in err
        assert "2 videos not extracted (unreadable)" in err


def test_two_videos_with_one_id_are_refused(world, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((world["videos"] / "a.mp4").read_bytes())
    (folder / "a.mkv").symlink_to(world["videos"] / "b.mp4")
    assert _extract(world, tmp_path / "data", videos=folder) == 2
    assert "two videos have the id 'a'" in _one_error(capsys)
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------ numbers, devices, memory


@pytest.mark.parametrize("args, needle", [
    (["--fps", "10", "--feature-stride", "2", "--feature-window", "5000"],
     "--feature-window: must be an integer in [1, 4096], got '5000'"),
    (["--fps", "10", "--feature-stride", "0", "--feature-window", "4"], "--feature-stride: must be an integer >= 1"),
    (["--fps", "0", "--feature-stride", "2", "--feature-window", "4"], "--fps: must be a finite number in (0, 1000]"),
    (["--fps", "1e-300", "--feature-stride", "2", "--feature-window", "4"],
     "--feature-window: 4 frames at 1e-300 fps last 4e+300 s, longer than any video gsmt takes (1e+06 s)"),
    ([*VIDEO_GRID, "--batch-size", "1000000000"], "--batch-size: must be an integer in [1, 1024], got '1000000000'"),
    ([*VIDEO_GRID, "--batch-size", "-1"], "--batch-size: must be an integer in [1, 1024], got '-1'"),
    ([*VIDEO_GRID, "--device", "cuda:99"], "--device: "),
])
def test_absurd_numbers_and_absent_devices_are_one_line(world, tmp_path, capsys, args, needle):
    try:  # argparse ends with SystemExit(2), gsmt's own checks return 2
        code = main(["extract", "--videos", str(world["videos"]), "--backbone", str(world["dino"]), *args,
                     "--out", str(tmp_path / "data"), "--quiet"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and needle in _one_error(capsys)
    assert not (tmp_path / "data").exists()


def test_device_cuda_without_cuda_is_one_line(world, tmp_path, capsys):
    code = main(["detect", str(world["videos"] / "a.mp4"), "--checkpoint", str(world["run"]), "--out",
                 str(tmp_path / "det"), "--backbone", str(world["dino"]), "--device", "cuda", "--quiet"])
    if torch.cuda.is_available():  # the real outcome on a machine with a GPU
        assert code == 0
    else:
        assert code == 2 and "--device: CUDA was asked for but is not available" in _one_error(capsys)


def test_python_callers_get_the_same_bounds(world):
    b = load_backbone(world["dino"])
    video = world["videos"] / "a.mp4"
    for kwargs, needle in (({"window": 10**9}, "--feature-window"), ({"batch_size": 10**9}, "--batch-size"),
                           ({"stride": 0}, "--feature-stride"), ({"fps": float("nan")}, "--fps")):
        args = {"fps": 10, "stride": 2, "window": 4, "batch_size": 16, **kwargs}
        with pytest.raises(GsmtError, match=needle):
            extract_video(video, b, args["fps"], args["stride"], args["window"], args["batch_size"])


def test_a_window_longer_than_the_video_on_a_video_backbone(world):
    """W = 4096 frames, stride 1, over 20 frames: one snippet whose missing frames are the last one,
    found without a loop over the 4096 windows open at each frame."""
    b = load_backbone(world["videomae"])
    video = world["videos"] / "a.mp4"
    got = extract_video(video, b, 10, 1, 4096)
    frames = np.stack(list(VideoReader(video, 10, short_edge=b.short_edge)))
    # offsets floor((j + 0.5) * 4096 / 4) = 512, 1536, 2560, 3584: all past frame 19, so frame 19
    np.testing.assert_allclose(got.features, b.encode_clips(frames[None, [19, 19, 19, 19]]), rtol=1e-5, atol=1e-6)
    assert got.faults.counts["videos shorter than one window (one snippet, last frame repeated)"] == 1


def test_frames_larger_than_the_bound_are_refused_before_decoding(world, monkeypatch):
    monkeypatch.setattr(frames, "MAX_PIXELS", 64 * 48 - 1)
    with pytest.raises(GsmtError, match=r"a\.mp4: frames of 64 x 48 pixels, more than gsmt decodes"):
        VideoReader(world["videos"] / "a.mp4", 10)


def test_a_timestamp_days_past_the_rest_stops_decoding(tmp_path):
    """A frame at 5e7 s (a crafted file) would make the resampling yield 5e8 copies of a frame."""
    path = tmp_path / "jump.mkv"
    _timed(path, [0.0, 0.1, 5e7])
    reader = VideoReader(path, 10)
    assert len(list(reader)) == 2 and reader.duration == pytest.approx(0.2)
    assert reader.faults.counts["videos with timestamps past 1e+06 s (decoded up to there)"] == 1


# ------------------------------------------------------------------ costs not bounded by the file's size (issue 33, h9)


def _timed(path: Path, times: list[float], *, rate=10, codec="mpeg4", size=(64, 48), pix_fmt="yuv420p") -> Path:
    """A small video whose frames carry the given timestamps (ms time base)."""
    w, h = size
    arrays = np.random.default_rng(1).integers(0, 256, (len(times), h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for array, t in zip(arrays, times):
            f = av.VideoFrame.from_ndarray(array, format="rgb24")
            f.pts, f.time_base = int(t * 1000), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_gap_of_an_hour_between_two_frames_ends_the_video_there(tmp_path, suffix):
    """3 frames, the last an hour after the others: 36,001 resampled frames before; now the video
    ends at the gap, counted. A slow stream (a frame per 90 s) keeps its own intervals."""
    path = _timed(tmp_path / f"gap{suffix}", [0.0, 0.1, 3600.1])
    assert path.stat().st_size < 10_000
    reader = VideoReader(path, 10)
    assert len(list(reader)) == 2 and reader.duration == pytest.approx(0.2)
    assert dict(reader.faults.counts) == {frames.GAP_FAULT: 1}
    assert frames.GAP_FAULT == ("videos with a gap of more than 100 frame intervals and 60 s between two frames "
                                "(decoded up to the gap)")
    slow = VideoReader(_timed(tmp_path / "slow.mkv", [90.0 * i for i in range(5)], rate=Fraction(1, 90)), 10)
    assert len(list(slow)) == 4500 and not slow.faults
    still = VideoReader(_timed(tmp_path / f"still{suffix}", [0.0, 0.1, 30.1, 30.2]), 10)  # a 30-s still picture
    assert len(list(still)) >= 303 and not still.faults  # (mp4: the last frame lasts an average interval)


def test_an_extreme_aspect_ratio_is_refused_before_scaling(world, tmp_path, capsys):
    """4096 x 2 passes the pixel bound; its short edge scaled to 32 px would be 65536 x 32 frames."""
    path = _timed(tmp_path / "wide.mkv", [0.0, 0.1, 0.2], size=(4096, 2))
    with pytest.raises(GsmtError) as info:
        VideoReader(path, 10, short_edge=32)
    assert str(info.value) == (
        f"{path}: frames of 4096 x 2 pixels would be scaled to 65536 x 32 (shorter edge 32 px, as the backbone "
        "takes them): an aspect ratio of 2048:1, past gsmt's bound (a longer edge of 8192 px after scaling); "
        "crop the video first")
    assert len(list(VideoReader(path, 10))) == 3  # unscaled it is only 8192 pixels
    videos = tmp_path / "videos"
    videos.mkdir()
    path.rename(videos / "wide.mkv")
    assert _extract(world, tmp_path / "out", videos=videos) == 2  # the one video: nothing extracted
    err = capsys.readouterr().err
    assert "wide.mkv: frames of 4096 x 2 pixels would be scaled to" in err and "Traceback" not in err


def test_a_file_that_decodes_in_part_is_counted(tmp_path):
    """The header declares 30 frames, the file holds 12: FFmpeg stops without an error."""
    path = tmp_path / "fast.mp4"
    arrays = np.random.default_rng(0).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for array in arrays:
            for p in s.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    whole = VideoReader(path, 10)
    assert len(list(whole)) == 30 and not whole.faults
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reader = VideoReader(path, 10)
    assert 0 < len(list(reader)) < 30
    assert dict(reader.faults.counts) == {frames.PARTIAL_FAULT: 1}
    assert frames.PARTIAL_FAULT == "videos decoded in part (fewer frames than their header declares: damaged)"


def test_an_audio_only_file_says_no_video_stream(tmp_path):
    path = tmp_path / "song.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(GsmtError) as info:
        VideoReader(path, 10)
    assert str(info.value) == f"{path}: no video stream (the file holds only audio: audio-only or not a video)"


@pytest.mark.parametrize("matrix, turned", [
    ((0, -1, 0, 1, 0, 0, 0, 0, 0), True),  # a proper quarter turn, as written by set_display_rotation(90)
    ((0, 0, 0, 0, 0, 0, 0, 0, 0), False),  # degenerate: PyAV's angle is INT_MIN (it turned frames by 270)
    ((0, 1, 0, -1, 1, 0, 0, 0, 0), False),  # a shear
    ((-1, 0, 0, 0, 1, 0, 0, 0, 0), False),  # a mirror
])
def test_only_the_four_proper_rotations_are_applied(tmp_path, matrix, turned):
    import struct

    path = encode_mp4(tmp_path / "r.mp4", np.zeros((3, 48, 64, 3), dtype=np.uint8), 10, rotation=90)
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd") - 4  # the track header's matrix: 9 big-endian 32-bit numbers at byte 48
    data[box + 48:box + 84] = struct.pack(">9i", *(v * 65536 for v in matrix[:8]), 0x40000000)
    path.write_bytes(bytes(data))
    reader = VideoReader(path, 10)
    first = next(iter(reader))
    reader.close()
    assert first.shape == ((64, 48, 3) if turned else (48, 64, 3))
    assert dict(reader.faults.counts) == ({} if turned else {frames.ROTATION_FAULT: 1})


@pytest.mark.parametrize("field, value, problem", [
    ("image_mean", "a", "field 'image_mean' must be a finite number, got 'a'"),
    ("image_mean", [0.5, "x", 0.5], "field 'image_mean' must be a finite number, got 'x'"),
    ("image_mean", [0.5, 0.5], "field 'image_mean' must be 1 or 3 numbers (one per colour channel), got [0.5, 0.5]"),
    ("image_std", [0.2, 0, 0.2], "field 'image_std' must be a finite number > 0, got 0"),
    ("rescale_factor", "1e400", "field 'rescale_factor' must be a finite number > 0, got inf"),
    ("rescale_factor", -1, "field 'rescale_factor' must be a finite number > 0, got -1"),
    ("crop_size", -32, "field 'crop_size' must be a whole number of pixels in 1..4096, got -32"),
    ("size", {"shortest_edge": 100000},
     "field 'size.shortest_edge' must be a whole number of pixels in 1..4096, got 100000"),
    ("crop_size", {"height": 32.5, "width": 32},
     "field 'crop_size.height' must be a whole number of pixels in 1..4096, got 32.5"),
    ("do_normalize", "yes", "field 'do_normalize' must be true or false, got 'yes'"),
])
def test_crafted_processor_values_are_one_line(world, tmp_path, capsys, field, value, problem):
    model = tmp_path / "model"
    model.mkdir()
    for f in world["dino"].iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    text = json.dumps({"crop_size": 32, "size": {"shortest_edge": 32}, field: value})
    (model / "preprocessor_config.json").write_text(text.replace('"1e400"', "1e400"))
    with pytest.raises(GsmtError) as info:
        load_backbone(model)
    assert str(info.value) == f"{model / 'preprocessor_config.json'}: {problem}"
    assert main(["extract", "--videos", str(world["videos"]), "--backbone", str(model), *VIDEO_GRID,
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert _one_error(capsys) == f"gsmt: error: {model / 'preprocessor_config.json'}: {problem}"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ crafted backbones


def test_crafted_model_folders_are_one_line_errors(world, tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=50)).save_pretrained(tmp_path / "bert")
    with pytest.raises(GsmtError, match="BertModel is not a vision model"):
        load_backbone(tmp_path / "bert")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoModel": "evil.M"}}))
    (remote / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    with pytest.raises(GsmtError, match="gsmt never runs a model folder's code"):
        load_backbone(remote)
    assert not (tmp_path / "ran").exists()
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "no_such_model_xyz"}))
    with pytest.raises(GsmtError, match="not a transformers model folder"):
        load_backbone(unknown)
    shapes = tmp_path / "shapes"  # a config declaring a far bigger model than its weights
    shapes.mkdir()
    config = json.loads((world["dino"] / "config.json").read_text())
    (shapes / "config.json").write_text(json.dumps({**config, "hidden_size": 4096, "intermediate_size": 8192}))
    (shapes / "model.safetensors").write_bytes((world["dino"] / "model.safetensors").read_bytes())
    with pytest.raises(GsmtError, match="weights of other shapes than its config.json declares"):
        load_backbone(shapes)
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text(json.dumps(config))
    with pytest.raises(GsmtError, match="cannot load the model's weights"):
        load_backbone(weightless)


def test_remote_code_is_never_trusted(world, monkeypatch):
    """Every transformers loading call says trust_remote_code=False (unset, transformers may ask on a terminal)."""
    import transformers

    seen: list[object] = []
    for cls in (transformers.AutoConfig, transformers.AutoModel):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append(kwargs.get("trust_remote_code", "unset"))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_backbone(world["dino"])
    assert len(seen) >= 2 and all(x is False for x in seen), seen  # AutoModel calls AutoConfig again


# ------------------------------------------------------------------ detect: where it writes


def _detect(world, out: Path, *videos: Path, backbone: Path | None = None) -> int:
    return main(["detect", *map(str, videos), "--checkpoint", str(world["run"]), "--out", str(out),
                 "--backbone", str(backbone or world["dino"]), "--quiet"])


def test_detect_never_writes_over_an_input(world, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for f in world["dino"].iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    video = tmp_path / "config.mp4"  # its <id>.json would be the backbone's config.json
    video.write_bytes((world["videos"] / "a.mp4").read_bytes())
    before = _hashes(model)
    assert _detect(world, model, video, backbone=model) == 2
    assert f"{model / 'config.json'}: is also an input of this command (--backbone)" in _one_error(capsys)
    assert _hashes(model) == before


def test_detect_refuses_a_video_named_like_the_submission(world, tmp_path, capsys):
    video = tmp_path / "detections.mp4"
    video.write_bytes((world["videos"] / "a.mp4").read_bytes())
    assert _detect(world, tmp_path / "det", video, world["videos"] / "b.mp4") == 2
    assert "detections.mp4: its detections would be detections.json" in _one_error(capsys)
    dup = tmp_path / "b.mkv"
    dup.symlink_to(world["videos"] / "b.mp4")
    assert _detect(world, tmp_path / "det", world["videos"] / "b.mp4", dup) == 2
    assert "b.mkv: has the id 'b' of" in _one_error(capsys)
    assert not (tmp_path / "det").exists()


def test_detect_never_replaces_files_it_did_not_write(world, tmp_path, capsys):
    """The film's own subtitles beside it stay; gsmt's own outputs of an earlier run are replaced."""
    folder = tmp_path / "films"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((world["videos"] / "a.mp4").read_bytes())
    subtitles = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nmy real subtitle\n"
    (folder / "a.vtt").write_text(subtitles)
    assert _detect(world, folder, folder / "a.mp4") == 2
    assert f"{folder / 'a.vtt'}: exists and was not written by gsmt detect" in _one_error(capsys)
    assert (folder / "a.vtt").read_text() == subtitles and sorted(p.name for p in folder.iterdir()) == ["a.mp4", "a.vtt"]
    out = tmp_path / "det"
    assert _detect(world, out, folder / "a.mp4") == 0 and _detect(world, out, folder / "a.mp4") == 0
    assert (out / "a.vtt").read_text().startswith("WEBVTT\n\nNOTE written by gsmt detect\n\n")
    (out / "a.json").write_text('{"mine": 1}')
    assert _detect(world, out, folder / "a.mp4") == 2
    assert "a.json: exists and was not written by gsmt detect" in _one_error(capsys)
    (out / "a.json").unlink()
    assert _detect(world, out, folder / "a.mp4") == 0  # the timeline is in the folder's record, unchanged
    (out / "detections.json").write_text('{"version": "VERSION 1.3", "results": {}, "external_data": {}}')
    assert _detect(world, out, folder / "a.mp4") == 2  # a submission of gsmt predict's shape, not detect's
    assert "detections.json: exists and was not written by gsmt detect" in _one_error(capsys)


def test_detect_with_a_checkpoint_recording_no_backbone(world, tmp_path, capsys):
    code = main(["detect", str(world["videos"] / "a.mp4"), "--checkpoint", str(world["run"]), "--out",
                 str(tmp_path / "det"), "--quiet"])
    line = _one_error(capsys)
    assert code == 2 and "the checkpoint records no backbone" in line and "pass --backbone" in line
    assert _detect(world, tmp_path / "det", world["videos"] / "a.mp4") == 0
    assert json.loads((tmp_path / "det" / "a.json").read_text())["grid"] == \
        {"fps": 10.0, "feature_stride": 2, "feature_window": 4}


def test_detect_on_a_full_disk_leaves_no_half_output_set(world, tmp_path, capsys, monkeypatch):
    """The second video's timeline hits a full disk (issue 33, row h8): one line, what the run
    wrote is gone (with the earlier run's submission), and the rerun is not refused."""
    import errno

    import matplotlib.figure

    out = tmp_path / "det"
    videos = (world["videos"] / "a.mp4", world["videos"] / "b.mp4")
    assert _detect(world, out, *videos) == 0
    capsys.readouterr()
    real, calls = matplotlib.figure.Figure.savefig, []

    def full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert _detect(world, out, *videos) == 2
    assert _one_error(capsys) == (f"gsmt: error: {out / 'b_timeline.png'}: cannot write: No space left on "
                                  "device; this run's 6 output files were removed")
    assert sorted(p.name for p in out.iterdir()) == [".gsmt-outputs.json"]
    monkeypatch.undo()
    assert _detect(world, out, *videos) == 0
    assert sorted(json.loads((out / "detections.json").read_text())["results"]) == ["a", "b"]
