"""Shared pytest fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

# Real data lives in the repository: the THUMOS14 / ActivityNet-1.3 annotations ship with the
# package (`gsmt.annotations.packaged.timelines_path("thumos14")`), small fixtures sit in tests/fixtures/.
TEST_DATA = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """tests/fixtures: the mmaction2 fixtures (provenance and licence in its README.md)."""
    return TEST_DATA


# ------------------------------------------------------------------ tiny synthetic data and one trained run
# Shared by the engine, CLI, API and resume tests: one dataset and one training run per session.
# Easy anet-like data (3 classes, difficulty 0.3, 80 videos) so that 15 short epochs of a tiny
# model learn well beyond chance (average mAP about 0.4 against 0.12 untrained).
TINY_SYNTH = dict(preset="anet-like", videos=80, num_classes=3, difficulty=0.3, feature_dim=24, seed=0)
# EMA and held-out model selection are on so the resume test covers them; `train.threads=1` gives
# the same CPU kernels in this process and in subprocesses, so runs compare bit for bit.
TINY_RUN = ["data.T=64", "model.hidden_dim=32", "model.num_layers=1", "train.batch_size=8", "train.epochs=15",
            "train.lr=0.005", "data.val_fraction=0.1", "train.ema=0.9", "train.device=cpu", "train.threads=1"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A synthetic anet-like data folder (54 training, 26 validation videos, K=3, D=24)."""
    from gsmt.synth.generate import generate

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate(out, **TINY_SYNTH)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A run directory trained by `gsmt train demo` with the TINY_RUN overrides."""
    from gsmt.cli import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    args = ["train", "demo", "--data", str(tiny_data), "--out", str(run), "--quiet"]
    with single_thread():  # also undoes the run's `train.threads`
        assert main(args + [a for o in TINY_RUN for a in ("--set", o)]) == 0
    return run


# ------------------------------------------------------------------ a tiny raw-video world
# Shared by the CLI's video tests (tests/cli/test_video_hostile.py, test_leftovers_and_stale_state.py).
VIDEO_GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]
VIDEO_RUN = ["--set", "model.hidden_dim=32", "--set", "train.threads=1", "--set", "data.T=32"]


def tiny_video_world(root: Path, videomae: str, processor: dict | None) -> dict[str, Path]:
    """Under `root`: a random DINOv2 (`dino/`) and VideoMAE (`<videomae>/`, with `processor` or none)
    of a few thousand weights, two clips (`videos/a.mp4` 2 s, `b.mp4` 1.5 s), synthetic 48-dim data on
    VIDEO_GRID (`syn/`) and a run trained one epoch on it (`run/`, it records no backbone)."""
    import numpy as np
    import torch

    from gsmt.cli import main
    from gsmt.video.clips import encode_mp4, save_random_image_encoder, save_random_video_encoder

    torch.manual_seed(0)
    save_random_image_encoder(root / "dino")
    save_random_video_encoder(root / videomae, processor)
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    (root / "videos").mkdir()
    encode_mp4(root / "videos" / "a.mp4", frames, 10)
    encode_mp4(root / "videos" / "b.mp4", frames[:15], 10)
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--classes", "2", "--feature-dim", "48",
                 *VIDEO_GRID, "--out", str(root / "syn")]) == 0
    assert main(["train", "demo", "--data", str(root / "syn"), "--out", str(root / "run"), "--quiet",
                 "--set", "train.epochs=1", *VIDEO_RUN]) == 0
    return {"root": root, "dino": root / "dino", videomae: root / videomae, "videos": root / "videos",
            "syn": root / "syn", "run": root / "run"}


@contextmanager
def single_thread():
    """Tiny models run fastest on one CPU thread, and a busy machine cannot stall a thread pool;
    the thread count is restored after, so nothing leaks into other tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


def cli(capsys, *argv) -> tuple[int, str, str]:
    """`gsmt ARGV` in this process: (exit code, stdout, stderr)."""
    from gsmt.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_fatal(result: tuple[int, str, str], *names: object, problem: str = "", only_line: bool = False) -> str:
    """Exit 2, no traceback, exactly one stderr line `gsmt: error: ...`, the last (with `only_line`,
    the only one: no warning before it), naming each of `names`; returns that line."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("gsmt: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert not only_line or len(lines) == 1, err
    line = errors[0]
    for name in names:
        assert str(name) in line, (name, line)
    assert problem.lower() in line.lower(), (problem, line)
    return line


# ------------------------------------------------------------------ two ranks of a gloo process group
# A collective left waiting would block for torch's timeout (minutes); a settled error ends in the
# seconds that starting Python, torch and transformers take on a loaded 2-core machine.
DEADLINE = 180


def rank_env() -> dict[str, str]:
    """This process's environment without torchrun's variables, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def two_ranks(args: list[str]) -> list[tuple[int, str, str]]:
    """`gsmt ARGS` as ranks 0 and 1 of a 2-process group, launched with the variables torchrun sets
    (torchrun itself stops the other workers when one fails, hiding each rank's own exit code):
    [(exit code, stdout, stderr)] per rank, both within DEADLINE seconds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**rank_env(), "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-m", "gsmt.cli", *args], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    start = time.monotonic()
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, DEADLINE - (time.monotonic() - start)))
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results
