"""Progress within one video (issue 34): `extract_video(progress=...)` reports the frames read and
the total the container declares after each forward pass, never per frame; `gsmt extract` shows
it on its per-video bar, and says nothing of it under --quiet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gsmt.cli import main
from gsmt.video.backbones import load_backbone
from gsmt.video.clips import encode_mp4, save_random_image_encoder, save_random_video_encoder
from gsmt.video.extract import VideoProgress, extract_video
from gsmt.video.frames import VideoReader

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A 6-s, 10-fps, 64x48 video (60 frames), a tiny image encoder and a tiny VideoMAE."""
    root = tmp_path_factory.mktemp("progress")
    rng = np.random.default_rng(0)
    encode_mp4(root / "videos" / "six.mp4", rng.integers(0, 255, size=(60, 48, 64, 3), dtype=np.uint8), 10)
    torch.manual_seed(0)
    save_random_image_encoder(root / "dino")
    save_random_video_encoder(root / "videomae", processor=None)
    return {"video": root / "videos" / "six.mp4", "videos": root / "videos", "dino": root / "dino",
            "videomae": root / "videomae"}


@pytest.mark.parametrize("fps", [10.0, 5.0, 25.0])
def test_the_reader_knows_the_total_before_decoding(tiny, fps):
    reader = VideoReader(tiny["video"], fps, short_edge=32)
    expected = reader.expected_frames
    assert expected == round(6 * fps)
    assert sum(1 for _ in reader) == expected == reader.frames


@pytest.mark.parametrize("model, batch", [("dino", 16), ("videomae", 4)])
def test_progress_counts_frames_to_the_declared_total_once_per_batch(tiny, model, batch):
    calls = []
    got = extract_video(tiny["video"], load_backbone(tiny[model]), 10.0, 2, 4, batch,
                        progress=lambda done, total: calls.append((done, total)))
    assert got.frames == 60
    assert calls[-1] == (60, 60)  # the end: every frame read, of 60
    assert all(total == 60 for _, total in calls)  # the container's 6 s at 10 fps, known from the start
    counts = [done for done, _ in calls]
    assert counts == sorted(counts) and 0 < counts[0] < 60
    # One call per forward pass (and one at the end), never one per frame.
    passes = -(-60 // batch) if model == "dino" else -(-got.features.shape[0] // batch)
    assert len(calls) <= passes + 1
    if model == "dino":
        assert counts[:3] == [16, 32, 48]  # frames read when each batch went through the model


@pytest.mark.parametrize("declared", [None, 3.0])
def test_a_container_that_declares_no_or_a_short_length(tiny, monkeypatch, declared):
    """No declared length: frames without a total; a header that promises 3 s of 6: the total up to
    there, none past it (never done > total), and the frames read as the total at the end."""
    from gsmt.video import frames

    monkeypatch.setattr(frames, "_declared_duration", lambda container: declared)
    calls = []
    extract_video(tiny["video"], load_backbone(tiny["dino"]), 10.0, 2, 4, 8,
                  progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (60, 60)
    assert calls[:-1] == [(done, 30 if declared and done <= 30 else None) for done in (8, 16, 24, 32, 40, 48, 56, 60)]


def test_features_are_the_same_with_and_without_progress(tiny):
    backbone = load_backbone(tiny["dino"])
    plain = extract_video(tiny["video"], backbone, 10.0, 2, 4, 8)
    followed = extract_video(tiny["video"], backbone, 10.0, 2, 4, 8, progress=lambda done, total: None)
    assert plain.features.dtype == np.float32 and plain.features.flags["C_CONTIGUOUS"]
    assert np.array_equal(plain.features, followed.features) and plain.features.shape == (29, 48)


class _Bar:
    disable = False

    def __init__(self):
        self.shown = []

    def set_postfix_str(self, text, refresh=True):
        self.shown.append(text)


def test_the_bar_is_redrawn_at_most_every_half_second_and_at_the_end():
    now = [100.0]
    bar = _Bar()
    progress = VideoProgress.for_bar(bar, "talk", clock=lambda: now[0])
    for t, done in ((100.5, 300), (100.6, 320), (100.9, 400), (101.0, 600), (101.2, 700), (101.3, 800)):
        now[0] = t
        progress(done, 1200)
    now[0] = 102.0
    progress(1200, 1200)
    assert bar.shown == ["talk: 300/1200 frames, 600 frames/s, 00:01 left",
                         "talk: 600/1200 frames, 600 frames/s, 00:01 left",
                         "talk: 1200/1200 frames, 600 frames/s"]
    unknown = VideoProgress.for_bar(_Bar(), "x" * 50, clock=iter([100.0, 101.0]).__next__)
    unknown(90, None)  # a container that declares no length: frames and rate, no time left
    assert unknown.bar.shown == [f"{'x' * 15}...{'x' * 14}: 90 frames, 90 frames/s"]


def test_a_disabled_bar_gets_no_progress():
    bar = _Bar()
    bar.disable = True
    assert VideoProgress.for_bar(bar, "talk") is None


def test_gsmt_extract_shows_frames_within_the_video_and_nothing_when_quiet(tiny, tmp_path, capsys):
    args = ["extract", "--videos", str(tiny["videos"]), "--backbone", str(tiny["dino"]), "--fps", "10",
            "--feature-stride", "2", "--feature-window", "4", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "shown")]) == 0
    err = capsys.readouterr().err
    assert "six: 60/60 frames" in err and "frames/s" in err
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert np.array_equal(np.load(tmp_path / "shown" / "features" / "six.npy"),
                          np.load(tmp_path / "quiet" / "features" / "six.npy"))
