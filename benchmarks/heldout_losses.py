"""Held-out losses of a trained run (issue 3): mask loss and foreground snippet accuracy on videos the
run never saw, for the trained weights and for the same model at its initial weights.

    python -m benchmarks.heldout_losses --checkpoint RUN --data DIR [--subset S]

Prints one markdown row per model: mask loss, mask IoU (foreground columns thresholded at 0.5 against
their targets), classification loss, foreground snippet accuracy and the rate of always answering
the most frequent foreground class.
"""

from __future__ import annotations

import argparse

import torch

from gsmt.engine.checkpoint import build_model, load_checkpoint, model_from_checkpoint
from gsmt.engine.resolve import make_dataset, open_data, subset_videos
from gsmt.engine.trainer import heldout_losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--subset", help="default: the run's evaluation subset")
    args = parser.parse_args()
    trained, cfg, meta = model_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint)
    torch.manual_seed(cfg.train.seed)  # the trainer's own initialisation
    initial = build_model(cfg, meta["num_classes"], meta["feature_dim"])
    source = open_data(args.data, cfg, feature_dim=meta["feature_dim"])
    subset = args.subset or cfg.data.eval_subset
    videos = subset_videos(source.annotations, subset, args.data)
    dataset = make_dataset(videos, source.features, cfg, meta["num_classes"], train=False)
    print(f"held-out: {len(videos)} '{subset}' videos, {len(dataset)} samples")
    print("| weights | mask loss | mask IoU | class loss | fg snippet accuracy | majority-class rate | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = {}
    for name, model in (("initial", initial), ("trained", trained)):
        m = rows[name] = heldout_losses(model, dataset, cfg, meta["num_classes"], "cpu")
        print(f"| {name} | {m['loss_mask']:.4f} | {m['mask_iou']:.3f} | {m['loss_cls']:.4f} | {m['fg_acc']:.3f} | {m['fg_majority']:.3f} | "
              f"{m['fg_acc'] / max(m['fg_majority'], 1e-9):.1f}x |")
    drop = 1 - rows["trained"]["loss_mask"] / rows["initial"]["loss_mask"]
    print(f"mask loss falls by {100 * drop:.0f}% on held-out videos; mask IoU {rows['initial']['mask_iou']:.3f} -> "
          f"{rows['trained']['mask_iou']:.3f}")


if __name__ == "__main__":
    main()
