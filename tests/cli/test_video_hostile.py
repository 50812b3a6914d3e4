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

from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.video import frames
from gsmt.video.backbones import load_backbone
from gsmt.video.clips import encode_mp4
from gsmt.video.frames import VideoReader
from gsmt.video.extract import extract_video

GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A DINOv2 and a VideoMAE of a few thousand weights, two clips (2 s, 1.5 s) and a checkpoint
    trained for one epoch on synthetic 48-dimensional features (it records no backbone)."""
    from transformers import Dinov2Config, Dinov2Model, VideoMAEConfig, VideoMAEModel

    root = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=96)).save_pretrained(root / "dino")
    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
                  ).save_pretrained(root / "videomae")
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    (root / "videos").mkdir()
    encode_mp4(root / "videos" / "a.mp4", frames, 10)
    encode_mp4(root / "videos" / "b.mp4", frames[:15], 10)
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--classes", "2", "--feature-dim", "48",
                 *GRID, "--out", str(root / "syn")]) == 0
    assert main(["train", "demo", "--data", str(root / "syn"), "--out", str(root / "run"), "--quiet",
                 "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "train.threads=1",
                 "--set", "data.T=32"]) == 0
    return {"root": root, "dino": root / "dino", "videomae": root / "videomae", "videos": root / "videos",
            "run": root / "run"}


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: "), err
    return err[0]


def _extract(world, out: Path, *extra: str, videos: Path | None = None) -> int:
    return main(["extract", "--videos", str(videos or world["videos"]), "--backbone", str(world["dino"]), *GRID,
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
    for out in (videos, model):
        before = _hashes(out)
        assert main(["extract", "--videos", str(videos), "--backbone", str(model), *GRID, "--out", str(out),
                     "--quiet"]) == 2
        line = _one_error(capsys)
        assert f"{out}: is not empty and holds no extract.json of an earlier gsmt extract" in line
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
    (out / "extract.json").write_text("[1, 2]")
    assert _extract(world, out) == 2
    assert "extract.json: is not the record of an earlier gsmt extract" in _one_error(capsys)
    (out / "extract.json").write_text("{not json")
    assert _extract(world, out) == 2
    assert "extract.json: not valid JSON" in _one_error(capsys)
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
    (out / "extracted" / "b.json").write_text("[1")
    (out / "features" / "user.tmp.npy").write_bytes(b"not ours: no leading dot")
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
        assert sorted(ann) == ["a", "locked"] and "1 videos not extracted (unreadable)" in err
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
    ([*GRID, "--batch-size", "1000000000"], "--batch-size: must be an integer in [1, 1024], got '1000000000'"),
    ([*GRID, "--batch-size", "-1"], "--batch-size: must be an integer in [1, 1024], got '-1'"),
    ([*GRID, "--device", "cuda:99"], "--device: "),
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
    frames = np.random.default_rng(1).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for array, t in zip(frames, [0.0, 0.1, 5e7]):
            f = av.VideoFrame.from_ndarray(array, format="rgb24")
            f.pts, f.time_base = int(t * 1000), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    reader = VideoReader(path, 10)
    assert len(list(reader)) == 2 and reader.duration == pytest.approx(0.2)
    assert reader.faults.counts["videos with timestamps past 1e+06 s (decoded up to there)"] == 1


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
