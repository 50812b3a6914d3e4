"""gsmt extract / gsmt detect on real pixels: decoding, backbones, bad input, and the whole path
clips -> extract -> train -> detect (tiny random-weight transformers models saved to a temp
folder: nothing is downloaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.video.backbones import load_backbone
from gsmt.video.clips import encode_mp4, save_random_image_encoder, save_random_video_encoder, write_clips
from gsmt.video.frames import VideoReader
from gsmt.video.extract import extract_video

GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-weight models saved with save_pretrained: a VideoMAE and a DINOv2 image encoder."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_random_video_encoder(root / "videomae")  # with its 32-px processor
    torch.manual_seed(0)
    save_random_image_encoder(root / "dino")
    torch.manual_seed(1)
    save_random_image_encoder(root / "dino_other")
    return {"videomae": root / "videomae", "dino": root / "dino", "dino_other": root / "dino_other"}


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """48 clips of 6 s (36 training, 12 validation), seed 0."""
    out = tmp_path_factory.mktemp("clips")
    write_clips(out, videos=48, seed=0)
    return out


@pytest.fixture(scope="session")
def extracted(clips, models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("extracted") / "data"
    assert main(["extract", "--videos", str(clips / "videos"), "--backbone", str(models["dino"]), *GRID,
                 "--out", str(out), "--annotations", str(clips / "annotations.json"), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def trained(extracted, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("video_run") / "run"
    assert main(["train", "demo", "--data", str(extracted), "--out", str(run), "--quiet",
                 "--set", "data.T=32", "--set", "model.hidden_dim=64", "--set", "train.epochs=40",
                 "--set", "train.batch_size=8", "--set", "decode.m1=10", "--set", "decode.m2=30",
                 "--set", "train.threads=1"]) == 0
    return run


def _validation_videos(clips: Path) -> list[str]:
    db = json.loads((clips / "annotations.json").read_text())["database"]
    return [str(clips / "videos" / f"{v}.mp4") for v, e in db.items() if e["subset"] == "validation"]


# ------------------------------------------------------------------ the whole path


def test_end_to_end_real_pixels(clips, trained, extracted, tmp_path, capsys):
    """Held-out clips: average mAP (tIoU 0.5:0.95) far above the ~0 of uninformed segments."""
    out = tmp_path / "det"
    assert main(["detect", *_validation_videos(clips), "--checkpoint", str(trained), "--out", str(out),
                 "--quiet"]) == 0
    assert main(["eval", "--gt", str(extracted / "annotations.json"), "--pred", str(out / "detections.json"),
                 "--subset", "validation", "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["average_mAP"] > 0.2, metrics
    vtt = (out / "clip_040.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    assert " --> " in vtt
    assert (out / "clip_040_timeline.png").read_bytes()[:4] == b"\x89PNG"
    det = json.loads((out / "clip_040.json").read_text())
    assert det["duration"] == pytest.approx(6.0)
    assert det["grid"] == {"fps": 10.0, "feature_stride": 2, "feature_window": 4}


def test_extract_writes_a_data_folder(extracted, clips):
    ann = json.loads((extracted / "annotations.json").read_text())
    assert ann["gsmt"]["grid"] == {"fps": 10.0, "feature_stride": 2, "feature_window": 4}
    assert ann["gsmt"]["backbone"]["kind"] == "image" and ann["gsmt"]["backbone"]["digest"].startswith("sha256:")
    entry = ann["database"]["clip_000"]
    assert (entry["duration"], entry["fps"], entry["feature_stride"], entry["feature_window"]) == (6.0, 10.0, 2, 4)
    src = json.loads((clips / "annotations.json").read_text())["database"]["clip_000"]
    assert entry["annotations"] == src["annotations"] and entry["subset"] == src["subset"]
    feats = np.load(extracted / "features" / "clip_000.npy")
    assert feats.dtype == np.float32 and feats.shape == (29, 48)  # floor((60 - 4) / 2) + 1


def test_checkpoint_records_backbone_and_grid(trained, extracted):
    from gsmt.engine.checkpoint import check_meta, load_checkpoint

    meta = load_checkpoint(trained)["meta"]
    recorded = json.loads((extracted / "annotations.json").read_text())["gsmt"]["backbone"]
    assert meta["backbone"] == {"id": recorded["id"], "digest": recorded["digest"]}
    assert meta["grid"] == {"fps": 10.0, "feature_stride": 2, "feature_window": 4}
    old = {k: v for k, v in meta.items() if k != "backbone"}  # a checkpoint from before issue 15
    old["config"] = json.loads(json.dumps(meta["config"]))
    del old["config"]["data"]["backbone"], old["config"]["data"]["backbone_digest"]
    check_meta(old, "old.pt")
    with pytest.raises(GsmtError, match="meta.backbone"):
        check_meta({**meta, "backbone": {"id": 3}}, "bad.pt")


def test_detect_refuses_another_backbone_or_grid(trained, clips, models, tmp_path, capsys):
    video = _validation_videos(clips)[0]
    code = main(["detect", video, "--checkpoint", str(trained), "--out", str(tmp_path / "a"),
                 "--backbone", str(models["dino_other"]), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "backbone mismatch" in err and len(err.strip().splitlines()) == 1
    code = main(["detect", video, "--checkpoint", str(trained), "--out", str(tmp_path / "b"),
                 "--feature-stride", "4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "grid mismatch" in err and "feature_stride 2" in err
    # a copy of the recorded backbone in another folder is the same backbone (same digest)
    import shutil

    copy = shutil.copytree(models["dino"], tmp_path / "copy")
    assert main(["detect", video, "--checkpoint", str(trained), "--out", str(tmp_path / "c"),
                 "--backbone", str(copy), "--quiet"]) == 0


def test_predict_video_api_matches_detect(trained, clips, tmp_path):
    from gsmt import Localizer

    video = _validation_videos(clips)[1]
    dets = Localizer.from_checkpoint(trained).predict_video(video)
    assert main(["detect", video, "--checkpoint", str(trained), "--out", str(tmp_path), "--quiet"]) == 0
    rows = json.loads((tmp_path / f"{Path(video).stem}.json").read_text())["detections"]
    # detect writes times in milliseconds and scores to 6 decimals, as `gsmt predict` does
    assert [(d.label, round(d.start, 3), round(d.end, 3), round(d.score, 6)) for d in dets] == \
        [(r["label"], r["segment"][0], r["segment"][1], r["score"]) for r in rows]


def test_extract_resumes_and_refuses_another_grid(extracted, clips, models, capsys):
    args = ["extract", "--videos", str(clips / "videos"), "--backbone", str(models["dino"]), "--out", str(extracted),
            "--annotations", str(clips / "annotations.json"), "--quiet"]
    before = (extracted / "features" / "clip_003.npy").stat().st_mtime_ns
    assert main([*args, *GRID]) == 0
    assert "extracted 0 videos (48 already done" in capsys.readouterr().out
    assert (extracted / "features" / "clip_003.npy").stat().st_mtime_ns == before
    assert main([*args, "--fps", "10", "--feature-stride", "3", "--feature-window", "4"]) == 2
    assert "another backbone or grid" in capsys.readouterr().err


# ------------------------------------------------------------------ backbones


def test_missing_model_is_one_line_error(capsys, tmp_path):
    with pytest.raises(GsmtError, match="hf download no-such-org/no-such-model"):
        load_backbone("no-such-org/no-such-model")
    code = main(["extract", "--videos", str(tmp_path), "--backbone", "no-such-org/no-such-model", *GRID,
                 "--out", str(tmp_path / "o")])
    assert code == 2


def test_videomae_backbone_reads_its_processor_config(models, clips):
    b = load_backbone(models["videomae"])
    assert (b.kind, b.feature_dim, b.num_frames, b.image_size, b.short_edge) == ("video", 32, 4, (32, 32), 36)
    assert (b.mean, b.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    got = extract_video(clips / "videos" / "clip_000.mp4", b, 10, 2, 4, batch_size=5)
    assert got.features.shape == (29, 32) and np.isfinite(got.features).all()
    # the batch size changes nothing; snippet i is the model on frames (2i+0, 2i+1, 2i+2, 2i+3) sampled [0, 1, 2, 3]
    again = extract_video(clips / "videos" / "clip_000.mp4", b, 10, 2, 4, batch_size=16)
    np.testing.assert_allclose(got.features, again.features, rtol=1e-5, atol=1e-6)
    frames = np.stack(list(VideoReader(clips / "videos" / "clip_000.mp4", 10, short_edge=36)))
    np.testing.assert_allclose(b.encode_clips(frames[None, 6:10]), got.features[3:4], rtol=1e-5, atol=1e-6)


def test_image_backbone_pools_frames_over_the_window(models, clips):
    b = load_backbone(models["dino"])
    assert (b.kind, b.feature_dim, b.pooling) == ("image", 48, "pooler")
    got = extract_video(clips / "videos" / "clip_001.mp4", b, 10, 2, 4, batch_size=7)
    frames = np.stack(list(VideoReader(clips / "videos" / "clip_001.mp4", 10, short_edge=b.short_edge)))
    per_frame = b.encode_frames(frames)
    expected = np.stack([per_frame[2 * i:2 * i + 4].mean(0) for i in range(29)])
    np.testing.assert_allclose(got.features, expected, rtol=1e-4, atol=1e-5)


def test_eval_imports_no_video_library(tmp_path, extracted):
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"results": {"clip_040": [{"label": "sweep", "segment": [1, 2], "score": 0.5}]}}))
    code = ("import sys; from gsmt.cli import main; main(['eval', '--gt', sys.argv[1], '--pred', sys.argv[2]]);"
            "bad = [m for m in ('torch', 'av', 'transformers') if m in sys.modules]; sys.exit(len(bad))")
    result = subprocess.run([sys.executable, "-c", code, str(extracted / "annotations.json"), str(pred)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ decoding and bad input


def _numbered(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose grey level is 20 * their index: which source frame a resampled frame shows."""
    return np.repeat((np.arange(n, dtype=np.uint8) * 20)[:, None, None, None], h * w * 3).reshape(n, h, w, 3)


def _index(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / 20))


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.41, 0.42, 0.8, 1.0, 1.005, 1.3]
    path = encode_mp4(tmp_path / "vfr.mp4", _numbered(10), 10, times=times)
    reader = VideoReader(path, 10)
    shown = [_index(f) for f in reader]
    # frame k shows the last source frame with time <= k / 10; the last frame lasts one average interval
    expected = [max(i for i, t in enumerate(times) if t <= k / 10 + 1e-9) for k in range(len(shown))]
    assert shown == expected
    assert shown[:10] == [0, 1, 2, 2, 3, 5, 5, 5, 6, 6]  # k = 4 at t = 0.4 shows frame 3 (t = 0.4)
    assert reader.duration > 1.3


def test_rotation_metadata_turns_frames_upright(tmp_path):
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :16, :16] = 255  # a white block at the top-left corner
    path = encode_mp4(tmp_path / "rot.mp4", frames, 10, rotation=90)
    out = list(VideoReader(path, 10))
    assert out[0].shape == (64, 48, 3)  # a quarter turn: portrait
    # 90 degrees counter-clockwise takes the top-left corner to the bottom-left
    assert out[0][-16:, :16].mean() > 200 and out[0][:16, :16].mean() < 50


class _SideType:
    def __init__(self, name: str):
        self.name = name


class _Side:
    def __init__(self, name: str, data: bytes):
        self.type, self._data = _SideType(name), data

    def __bytes__(self) -> bytes:
        return self._data


class _Frame:
    def __init__(self, side_data, rotation: float):
        self.side_data, self.rotation = side_data, rotation


@pytest.mark.parametrize("mapping", [False, True])
def test_display_rotation_read_from_either_pyav_side_data_container(mapping):
    """PyAV 18.1.0 iterates a frame's side data as the side data; 18.1.1 as their types (a mapping):
    both give the quarter turn, whichever PyAV is installed (CI once got the other one)."""
    import struct

    from gsmt.video.frames import _display_rotation

    one = 1 << 16
    sides = [_Side("SEI_UNREGISTERED", b"x" * 5), _Side("DISPLAYMATRIX", struct.pack("=9i", 0, -one, 0, one, 0, 0, 0, 0,
                                                                                      1 << 30))]
    container = {side.type: side for side in sides} if mapping else sides
    assert _display_rotation(_Frame(container, 90.0)) == 90.0
    shear = [_Side("DISPLAYMATRIX", struct.pack("=9i", 0, one, 0, -one, one, 0, 0, 0, 1 << 30))]
    assert np.isnan(_display_rotation(_Frame({s.type: s for s in shear} if mapping else shear, 90.0)))
    assert _display_rotation(_Frame({} if mapping else [], 0.0)) == 0.0


def test_odd_sizes_decode_and_extract(tmp_path, models):
    path = encode_mp4(tmp_path / "odd.mp4", _numbered(12, h=37, w=51), 10, pix_fmt="yuv444p")
    b = load_backbone(models["dino"])
    got = extract_video(path, b, 10, 2, 4)
    assert got.features.shape == (5, 48)  # 12 frames: floor((12 - 4) / 2) + 1


def _bad_files(root: Path, good: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {"empty": root / "empty.mp4", "garbage": root / "garbage.mp4", "truncated": root / "truncated.mp4",
             "audio": root / "audio.mp4"}
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    with av.open(str(files["audio"]), "w") as c:
        s = c.add_stream("aac", rate=8000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            frame.pts = i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return files


def test_bad_videos_are_one_line_errors(tmp_path, clips):
    files = _bad_files(tmp_path / "bad", clips / "videos" / "clip_000.mp4")
    problems = {"empty": "empty file", "garbage": "not a readable video", "audio": "no video stream"}
    for kind, needle in problems.items():
        with pytest.raises(GsmtError, match=needle) as exc:
            list(VideoReader(files[kind], 10))
        assert "\n" not in str(exc.value) and str(files[kind]) in str(exc.value)
    with pytest.raises(GsmtError, match="not a readable video|no decodable"):
        list(VideoReader(files["truncated"], 10))  # the mp4 index (moov) is at the end: nothing to read


def test_a_batch_with_bad_videos_still_extracts_the_good_ones(tmp_path, clips, models, capsys):
    folder = tmp_path / "videos"
    _bad_files(folder, clips / "videos" / "clip_000.mp4")
    (folder / "good.mp4").write_bytes((clips / "videos" / "clip_001.mp4").read_bytes())
    encode_mp4(folder / "short.mp4", _numbered(3), 10)  # 0.3 s: shorter than one 4-frame window
    out = tmp_path / "data"
    assert main(["extract", "--videos", str(folder), "--backbone", str(models["dino"]), *GRID,
                 "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert sum("gsmt: warning:" in line for line in err) == len(err)
    assert "4 videos not extracted (unreadable)" in err[-1] and "1 video shorter than one window" in err[-1]
    ann = json.loads((out / "annotations.json").read_text())
    assert sorted(ann["database"]) == ["good", "short"]
    assert np.load(out / "features" / "short.npy").shape == (1, 48)
    assert ann["database"]["short"]["duration"] == pytest.approx(0.3)


def test_video_demo_end_to_end(tmp_path, capsys, one_thread):
    """`gsmt demo --video` on 8 clips: features, a trained run, detections, metrics and a timeline
    with the ground-truth row (gsmt detect alone knows no ground truth)."""
    out = tmp_path / "vdemo"
    assert main(["demo", "--video", "--videos", "8", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["average_mAP"] <= 1.0
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == [".gsmt-outputs.json", "backbone", "clips", "data", "detections",
                                                     "metrics.json", "run", "timeline.png"]  # and its record
    capsys.readouterr()
    assert main(["demo", "--video", "--videos", "8", "--out", str(out)]) == 2  # never over its own results
    assert "use --overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------ detect's outputs (no pixels)


def _detections(n: int, *, seed: int = 0, low: float = 0.6):
    from gsmt.api import Detection

    rng = np.random.default_rng(seed)
    starts = rng.uniform(0.0, 280.0, n) + 0.1 * 3  # 0.30000000000000004-style float noise
    return [Detection(float(s), float(s + rng.uniform(1.0, 15.0)), f"class{int(k)}", float(sc))
            for s, k, sc in zip(starts, rng.integers(0, 6, n), rng.uniform(low, 1.0, n))]


def _cues(vtt: str) -> list[list[str]]:
    blocks = [b.splitlines() for b in vtt.strip().split("\n\n")]
    return [b for b in blocks if len(b) == 3 and " --> " in b[1]]


def test_every_detection_above_min_score_is_a_cue():
    """44 actions at >= 0.6 in a 5-min video are 44 cues (there was a hidden cap of 20), numbered
    1..n in time order; --max-cues keeps the best n."""
    from gsmt.video.pipeline import webvtt

    dets = _detections(44)
    low = [d for d in _detections(30, seed=1, low=0.0) if d.score < 0.5]
    cues = _cues(webvtt(dets + low, 300.0, min_score=0.6))
    assert len(cues) == 44 and [c[0] for c in cues] == [str(i) for i in range(1, 45)]
    starts = [c[1].split(" --> ")[0] for c in cues]
    assert starts == sorted(starts)
    best = sorted(dets, key=lambda d: -d.score)[:5]
    cues = _cues(webvtt(dets + low, 300.0, min_score=0.6, max_cues=5))
    assert sorted(c[2] for c in cues) == sorted(f"{d.label} ({d.score:.2f})" for d in best)
    assert len(_cues(webvtt(dets, 300.0, min_score=0.0, max_cues=1000))) == 44


def test_cue_times_are_milliseconds():
    from gsmt.api import Detection
    from gsmt.video.pipeline import webvtt

    vtt = webvtt([Detection(22.159999999999997, 3661.0004999, "Jump", 0.9),
                  Detection(5.0001, 5.0003, "Blink", 0.9)], 4000.0, min_score=0.5)
    cues = _cues(vtt)
    assert [c[1] for c in cues] == ["00:00:22.160 --> 01:01:01.000"]  # a cue shorter than 1 ms is none


def test_detect_writes_rounded_times_all_cues_and_a_lanes_timeline(tmp_path, monkeypatch, capsys):
    """`gsmt detect` on one video (detections stubbed): times in <id>.json to the millisecond, every
    detection >= --min-score a cue, a compact timeline (44 detections: one lane per class, no
    ground-truth row), and "1 video" in the summary."""
    from gsmt.api import Localizer
    from gsmt.errors import Faults
    from gsmt.video import pipeline

    classes = [f"class{k}" for k in range(6)]
    dets = _detections(44) + [d for d in _detections(40, seed=2, low=0.0) if d.score < 0.3]
    loc = type("Loc", (), {"meta": {}, "classes": classes})()
    monkeypatch.setattr(Localizer, "from_checkpoint", classmethod(lambda cls, *a, **k: loc))
    monkeypatch.setattr(pipeline, "setup_for", lambda *a, **k: pipeline.Setup(
        type("B", (), {"name": "stub"})(), 10.0, 2, 4))
    drawn = {}

    def timeline(path, **kw):
        drawn.update(kw)
        return real(path, **kw)

    import gsmt.viz.timeline as tl

    real = tl.plot_timeline
    monkeypatch.setattr(tl, "plot_timeline", timeline)
    monkeypatch.setattr(pipeline, "video_detections", lambda *a, **k: (dets, 300.000000001, Faults()))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"stub")
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"stub")
    out = tmp_path / "det"
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--quiet",
                 "--min-score", "0.6"]) == 0
    assert "detected actions in 1 of 1 video -> " in capsys.readouterr().out
    text = (out / "clip.json").read_text()
    got = json.loads(text)
    assert got["duration"] == 300.0 and len(got["detections"]) == len(dets)
    for row, d in zip(got["detections"], dets):
        assert row["segment"] == [round(d.start, 3), round(d.end, 3)]
        assert all(len(repr(t).split(".")[1]) <= 3 for t in row["segment"])
    assert len(_cues((out / "clip.vtt").read_text())) == 44
    assert drawn["gt_segments"] is None and drawn["min_score"] == 0.6 and drawn["top"] is None
    fig = tl.timeline_figure(**drawn)
    assert [t.get_text().split(" (")[0] for t in fig.axes[0].get_yticklabels()] == classes
    assert (out / "clip_timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--quiet",
                 "--min-score", "0.6", "--max-cues", "7"]) == 0
    assert len(_cues((out / "clip.vtt").read_text())) == 7


def test_detect_shows_progress_within_each_video(clips, trained, tmp_path, capsys):
    video = _validation_videos(clips)[0]
    assert main(["detect", video, "--checkpoint", str(trained), "--out", str(tmp_path / "det")]) == 0
    err = capsys.readouterr().err
    assert f"{Path(video).stem}: 60/60 frames" in err and "frames/s" in err
