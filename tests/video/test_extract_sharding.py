"""`gsmt extract` under `torchrun` (issue 15): two gloo CPU processes share the videos out and write
the one-process folder byte for byte; a refusal on one rank (rank 0 alone takes the folder lock)
ends both ranks with the same one-line error and exit 2, never a rank waiting at a collective.
Also `gsmt detect`'s checks on existing files hold under its folder lock. Tiny random-weight DINOv2
saved with save_pretrained and clips of 64 x 48 px: nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import rank_env, two_ranks
from gsmt.cli import main
from gsmt.io.guard import LOCK_NAME, lock_folder
from gsmt.video.clips import ClipSpec, save_random_image_encoder, write_clips

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A DINOv2 of a few thousand weights; five 2 s clips with ground truth and, second in sorted
    order (rank 1's share under 2 processes), a file that is no video."""

    root = tmp_path_factory.mktemp("sharding")
    torch.manual_seed(0)
    save_random_image_encoder(root / "dino")
    write_clips(root / "clips", videos=5, seed=2, spec=ClipSpec(seconds=2.0, max_events=1, min_event=0.5,
                                                               max_event=1.0))
    (root / "clips" / "videos" / "clip_000b.mp4").write_bytes(b"not a video at all")
    return {"dino": root / "dino", "videos": root / "clips" / "videos",
            "annotations": root / "clips" / "annotations.json"}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _extract_args(world, out: Path) -> list[str]:
    return ["extract", "--videos", str(world["videos"]), "--backbone", str(world["dino"]), *GRID,
            "--annotations", str(world["annotations"]), "--out", str(out), "--quiet"]


def test_two_gloo_processes_write_the_one_process_folder(world, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_extract_args(world, one)) == 0
    single_out, single_err = capsys.readouterr()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gsmt.cli", *_extract_args(world, two)],
                          capture_output=True, text=True, env=rank_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    expected = _files(one)
    assert sorted(expected) == [".gsmt-outputs.json", "annotations.json", "extract.json",  # the record: gsmt.io.owned
                                *(f"extracted/clip_00{i}.json" for i in range(5)),
                                *(f"features/clip_00{i}.npy" for i in range(5))]
    assert _files(two) == expected  # every feature, record and annotation byte for byte (the folder's record too)
    # The one-process summary counts the bad file as a video without features.
    assert "extracted 5 videos (0 already done, 1 without features)" in single_out
    # Rank 0 alone reports, with the counts of both ranks: the one-process line but for the folder.
    assert done.stdout.strip().splitlines() == [single_out.strip().replace(str(one), str(two))]
    # The bad file is rank 1's; rank 0 reports the fault counts of both ranks, as one process does.
    summary = [line for line in single_err.splitlines() if line.startswith("gsmt: warning: gsmt extract:")]
    assert summary == ["gsmt: warning: gsmt extract: 1 video not extracted (unreadable)"]
    assert done.stderr.count(summary[0]) == 1
    assert not (two / LOCK_NAME).exists()




def test_rank_0_refused_by_the_lock_ends_both_ranks_with_exit_2(world, tmp_path):
    out = tmp_path / "locked"
    with lock_folder(out, "another job"):  # held by this test process: rank 0 cannot take it
        ranks = two_ranks(_extract_args(world, out))
        assert sorted(os.listdir(out)) == [LOCK_NAME]  # nothing written by either rank
    line = f"gsmt: error: {out / LOCK_NAME}: folder is in use by process {os.getpid()} (another job): " \
           "wait for it to end, or use another output folder"
    for code, stdout, stderr in ranks:
        assert code == 2, stderr[-3000:]
        assert stdout == ""
        assert line in stderr.splitlines()
        assert "Traceback" not in stderr


def test_an_invalid_out_ends_both_ranks_with_exit_2(world, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    ranks = two_ranks(_extract_args(world, out))
    line = f"gsmt: error: {out}: is not empty and holds no extract.json of an earlier gsmt extract: choose a " \
           "new or empty folder for --out (gsmt extract never writes among other files)"
    for code, stdout, stderr in ranks:
        assert code == 2, stderr[-3000:]
        assert stdout == ""
        assert line in stderr.splitlines()
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_another_rank_probing_out_is_no_foreign_content(tmp_path):
    """Every rank checks that --out is writable by creating and removing a `.gsmt-probe.*` file; a
    rank listing the folder at that moment must not call it "not empty" (it once refused rank 0 of
    a run whose rank 1 was probing)."""
    from gsmt.errors import GsmtError
    from gsmt.video.extract import _recorded_job

    out = tmp_path / "out"
    out.mkdir()
    (out / ".gsmt-probe.k2x9q1ab").write_bytes(b"")
    (out / LOCK_NAME).write_text("{}\n")
    assert _recorded_job(out) is None
    (out / "gsmt-probe.txt").write_text("a user's file\n")
    with pytest.raises(GsmtError, match="is not empty and holds no extract.json"):
        _recorded_job(out)


# ------------------------------------------------------------------ detect: checks under the lock


@pytest.fixture(scope="module")
def run(world, tmp_path_factory) -> Path:
    """A checkpoint trained one epoch on synthetic 48-dimensional features (it records no backbone)."""
    root = tmp_path_factory.mktemp("sharding_run")
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--classes", "2", "--feature-dim", "48",
                 *GRID, "--out", str(root / "syn")]) == 0
    assert main(["train", "demo", "--data", str(root / "syn"), "--out", str(root / "run"), "--quiet",
                 "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "train.threads=1",
                 "--set", "data.T=32"]) == 0
    return root / "run"


def test_detect_checks_existing_files_again_under_its_lock(world, run, tmp_path, monkeypatch, capsys):
    """A file that appears between detect's early checks and its lock (another process writing the
    film's subtitles, or a second detect) is seen under the lock and never replaced."""
    import gsmt.io.guard

    out = tmp_path / "det"
    foreign = out / "clip_000.vtt"
    take = gsmt.io.guard.lock_folder

    def lock_after_a_rival_wrote(folder, command="gsmt"):
        foreign.parent.mkdir(parents=True, exist_ok=True)
        foreign.write_text("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nthe film's own line\n")
        return take(folder, command)

    monkeypatch.setattr(gsmt.io.guard, "lock_folder", lock_after_a_rival_wrote)
    video = world["videos"] / "clip_000.mp4"
    assert main(["detect", str(video), "--checkpoint", str(run), "--backbone", str(world["dino"]),
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"gsmt: error: {foreign}: exists and was not written by gsmt detect: "
                                        "refusing to replace it; pass another --out"]
    assert foreign.read_text() == "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nthe film's own line\n"
    assert sorted(os.listdir(out)) == ["clip_000.vtt"]  # nothing written, the lock released
