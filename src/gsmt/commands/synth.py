"""`gsmt synth`: write a synthetic dataset (annotations.json + features/) with `gsmt.synth.generate`."""

from __future__ import annotations

import argparse

from gsmt.schema import SEED_MAX, option

HELP = "write a synthetic dataset (annotations + features)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gsmt synth`."""
    from gsmt.annotations.packaged import TIMELINES
    from gsmt.synth.models import FEATURE_MODELS, FROZEN_DIFFICULTY
    from gsmt.synth.models.prototype import DEFAULT_DIFFICULTY
    from gsmt.synth.timelines import PRESETS

    parser.add_argument("--preset", required=True, choices=sorted(PRESETS),
                        help="kind of data: grid, classes, subsets, temporal mode and decoding")
    parser.add_argument("--timelines", metavar="NAME|FILE",
                        help="render on real timelines instead of drawn ones: the packaged "
                             f"{', '.join(TIMELINES)} annotations by name, or any annotation file")
    parser.add_argument("--videos", type=option(int, ge=1), metavar="N",
                        help="number of videos (preset default 200 / 300; with --timelines a seeded "
                             "sample stratified by subset, default all)")
    parser.add_argument("--classes", type=option(int, ge=1), metavar="K", dest="num_classes",
                        help="action classes (preset default 20 thumos-like / 50 anet-like)")
    parser.add_argument("--feature-dim", type=option(int, ge=1), default=256, metavar="D",
                        help="feature dimension (256)")
    parser.add_argument("--difficulty", type=option(float, ge=0), metavar="X",
                        help="scales noise, boundary blur, prototype overlap and distractors (prototype "
                             f"model, {DEFAULT_DIFFICULTY:g}) or noise and background drift (phases, motion: "
                             + ", ".join(f"{v:g}" for v in FROZEN_DIFFICULTY.values()) + ")")
    parser.add_argument("--feature-model", default="prototype", choices=tuple(FEATURE_MODELS),
                        help="how actions become features (benchmark family, BENCHMARKS.md): prototype "
                             "(default), phases, motion (the held-out one)")
    parser.add_argument("--seed", type=option(int, ge=0, le=SEED_MAX), default=0, metavar="S",
                        help="random seed (0)")
    parser.add_argument("--fps", type=option(float, gt=0), metavar="F", help="feature grid frame rate (30)")
    parser.add_argument("--feature-stride", type=option(int, ge=1), metavar="S",
                        help="frames between snippets (8 / 16)")
    parser.add_argument("--feature-window", type=option(int, ge=1), metavar="W", help="frames per snippet (16)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")


def run(args: argparse.Namespace) -> int:
    """`gsmt synth`: generate and print one summary line."""
    from gsmt.synth.generate import generate

    summary = generate(
        args.out,
        preset=args.preset,
        timelines=args.timelines,
        videos=args.videos,
        feature_dim=args.feature_dim,
        difficulty=args.difficulty,
        seed=args.seed,
        num_classes=args.num_classes,
        fps=args.fps,
        feature_stride=args.feature_stride,
        feature_window=args.feature_window,
        overwrite=args.overwrite,
        feature_model=args.feature_model,
    )
    print(summary.line())
    return 0
