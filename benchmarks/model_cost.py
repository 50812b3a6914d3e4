"""Model cost: parameters, FLOPs per sample and CPU forward+backward throughput (DESIGN.md section 9).

Usage: python -m benchmarks.model_cost [--batch 16] [--steps 5] [--threads N]
Prints a markdown table."""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from gsmt.config import load_config
from gsmt.engine.checkpoint import build_model
from gsmt.losses import LossConfig, gsmt_loss
from gsmt.model import GSMT, count_parameters

SHAPES = {"anet": dict(D=2048, T=100, K=200), "thumos": dict(D=2048, T=256, K=20)}


def fake_batch(B: int, D: int, T: int, K: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random features and plausible targets: one instance covering snippets T/4..T/2 per sample."""
    features = torch.rand(B, D, T)
    valid = torch.ones(B, T, dtype=torch.bool)
    cls_target = torch.full((B, T), K, dtype=torch.long)
    cls_target[:, T // 4 : T // 2] = torch.randint(0, K, (B, 1))
    mask_target = torch.zeros(B, T, T)
    mask_target[:, T // 4 : T // 2, T // 4 : T // 2] = 1.0
    return features, {"cls_target": cls_target, "mask_target": mask_target, "valid": valid}


def flops_per_sample(model: GSMT, D: int, T: int) -> int:
    """Forward FLOPs of one sample (a multiply-add counts 2)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, D, T), torch.ones(1, T, dtype=torch.bool))
    return counter.get_total_flops()


def train_throughput(model: GSMT, batch: int, steps: int, D: int, T: int, K: int) -> float:
    """Forward + loss + backward + SGD step samples/s, after one warm-up step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    features, targets = fake_batch(batch, D, T, K)
    cfg = LossConfig()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        total, _ = gsmt_loss(model(features, targets["valid"]), targets, cfg)
        total.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}\n")
    print("| preset | mask head | D | T | K | params (M) | GFLOPs/sample (fwd) | train samples/s (fwd+bwd, CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in SHAPES.items():
        for head in ("pairwise", "conv"):  # the presets' head, then the paper's
            cfg = load_config(name, [f"data.T={s['T']}", f"model.mask_head={head}"])
            model = build_model(cfg, s["K"], s["D"])
            params = count_parameters(model)
            flops = flops_per_sample(model, s["D"], s["T"])
            rate = train_throughput(model, args.batch, args.steps, s["D"], s["T"], s["K"])
            print(f"| {name} | {head} | {s['D']} | {s['T']} | {s['K']} | {params / 1e6:.2f} | {flops / 1e9:.3f} | "
                  f"{rate:.1f} |")


if __name__ == "__main__":
    main()
