"""Issue 33, second round: what a failed or killed command leaves no longer blocks the next run
(rows h4), state of an earlier run is not trusted once its inputs changed (h5), and the API and
flags refuse what they would only pretend to honour (h6). Tiny random-weight models, 2 s clips and
a six-video synthetic data set: nothing is downloaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import VIDEO_GRID, VIDEO_RUN, assert_fatal, cli, tiny_video_world

from gsmt import Localizer
from gsmt.cli import main
from gsmt.engine.checkpoint import load_checkpoint
from gsmt.errors import GsmtError

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A DINOv2 of a few thousand weights (48-dim features), a VideoMAE whose processor makes 224 px
    crops for its 32 px model, two clips (2 s, 1.5 s), a synthetic data set on the same grid and
    a run trained one epoch on it (it records no backbone)."""
    return tiny_video_world(tmp_path_factory.mktemp("leftovers"), "vm224", {
        "image_processor_type": "VideoMAEImageProcessor", "size": {"shortest_edge": 224},
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True})


def _extract(world, out: Path, backbone: Path | None = None, videos: Path | None = None) -> int:
    return main(["extract", "--videos", str(videos or world["videos"]), "--backbone", str(backbone or world["dino"]),
                 *VIDEO_GRID, "--out", str(out), "--quiet"])


# ------------------------------------------------------------------ h4: leftovers that blocked the next run


def test_a_processor_the_model_cannot_take_is_one_line_and_leaves_nothing(world, tmp_path, capsys):
    out = tmp_path / "data"
    line = assert_fatal(cli(capsys, "extract", "--videos", world["videos"], "--backbone", world["vm224"], *VIDEO_GRID,
                            "--out", out, "--quiet"), world["vm224"], problem="224x224 px")
    assert "preprocessor_config.json" in line
    assert not out.exists() or list(out.iterdir()) == []
    assert _extract(world, out) == 0  # the corrected rerun: another backbone, same folder
    assert sorted(p.name for p in (out / "features").iterdir()) == ["a.npy", "b.npy"]


def test_a_job_record_without_outputs_never_refuses_the_next_run(world, tmp_path, capsys):
    """A run that failed after writing extract.json (no video readable) removes it; the record a
    killed run left before its first feature file is replaced by the next run's."""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "data"
    assert_fatal(cli(capsys, "extract", "--videos", junk, "--backbone", world["dino"], *VIDEO_GRID, "--out", out,
                     "--quiet"), out, problem="no video could be extracted")
    assert not (out / "extract.json").exists()
    # What a SIGKILL right after the record leaves: another backbone's record, no features, and the
    # lock file of the killed extract (its owner record), which says the record is that run's.
    out.mkdir(exist_ok=True)
    (out / "gsmt.lock").write_text(json.dumps({"pid": _dead_pid(), "command": "gsmt extract",
                                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    (out / "extract.json").write_text(json.dumps({"backbone": {"id": "other", "digest": "0" * 40},
                                                  "grid": {"fps": 5.0, "feature_stride": 1, "feature_window": 1}}))
    assert _extract(world, out) == 0
    assert "replacing the record of an earlier run that wrote no features" in capsys.readouterr().err
    assert json.loads((out / "extract.json").read_text())["grid"]["fps"] == 10.0
    # A record with outputs still binds: another grid is refused.
    assert main(["extract", "--videos", str(world["videos"]), "--backbone", str(world["dino"]), "--fps", "5",
                 "--feature-stride", "2", "--feature-window", "4", "--out", str(out), "--quiet"]) == 2
    assert "holds features of another backbone or grid" in capsys.readouterr().err


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# Runs `gsmt ARGV` and parks the process for good when it is about to rename the temporary of the
# `nth` write of a file named `name` into place (a marker file says so), so that the test can kill it
# there: the temporary is complete on disk, the output is not replaced yet.
PARKED = """
import os, sys, time
from pathlib import Path

marker, name, nth = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real_replace, seen = os.replace, [0]


def parked_replace(src, dst, *args, **kwargs):
    if Path(dst).name == name:
        seen[0] += 1
        if seen[0] == nth:
            marker.write_text(str(src))
            time.sleep(3600)
    return real_replace(src, dst, *args, **kwargs)


os.replace = parked_replace
from gsmt.cli import main

sys.exit(main(sys.argv[4:]))
"""


def _park_and_kill(tmp_path: Path, name: str, nth: int, argv: list, sig=signal.SIGKILL, code=None) -> Path:
    """Run `gsmt argv` until its `nth` atomic write of `name` is about to land, then send `sig`;
    returns the temporary file it leaves."""
    launcher, marker = tmp_path / "parked.py", tmp_path / "parked"
    launcher.write_text(PARKED)
    marker.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(launcher), str(marker), name, str(nth), *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() or not marker.read_text():
            assert proc.poll() is None, f"ended early: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, "never reached the write"
            time.sleep(0.05)
    finally:
        proc.send_signal(sig)
        proc.communicate()
    assert proc.returncode == (-sig if code is None else code)
    return Path(marker.read_text())


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()
            if "epoch" in json.loads(line)]


def test_a_kill_during_a_checkpoint_save_leaves_no_temporary_and_no_epoch_logged_twice(world, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "demo", "--data", world["syn"], "--out", run, "--quiet", "--set", "train.epochs=3", *VIDEO_RUN]
    # Epoch 2: logged, its last.pt written to a temporary, killed before the rename.
    temporary = _park_and_kill(tmp_path, "last.pt", 2, args)
    assert temporary.exists() and temporary.parent == run and temporary.name.startswith(".last.")
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert _epochs(run) == [1, 2]
    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    assert "resumed from epoch 1" in out
    assert not temporary.exists()
    assert not [p.name for p in run.iterdir() if ".tmp." in p.name]
    assert _epochs(run) == [1, 2, 3]  # epoch 2 once: the line of the killed run went
    assert load_checkpoint(run / "last.pt")["epoch"] == 3


def test_a_training_that_fails_before_its_first_checkpoint_leaves_no_run_behind(world, tmp_path, capsys,
                                                                                monkeypatch):
    from gsmt.engine import trainer

    run = tmp_path / "run"
    (tmp_path / "mine.txt").write_text("a user's file beside the run stays")

    def broken(*args, **kwargs):
        raise GsmtError("model", "cannot build (a failure after config.yaml was written)")

    monkeypatch.setattr(trainer, "build_model", broken)
    args = ["train", "demo", "--data", world["syn"], "--out", run, "--quiet", "--set", "train.epochs=1", *VIDEO_RUN]
    assert_fatal(cli(capsys, *args), "model", problem="cannot build")
    assert not run.exists() or list(run.iterdir()) == []
    monkeypatch.undo()
    # The corrected rerun, with another config and no --overwrite: not refused as an existing run.
    code, _, err = cli(capsys, *args, "--set", "model.num_layers=1")
    assert code == 0, err
    # A refused --resume (another config) keeps the run's record as it was.
    before = (run / "config.yaml").read_bytes()
    assert_fatal(cli(capsys, *args, "--set", "model.hidden_dim=16", "--resume"), problem="model.hidden_dim 32 -> 16")
    assert (run / "config.yaml").read_bytes() == before and (run / "last.pt").exists()


def test_a_terminated_detect_cleans_up_and_a_killed_ones_temporaries_go_with_the_next(world, tmp_path, capsys):
    out = tmp_path / "det"
    args = ["detect", world["videos"] / "a.mp4", world["videos"] / "b.mp4", "--checkpoint", world["run"],
            "--backbone", world["dino"], "--out", out, "--quiet"]
    # SIGTERM while b.vtt's temporary is about to land: the cleanup runs (exit 143), the temporary
    # goes, and b.json, written just before, is recorded as detect's, so the rerun replaces it.
    temporary = _park_and_kill(tmp_path, "b.vtt", 1, args, sig=signal.SIGTERM, code=143)
    assert temporary.name.startswith(".b.") and temporary.name.endswith(".tmp.vtt")
    assert not temporary.exists() and (out / "b.json").exists()
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    # What a SIGKILL leaves (no cleanup runs): temporaries of detect's outputs and of its record go
    # when the next detect holds the folder; a temporary-looking file of no output of it stays.
    left = [out / ".b.k1ll3dxy.tmp.vtt", out / ".a_timeline.k1ll3dxy.tmp.png", out / ".detections.k1ll3dxy.tmp.json",
            out / "..gsmt-outputs.k1ll3dxy.tmp.json"]
    for path in left:
        path.write_bytes(b"partial")
    mine = out / ".notes.abcdefgh.tmp.txt"
    mine.write_text("mine")
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    assert not any(p.exists() for p in left) and mine.exists()
    assert sorted(json.loads((out / "detections.json").read_text())["results"]) == ["a", "b"]


# ------------------------------------------------------------------ h5: stale state trusted


def test_a_video_replaced_since_is_extracted_again(world, tmp_path, capsys):
    from gsmt.video.clips import encode_mp4

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).write_bytes((world["videos"] / name).read_bytes())
    out = tmp_path / "data"
    assert _extract(world, out, videos=videos) == 0
    before = np.load(out / "features" / "b.npy")
    assert json.loads((out / "extracted" / "b.json").read_text())["video"]["size"] == (videos / "b.mp4").stat().st_size
    capsys.readouterr()
    assert _extract(world, out, videos=videos) == 0
    assert "extracted 0 videos (2 already done, 0 without features)" in capsys.readouterr().out
    # b.mp4 replaced by another, longer video under the same name
    frames = np.random.default_rng(1).integers(0, 256, (60, 48, 64, 3), dtype=np.uint8)
    encode_mp4(videos / "b.mp4", frames, 10)
    assert _extract(world, out, videos=videos) == 0
    assert "extracted 1 video (1 already done, 1 changed since and extracted again, 0 without features)" \
        in capsys.readouterr().out
    after = np.load(out / "features" / "b.npy")
    assert after.shape[0] > before.shape[0]
    assert json.loads((out / "extracted" / "b.json").read_text())["duration"] == pytest.approx(6.0)
    ann = json.loads((out / "annotations.json").read_text())["database"]
    assert ann["b"]["duration"] == pytest.approx(6.0)
    # A replaced video that no longer decodes: its stale features are not kept.
    (videos / "b.mp4").write_bytes(b"broken now")
    assert _extract(world, out, videos=videos) == 0
    assert not (out / "features" / "b.npy").exists() and "b" not in json.loads(
        (out / "annotations.json").read_text())["database"]


@pytest.fixture
def one_epoch(world, tmp_path) -> tuple[Path, Path, list]:
    """A private copy of the data set and a run trained one epoch on it."""
    import shutil

    data = Path(shutil.copytree(world["syn"], tmp_path / "data"))
    run = tmp_path / "run"
    args = ["train", "demo", "--data", data, "--out", run, "--quiet", *VIDEO_RUN]
    assert main([str(a) for a in args] + ["--set", "train.epochs=1"]) == 0
    return data, run, args


def _training_video(data: Path) -> str:
    db = json.loads((data / "annotations.json").read_text())["database"]
    return min(v for v, e in db.items() if e["subset"] == "validation")  # thumos-like trains on validation


def test_resume_refuses_changed_feature_files(one_epoch, capsys):
    data, run, args = one_epoch
    path = data / "features" / f"{_training_video(data)}.npy"
    np.save(path, np.load(path)[::-1].copy())  # same shape, other features
    before = (run / "last.pt").read_bytes()
    line = assert_fatal(cli(capsys, *args, "--set", "train.epochs=2", "--resume"), run / "last.pt",
                        problem="feature files of the training videos (size or content) differ")
    assert "annotations" not in line
    assert (run / "last.pt").read_bytes() == before


def test_resume_refuses_changed_labels(one_epoch, capsys):
    data, run, args = one_epoch
    doc = json.loads((data / "annotations.json").read_text())
    entry = doc["database"][_training_video(data)]
    entry["annotations"][0]["segment"] = [0.0, 0.5]
    (data / "annotations.json").write_text(json.dumps(doc))
    line = assert_fatal(cli(capsys, *args, "--set", "train.epochs=2", "--resume"), run / "last.pt",
                        problem="annotations of the training videos differ")
    assert "feature files" not in line


def test_resume_over_the_same_data_goes_on(one_epoch, capsys):
    data, run, args = one_epoch
    os.utime(data / "features" / f"{_training_video(data)}.npy", (1, 1))  # touched, not changed: fine
    code, _, err = cli(capsys, *args, "--set", "train.epochs=2", "--resume")
    assert code == 0, err
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    assert {"annotations_sha1", "features_sha1"} <= set(load_checkpoint(run / "last.pt")["data"])


# ------------------------------------------------------------------ h6: the API and flags


@pytest.mark.parametrize("device", [torch.device("meta"), "meta", "xla", "cuda:x"])
def test_the_api_refuses_devices_gsmt_cannot_run_on(world, device):
    with pytest.raises(GsmtError) as err:
        Localizer.from_checkpoint(world["run"], device=device)
    assert err.value.where == "device"
    assert Localizer.from_checkpoint(world["run"], device=torch.device("cpu")).device == torch.device("cpu")


def test_predict_many_refuses_a_mapping(world):
    loc = Localizer.from_checkpoint(world["run"])
    x = np.load(world["syn"] / "features" / f"{_training_video(world['syn'])}.npy")
    with pytest.raises(GsmtError, match="not a mapping") as err:
        loc.predict_many({"a": x})
    assert err.value.where == "features"


def test_a_duration_that_contradicts_the_grid_is_refused(world, tmp_path, capsys):
    syn = world["syn"]
    vid = _training_video(syn)
    duration = json.loads((syn / "annotations.json").read_text())["database"][vid]["duration"]
    x = np.load(syn / "features" / f"{vid}.npy")
    loc = Localizer.from_checkpoint(world["run"])  # its grid: 10 fps, stride 2, window 4
    loc.predict(x, duration=duration)  # the true duration fits
    assert loc.predict(x[:1], duration=0.1) is not None  # shorter than one window: one snippet, fine
    with pytest.raises(GsmtError, match=r"far past its duration 3 s") as err:
        loc.predict_many([x, x], durations=[duration, 3.0])
    assert err.value.where == "video_1" and "video 'video_1'" in err.value.problem
    # gsmt predict --features --durations: the same function, the same refusal naming the video
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "long.npy", x)
    np.save(folder / "short.npy", x[:10])
    csv = tmp_path / "durations.csv"
    csv.write_text(f"video,duration\nlong,3\nshort,{duration}\n")
    assert_fatal(cli(capsys, "predict", "--checkpoint", world["run"], "--features", folder, "--durations", csv,
                     "--out", tmp_path / "p.json"), "video 'long'", problem="far past its duration")
    assert not (tmp_path / "p.json").exists()
    csv.write_text(f"video,duration\nlong,{duration}\nshort,{duration}\n")
    code, _, err = cli(capsys, "predict", "--checkpoint", world["run"], "--features", folder, "--durations", csv,
                       "--out", tmp_path / "p.json")
    assert code == 0, err


def test_demo_video_refuses_preset_and_honours_set(tmp_path, capsys, monkeypatch):
    from gsmt.commands import demo

    out = tmp_path / "demo"
    assert_fatal(cli(capsys, "demo", "--video", "--preset", "anet-like", "--out", out), "--preset",
                 problem="has no preset")
    assert not out.exists()
    assert_fatal(cli(capsys, "demo", "--video", "--set", "train.lr=0", "--out", out), "train.lr")
    assert not out.exists()
    seen = {}

    def job(out, videos, seed, progress, cfg):
        seen.update(epochs=cfg.train.epochs, T=cfg.data.T, seed=cfg.train.seed)
        return {}

    monkeypatch.setattr(demo, "_run_video_demo", job)
    code, _, err = cli(capsys, "demo", "--video", "--set", "train.epochs=3", "--seed", "4", "--out", out,
                       "--quiet")
    assert code == 0, err
    assert seen == {"epochs": 3, "T": 32, "seed": 4}  # --set wins over the demo's 40 epochs, keeps the rest
