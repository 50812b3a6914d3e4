"""Issue 34: a local backbone folder is recorded by its absolute path (a run works from any working
folder, and a moved backbone is found again with --backbone), and `--threads N` of gsmt extract /
gsmt detect sets torch's CPU threads and FFmpeg's decoding threads. Tiny random-weight models and
clips of a few seconds: nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.video import extract as extract_module
from gsmt.video.backbones import load_backbone, record_id
from gsmt.video.clips import encode_mp4, save_random_image_encoder, write_clips
from gsmt.video.extract import extract_video, torch_threads
from gsmt.video.frames import VideoReader

GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]


def _dino(folder: Path) -> Path:
    torch.manual_seed(0)
    save_random_image_encoder(folder)
    return folder


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """`work/bb/dino` (a backbone under a relative name), `work/clips` (4 clips), `elsewhere/`."""
    root = tmp_path_factory.mktemp("place")
    _dino(root / "work" / "bb" / "dino")
    write_clips(root / "work" / "clips", videos=4, seed=0)
    (root / "elsewhere").mkdir()
    return root


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: "), err
    return err[0]


def test_a_relative_backbone_folder_is_recorded_absolute_and_found_from_anywhere(place, monkeypatch, capsys,
                                                                                  one_thread):
    work = place / "work"
    monkeypatch.chdir(work)
    assert main(["extract", "--videos", "clips/videos", "--backbone", "bb/dino", *GRID, "--out", "data",
                 "--annotations", "clips/annotations.json", "--quiet"]) == 0
    absolute = str((work / "bb" / "dino").resolve())
    assert json.loads((work / "data" / "annotations.json").read_text())["gsmt"]["backbone"]["id"] == absolute
    assert json.loads((work / "data" / "extract.json").read_text())["backbone"]["id"] == absolute
    assert main(["train", "demo", "--data", "data", "--out", "run", "--quiet", "--set", "train.epochs=1",
                 "--set", "model.hidden_dim=32", "--set", "data.T=32", "--set", "train.threads=1"]) == 0
    capsys.readouterr()

    # From another working folder, with no --backbone: the recorded absolute folder is found.
    monkeypatch.chdir(place / "elsewhere")
    video = str(work / "clips" / "videos" / "clip_000.mp4")
    assert main(["detect", video, "--checkpoint", str(work / "run"), "--out", "det", "--quiet"]) == 0
    assert json.loads((place / "elsewhere" / "det" / "clip_000.json").read_text())["backbone"] == absolute

    # The backbone moved: the recorded folder is gone (one line saying so), --backbone NEWPLACE works.
    moved = place / "elsewhere" / "models" / "dino"
    moved.parent.mkdir()
    shutil.move(str(work / "bb" / "dino"), str(moved))
    try:
        assert main(["detect", video, "--checkpoint", str(work / "run"), "--out", "det2", "--quiet"]) == 2
        line = _one_error(capsys)
        assert absolute in line and "backbone folder not found" in line and "--backbone" in line
        assert "hf download" not in line
        assert main(["detect", video, "--checkpoint", str(work / "run"), "--out", "det2", "--backbone",
                     "models/dino", "--quiet"]) == 0
        # and another model in the new place is still refused by digest
        torch.manual_seed(1)
        other = place / "elsewhere" / "models" / "other"

        save_random_image_encoder(other)
        assert main(["detect", video, "--checkpoint", str(work / "run"), "--out", "det3", "--backbone",
                     "models/other", "--quiet"]) == 2
        assert "backbone mismatch" in _one_error(capsys)
    finally:
        shutil.move(str(moved), str(work / "bb" / "dino"))


def test_record_id_keeps_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert record_id("facebook/dinov2-small") == "facebook/dinov2-small"  # no such folder here: an id
    (tmp_path / "facebook" / "dinov2-small").mkdir(parents=True)
    assert record_id("facebook/dinov2-small") == str((tmp_path / "facebook" / "dinov2-small").resolve())


def test_a_relative_config_backbone_is_recorded_absolute_in_checkpoints(tmp_path, monkeypatch):
    import dataclasses

    from gsmt.config import Config
    from gsmt.engine.checkpoint import model_meta

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bb").mkdir()
    cfg = Config()
    for name, recorded in (("bb", str((tmp_path / "bb").resolve())), ("org/model", "org/model")):
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, backbone=name, backbone_digest="sha256:0"))
        assert model_meta(cfg, ["a"], 8)["backbone"] == {"id": recorded, "digest": "sha256:0"}


# ------------------------------------------------------------------ --threads


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "a.mp4"
    encode_mp4(path, np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8), 10)
    return path


def test_the_reader_gives_the_decoder_its_thread_count(video):
    default = VideoReader(video, 10)
    frames = list(default)
    assert default.decoder_threads == 0  # FFmpeg's own choice, as before
    for n in (1, 3):
        reader = VideoReader(video, 10, threads=n)
        got = list(reader)
        assert reader.decoder_threads == n
        assert len(got) == len(frames) and all(np.array_equal(a, b) for a, b in zip(got, frames))
    for bad in (0, -1, 1025, 2.0, True, "2"):
        with pytest.raises(GsmtError, match=r"--threads: must be an integer in \[1, 1024\]"):
            VideoReader(video, 10, threads=bad)


def test_torch_threads_are_set_for_the_job_and_restored():
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with pytest.raises(GsmtError, match="--threads"):
        with torch_threads(0):
            pass


def _spy(monkeypatch) -> list:
    """Every VideoReader made by the extractor, with torch's thread count when it was made."""
    made = []

    class Spy(VideoReader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((self, torch.get_num_threads()))

    monkeypatch.setattr(extract_module, "VideoReader", Spy)
    return made


def test_extract_threads_reach_torch_and_the_decoder(place, video, tmp_path, monkeypatch):
    made = _spy(monkeypatch)
    before = torch.get_num_threads()
    assert main(["extract", "--videos", str(video), "--backbone", str(place / "work" / "bb" / "dino"), *GRID,
                 "--out", str(tmp_path / "data"), "--threads", "3", "--quiet"]) == 0
    assert [(r.threads, r.decoder_threads, t) for r, t in made] == [(3, 3, 3)]
    assert torch.get_num_threads() == before  # restored after the job
    made.clear()
    assert main(["extract", "--videos", str(video), "--backbone", str(place / "work" / "bb" / "dino"), *GRID,
                 "--out", str(tmp_path / "data2"), "--quiet"]) == 0
    assert [(r.threads, r.decoder_threads, t) for r, t in made] == [(None, 0, before)]  # the defaults


def test_detect_threads_reach_torch_and_the_decoder(place, video, tmp_path, monkeypatch):
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--classes", "2", "--feature-dim", "48",
                 *GRID, "--out", str(tmp_path / "syn")]) == 0
    assert main(["train", "demo", "--data", str(tmp_path / "syn"), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "train.threads=1",
                 "--set", "data.T=32"]) == 0
    made = _spy(monkeypatch)
    before = torch.get_num_threads()
    assert main(["detect", str(video), "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "det"),
                 "--backbone", str(place / "work" / "bb" / "dino"), "--threads", "2", "--quiet"]) == 0
    assert [(r.threads, r.decoder_threads, t) for r, t in made] == [(2, 2, 2)]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("command", ["extract", "detect"])
@pytest.mark.parametrize("value", ["0", "-1", "1025", "two", "1.5", ""])
def test_bad_thread_counts_are_one_line(place, video, tmp_path, capsys, command, value):
    args = (["extract", "--videos", str(video), "--backbone", str(place / "work" / "bb" / "dino"), *GRID]
            if command == "extract" else ["detect", str(video), "--checkpoint", str(tmp_path / "run")])
    try:
        code = main([*args, "--out", str(tmp_path / "out"), "--threads", value, "--quiet"])
    except SystemExit as exc:
        code = exc.code
    line = _one_error(capsys)
    assert code == 2 and f"--threads: must be an integer in [1, 1024], got {value!r}" in line
    assert not (tmp_path / "out").exists()


def test_python_callers_get_the_thread_bounds(place, video):
    b = load_backbone(place / "work" / "bb" / "dino")
    with pytest.raises(GsmtError, match="--threads"):
        extract_video(video, b, 10, 2, 4, threads=0)
    with pytest.raises(GsmtError, match="--threads"):
        extract_module.run_extract(str(video), str(place / "work" / "bb" / "dino"), "unused", fps=10, stride=2,
                                   window=4, threads=5000)
