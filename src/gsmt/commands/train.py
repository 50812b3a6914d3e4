"""`gsmt train CONFIG --data DIR --out RUN`: train GSMT on a data folder."""

from __future__ import annotations

import argparse

HELP = "train GSMT on a data folder"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="preset (demo, anet, thumos, multithumos, charades) or a YAML file")
    p.add_argument("--data", required=True, help="data folder: annotations.json + features/ (what `gsmt synth` writes)")
    p.add_argument("--out", required=True, help="run directory (config, log, checkpoints)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's last checkpoint (same config and data; only "
                        "train.epochs, device, threads, workers may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous run directory (never a folder that is not one)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gsmt.config import PRESETS, given_keys, load_config, with_given
    from gsmt.engine.trainer import train
    from gsmt.errors import counted
    from gsmt.io.guard import check_output_location
    from gsmt.video.record import (
        with_data_backbone,  # JSON only: no torch, PyAV or transformers
    )

    check_output_location(args.out, "folder")
    cfg = load_config(args.config, args.overrides)
    # features of `gsmt extract`: the checkpoint records the backbone (the keys the user chose kept)
    cfg = with_given(with_data_backbone(cfg, args.data), given_keys(cfg))
    config_file = None if args.config in PRESETS else args.config  # an input, like the data
    result = train(cfg, args.data, args.out, resume=args.resume, overwrite=args.overwrite,
                   progress=not args.quiet, inputs={"CONFIG": config_file})
    best = f", best epoch {result.best_epoch}" if result.best_epoch else ""
    print(f"trained {counted(result.epochs, 'epoch')}{best}; run directory: {result.run_dir}")
    return 0
