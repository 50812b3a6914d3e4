"""`gsmt extract --videos DIR --backbone MODEL --out DIR`: raw videos -> per-snippet features on a recorded grid."""

from __future__ import annotations

import argparse

from gsmt.commands.common import add_video_run_options, video_device, video_extra
from gsmt.schema import option

HELP = "videos -> per-snippet features with a transformers backbone (gsmt[video])"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, help="folder of videos, a text file listing them, or one video")
    p.add_argument("--backbone", required=True,
                   help="transformers model: a local folder or a hub id already in the cache (never downloaded)")
    p.add_argument("--fps", required=True, type=option(float, gt=0, le=1000), help="frames per second to resample to")
    p.add_argument("--feature-stride", required=True, type=option(int, ge=1), help="frames between snippet starts")
    p.add_argument("--feature-window", required=True, type=option(int, ge=1, le=4096),  # video.extract.MAX_WINDOW
                   help="frames per snippet")
    p.add_argument("--out", required=True, help="data folder to write (features/, annotations.json)")
    p.add_argument("--annotations", help="ground truth (any gsmt annotation format): segments and subsets "
                                         "copied into the written annotations.json")
    add_video_run_options(p)


def run(args: argparse.Namespace) -> int:
    run_extract = video_extra("extract", "extract").run_extract

    summary = run_extract(args.videos, args.backbone, args.out, fps=args.fps, stride=args.feature_stride,
                          window=args.feature_window, annotations=args.annotations,
                          device=video_device(args.device), batch_size=args.batch_size, progress=not args.quiet,
                          threads=args.threads)
    if summary:  # under torchrun only rank 0 reports
        print(summary)
    return 0
