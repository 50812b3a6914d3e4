"""Multi-process training under `torchrun` (DDP, gloo, 2 CPU processes) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsmt.config import load_config
from gsmt.synth.generate import generate
from gsmt.engine.checkpoint import load_checkpoint
from gsmt.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

# 16 training videos, global batch 8 (4 per process), 3 epochs; dropout off so processes compare.
OVERRIDES = ["data.T=32", "model.hidden_dim=32", "model.num_layers=1", "model.dropout=0.0", "train.batch_size=8",
             "train.epochs=3", "train.lr=0.005", "data.val_fraction=0", "train.device=cpu", "train.threads=1"]

# The optimised losses (the total and its two terms). Their parts (focal, dice, ...) are logged as
# each process's own means, which differ from the global mean when processes hold different numbers
# of foreground columns.
OPTIMISED = ("loss", "loss_cls", "loss_mask")

# Each process trains, then saves the weights it ended with, named by its rank.
LAUNCHER = """
import os, sys
from pathlib import Path

import torch
import torch.distributed as dist

from gsmt.config import load_config
from gsmt.engine.trainer import train

data, run, weights = sys.argv[1:4]
result = train(load_config("demo", sys.argv[4:]), data, run, progress=False)
torch.save(result.model.state_dict(), Path(weights) / f"rank{os.environ.get('RANK', '0')}.pt")
if dist.is_initialized():
    dist.destroy_process_group()
"""


def epoch_losses(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("loss")} for r in records if "epoch" in r]


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "data"
    generate(out, preset="anet-like", videos=24, num_classes=3, difficulty=0.3, feature_dim=24, seed=1)
    return out


# The paper's head, and the multi-label ones (issue 32), whose losses are normalised by other counts
# (`gsmt.engine.loop._normalizers`: foreground snippets for the sigmoids, every kept snippet for the
# softmax and for action vs background, (snippet, class) pairs for the masks). Windows (padded last
# windows) give the processes different numbers of kept snippets, which resized videos do not; at
# T = 64 there are 92, an even number (DistributedSampler would repeat one to even out an odd count),
# trained one epoch: 12 steps, as far as the processes' float sums agree to the tolerances below.
WINDOWS = ["data.temporal_mode=window", "data.T=64", "train.epochs=1"]
HEADS = [[], ["model.labels=multi"], ["model.labels=multi", "model.label_scores=softmax", *WINDOWS],
         ["model.labels=multi", "model.label_scores=actionness", *WINDOWS]]


@pytest.mark.parametrize("head", HEADS, ids=["single", "multi-sigmoid", "multi-softmax", "multi-actionness"])
def test_two_gloo_processes_match_one_process(ddp_data, tmp_path, head):
    overrides = OVERRIDES + head
    launcher, weights = tmp_path / "launcher.py", tmp_path / "weights"
    launcher.write_text(LAUNCHER)
    weights.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(launcher), str(ddp_data), str(tmp_path / "ddp"), str(weights), *overrides],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    single = train(load_config("demo", overrides), ddp_data, tmp_path / "single", progress=False)

    # Rank 0 alone logs and saves: one record per epoch, one checkpoint.
    ddp_losses, single_losses = epoch_losses(tmp_path / "ddp"), epoch_losses(tmp_path / "single")
    epochs = 1 if WINDOWS[0] in head else 3
    assert len(ddp_losses) == len(single_losses) == epochs
    assert {p.name for p in (tmp_path / "ddp").glob("*.pt")} == {"last.pt", "best.pt"}
    # Global batch 8: 16 resized videos take 2 steps an epoch, 92 windows 12.
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == epochs * (12 if WINDOWS[0] in head else 2)
    for ddp_epoch, single_epoch in zip(ddp_losses, single_losses):
        assert ddp_epoch.keys() == single_epoch.keys()
        for key in OPTIMISED:
            assert ddp_epoch[key] == pytest.approx(single_epoch[key], rel=1e-3), key

    rank0, rank1 = (torch.load(weights / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    saved = load_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    reference = single.model.state_dict()
    for name, weight in rank0.items():
        assert torch.equal(rank1[name], weight), name
        assert torch.equal(saved[name], weight), name
        expected = reference[name]
        if name.endswith("attn.qkv.bias"):
            # The key bias has no gradient in exact arithmetic (attention's softmax ignores it), so
            # AdamW turns its rounding noise into steps of size lr: compare the query and value parts.
            third = weight.shape[0] // 3
            weight, expected = (torch.cat([w[:third], w[2 * third:]]) for w in (weight, expected))
        torch.testing.assert_close(weight, expected, rtol=1e-3, atol=1e-4)
