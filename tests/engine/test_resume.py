"""A training run killed with SIGKILL mid-epoch resumes to bit-identical weights and the same metrics
(EMA, validation and best-checkpoint selection included)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN

from gsmt.cli import main
from gsmt.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS_PER_EPOCH = 7  # 49 training videos in batches of 8

# Runs `gsmt train` and parks the process for good right after its optimiser step number
# `pause_at` (writing a marker file first), so the test can kill it at a known point.
LAUNCHER = """
import sys, time
from pathlib import Path

import gsmt.engine.trainer as trainer
from gsmt.cli import main

marker, pause_at = Path(sys.argv[1]), int(sys.argv[2])
make_optimizer = trainer._optimizer


def parked_optimizer(cfg, model):
    optimizer = make_optimizer(cfg, model)
    steps = [0]

    def after_step(opt, args, kwargs):
        steps[0] += 1
        if steps[0] == pause_at:
            marker.write_text(str(steps[0]))
            time.sleep(3600)

    optimizer.register_step_post_hook(after_step)
    return optimizer


trainer._optimizer = parked_optimizer
sys.exit(main(sys.argv[3:]))
"""


def train_args(data: Path, run: Path) -> list[str]:
    return ["train", "demo", "--data", str(data), "--out", str(run), "--quiet",
            *[a for o in TINY_RUN for a in ("--set", o)]]


def start_and_kill_in_epoch_2(data: Path, run: Path, tmp_path: Path) -> None:
    launcher, marker = tmp_path / "launcher.py", tmp_path / "paused"
    launcher.write_text(LAUNCHER)
    proc = subprocess.Popen([sys.executable, str(launcher), str(marker), str(STEPS_PER_EPOCH + 1),
                             *train_args(data, run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, f"training ended early: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, "training did not reach epoch 2"
            time.sleep(0.05)
        # Parked after the first step of epoch 2: epoch 1's checkpoint is on disk, epoch 2's is not.
        assert load_checkpoint(run / "last.pt")["epoch"] == 1
        assert marker.read_text() == str(STEPS_PER_EPOCH + 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def epoch_records(run: Path) -> list[dict]:
    """Logged epoch metrics, less the wall-clock throughput."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in records if "epoch" in r]


def test_killed_run_resumes_to_identical_weights_and_metrics(tiny_data, tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    start_and_kill_in_epoch_2(tiny_data, run, tmp_path)
    assert [r["epoch"] for r in epoch_records(run)] == [1]

    assert main(train_args(tiny_data, run) + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resumed from epoch 1 ({run / 'last.pt'})" in out
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"event": "resumed", "from_epoch": 1} in events

    # `tiny_run` is the same config and seed trained without interruption.
    resumed, reference = load_checkpoint(run / "last.pt"), load_checkpoint(tiny_run / "last.pt")
    assert resumed["model"].keys() == reference["model"].keys()
    for name, weight in reference["model"].items():
        assert torch.equal(resumed["model"][name], weight), name
    assert (resumed["epoch"], resumed["step"]) == (reference["epoch"], reference["step"])
    assert epoch_records(run) == epoch_records(tiny_run)
    assert torch.equal(resumed["rng"], reference["rng"])
    moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in reference["optimizer"]["state"].values()]
    resumed_moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in resumed["optimizer"]["state"].values()]
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(moments, resumed_moments))
    # The EMA weights (what prediction uses) and the selected best checkpoint match too.
    for name, weight in reference["ema_model"].items():
        assert torch.equal(resumed["ema_model"][name], weight), name
    assert resumed["best"] == reference["best"]
    best = load_checkpoint(run / "best.pt")
    assert all(torch.equal(best["ema_model"][k], v) for k, v in load_checkpoint(tiny_run)["ema_model"].items())


def test_resume_without_a_checkpoint_starts_from_scratch(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert main(train_args(tiny_data, run) + ["--set", "train.epochs=1", "--resume"]) == 0
    assert "resumed" not in capsys.readouterr().out
    assert [r["epoch"] for r in epoch_records(run)] == [1]
