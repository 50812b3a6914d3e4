"""`gsmt predict` under `torchrun` (issue 14, item 3): the videos are shared out over the processes
(gloo, 2 CPU processes) and rank 0 writes one submission, byte for byte the one-process file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import rank_env, two_ranks
from gsmt.cli import main
from gsmt.synth.generate import generate

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny window-mode model (several windows per video, padded last windows, edge cuts), two epochs:
# enough for detections above theta_c on every video.
TRAIN = ["data.T=32", "model.hidden_dim=16", "model.num_layers=1", "train.batch_size=8", "train.epochs=2",
         "train.lr=0.005", "data.val_fraction=0", "train.device=cpu", "train.threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shard")
    data, run = root / "data", root / "run"
    generate(data, preset="thumos-like", videos=12, num_classes=3, difficulty=0.3, feature_dim=16, seed=3)
    args = ["train", "demo", "--data", str(data), "--out", str(run), "--quiet"]
    assert main(args + [a for o in TRAIN for a in ("--set", o)]) == 0
    return data, run


def test_two_gloo_processes_write_the_one_process_submission(trained, tmp_path, capsys):
    data, run = trained
    predict = ["predict", "--checkpoint", str(run), "--data", str(data), "--device", "cpu", "--batch-size", "3"]
    assert main(predict + ["--out", str(tmp_path / "one.json")]) == 0
    single = capsys.readouterr().out

    env = rank_env()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gsmt.cli", *predict, "--out", str(tmp_path / "two.json")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (tmp_path / "one.json").read_bytes(), (tmp_path / "two.json").read_bytes()
    assert b'"segment"' in one  # detections were found, not only empty lists
    assert two == one
    # Rank 0 alone reports; the summary line is the one-process line (but for the file name).
    assert done.stdout.strip().splitlines() == [single.strip().replace("one.json", "two.json")]
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_bad_file_in_one_rank_s_share_ends_both_ranks_with_exit_2(trained, tmp_path):
    """The test videos' 2nd feature file (rank 1's share under 2 processes) is corrupt: one process
    stops with the file's one-line error, and under 2 processes both ranks stop with that line."""
    import shutil

    data, run = trained
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    database = json.loads((bad / "annotations.json").read_text())["database"]
    test_videos = [vid for vid, video in database.items() if video["subset"] == "test"]  # shared out in order
    corrupt = bad / "features" / f"{test_videos[1]}.npy"
    corrupt.write_bytes(b"not a numpy file at all")
    predict = ["predict", "--checkpoint", str(run), "--data", str(bad), "--device", "cpu"]
    line = f"gsmt: error: {corrupt}: cannot read features, truncated or corrupt file"
    ranks = two_ranks(predict + ["--out", str(tmp_path / "two.json")])
    for code, stdout, stderr in ranks:
        assert code == 2, stderr[-3000:]
        assert [x for x in stderr.splitlines() if x.startswith("gsmt: error:")][0].startswith(line), stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "two.json").exists()
