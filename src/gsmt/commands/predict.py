"""`gsmt predict --checkpoint RUN (--data DIR | --features DIR) --out FILE`: an ActivityNet submission."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gsmt.annotations.types import Video, check_video_id
from gsmt.annotations.load import report_faults
from gsmt.data.features import FeatureStore
from gsmt.errors import GsmtError, counted
from gsmt.io.guard import check_output_location, refuse_overwriting_inputs
from gsmt.io.read import check_seconds, read_csv_rows
from gsmt.io.write import atomic_write_text
from gsmt.postprocess.fusion import fuse_results, load_video_scores
from gsmt.schema import device_option, option

FEATURE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")

HELP = "detect actions; writes ActivityNet submission JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run directory (best, else last) or checkpoint file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="data folder with annotations.json and features/")
    src.add_argument("--features", help="folder of feature files (one per video), no annotations needed")
    p.add_argument("--subset", help="subset to predict (default: the evaluation subset)")
    p.add_argument("--fps", type=option(float, gt=0), help="--features: frames per second of the videos")
    p.add_argument("--feature-stride", type=option(int, ge=1), help="--features: frames between snippets")
    p.add_argument("--feature-window", type=option(int, ge=1), help="--features: frames per snippet")
    p.add_argument("--durations", help="--features: CSV video,duration (seconds)")
    p.add_argument("--out", required=True, help="predictions JSON to write")
    p.add_argument("--batch-size", type=option(int, ge=1), help="samples per forward pass")
    p.add_argument("--device", default="auto", type=device_option, help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--fuse", help="JSON {video_id: {label: probability}} of a video-level classifier")
    p.add_argument("--fuse-mode", default="multiply", choices=["multiply", "topk"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="decode.KEY=VALUE",
                   help="override a decoding setting, e.g. --set decode.max_keep=50")


def run(args: argparse.Namespace) -> int:
    summary = predict_files(args.checkpoint, args.out, data=args.data, features=args.features, subset=args.subset,
                            fps=args.fps, feature_stride=args.feature_stride, feature_window=args.feature_window,
                            durations=args.durations, batch_size=args.batch_size, device=args.device,
                            fuse=args.fuse, fuse_mode=args.fuse_mode, overrides=args.overrides)
    if summary:  # under torchrun only rank 0 writes and reports
        print(summary)
    return 0


def predict_files(checkpoint: str | Path, out: str | Path, *, data: str | None = None, features: str | None = None,
                  subset: str | None = None, fps: float | None = None, feature_stride: int | None = None,
                  feature_window: int | None = None, durations: str | None = None, batch_size: int | None = None,
                  device: str = "auto", fuse: str | None = None, fuse_mode: str = "multiply",
                  overrides: list[str] = ()) -> str:
    """`gsmt predict`: detections for a subset of a data folder, or for a bare folder of features;
    returns the one-line summary ("" on the ranks of a torchrun group that do not write)."""
    from gsmt.config import apply_overrides
    from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from gsmt.engine.distributed import pick_device
    from gsmt.engine.predictor import predict_results, submission
    from gsmt.engine.resolve import MODE_DEFAULTS, open_data, subset_videos
    from gsmt.engine.rundir import checkpoint_inputs

    check_output_location(out, "file")
    refuse_overwriting_inputs(out, {"--checkpoint": checkpoint_inputs(checkpoint),
                                         "--fuse": fuse, "--durations": durations})
    # Every input file is read before the model runs: a bad one fails in a second, not after it.
    scores = load_video_scores(fuse) if fuse else None
    state = load_checkpoint(checkpoint)
    model, cfg, meta = model_from_checkpoint(state, checkpoint)
    cfg = apply_overrides(cfg, overrides, sections=("decode",))
    if cfg.decode.mode == "auto":  # `--set decode.mode=auto`: the default of the model's temporal mode
        cfg.decode.mode = MODE_DEFAULTS[meta["temporal_mode"]]["decode_mode"]
    classes = meta["classes"]
    if cfg.decode.topk_classes > len(classes):
        raise GsmtError("--set", f"decode.topk_classes must be <= the model's {len(classes)} classes, "
                                 f"got {cfg.decode.topk_classes}")
    device = pick_device(device, where="--device")
    model.to(device)
    if data:
        source = open_data(data, cfg, feature_dim=meta["feature_dim"])
        if os.environ.get("RANK", "0") == "0":  # under torchrun: said once, not by every process
            report_faults(source.annotations.faults, source.annotations.source)
        if subset is None:
            subset, have = cfg.data.eval_subset, source.annotations.subsets
            if subset not in have and len(have) == 1:  # a CSV without subsets: every video is in `all`
                if os.environ.get("RANK", "0") == "0":
                    print(f"decided from the data: --subset {have[0]} (the model's evaluation subset '{subset}' "
                          "is not in these annotations, which carry one subset; --subset NAME to choose)")
                subset = have[0]
        videos = subset_videos(source.annotations, subset, source.annotations.source or data)
        features = source.features
        refuse_overwriting_inputs(out, {"--data annotations": source.annotations.source or None,
                                             "--data features": _store_files(features, videos)})
    else:
        # A given value always wins (the parser refuses 0 and negatives); only a missing one
        # falls back to the grid recorded in the checkpoint.
        grid = {key: given if given is not None else meta["grid"].get(key)
                for key, given in (("fps", fps), ("feature_stride", feature_stride),
                                   ("feature_window", feature_window))}
        cfg.data.fps, cfg.data.feature_stride, cfg.data.feature_window = (
            grid["fps"], grid["feature_stride"], grid["feature_window"])
        refuse_overwriting_inputs(out, {"--features": _feature_files(Path(features))})
        durations = _read_durations(durations) if durations else None
        # The model's feature dimension resolves each file's layout ([T, D] or [D, T]) before its
        # length gives the video's duration.
        folder = Path(features)
        features = FeatureStore(folder, feature_dim=meta["feature_dim"])
        videos = _feature_folder_videos(folder, grid, durations, features)
    # Under torchrun every process predicts a share of the videos and rank 0 writes the file.
    import torch.distributed as dist

    from gsmt.engine.distributed import init_distributed, leave_group

    own_group = not dist.is_initialized()
    ddp = init_distributed(device)
    try:
        # A progress bar belongs on a terminal; in a log or a pipe it is noise around the real messages.
        results = predict_results(model, cfg, classes, videos, features, device=device,
                                  batch_size=batch_size, progress=sys.stderr.isatty(),
                                  where=data or folder, shard=(ddp.rank, ddp.world_size))
    finally:
        if ddp.world_size > 1 and own_group:
            leave_group()
    if results is None:  # another rank writes the submission
        return ""
    external = {"used": False}
    if fuse:
        fused, lacking = fuse_results(results, scores, mode=fuse_mode,
                                      max_keep=cfg.decode.max_keep)
        results = fused
        external = {"used": True, "details": f"video-level classifier scores from {Path(fuse).name}, "
                                              f"fusion mode {fuse_mode}; {counted(lacking, 'video')} without scores"}
    atomic_write_text(out, json.dumps(submission(results, external)))
    n = sum(len(r) for r in results.values())
    return f"wrote {counted(n, 'detection')} for {counted(len(results), 'video')} to {out}"


def _read_durations(path: str | Path) -> dict[str, float]:
    """`--durations`: CSV `video,duration` (gzip allowed, UTF-8); every duration a finite number of
    seconds in (0, 1e6]; a video listed twice is refused."""
    path = Path(path)
    if not path.exists():
        raise GsmtError(path, "cannot read durations: file not found")
    out: dict[str, float] = {}
    for n, row in enumerate(read_csv_rows(path, ("video", "duration"), "video,duration in seconds"), 2):
        vid = row["video"]
        if not vid:
            raise GsmtError(path, f"line {n}: empty video id")
        if vid in out:
            raise GsmtError(path, f"line {n}: video '{vid}' is listed twice")
        out[vid] = check_seconds(row["duration"], path, f"line {n}: video '{vid}' duration")
    return out


def _feature_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise GsmtError(folder, "feature folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix in FEATURE_SUFFIXES)
    if not files:
        raise GsmtError(folder, f"no feature files ({', '.join(FEATURE_SUFFIXES)})")
    return files


def _feature_folder_videos(folder: Path, grid: dict, durations: dict[str, float] | None,
                           store: FeatureStore) -> list[Video]:
    """Videos for a bare folder of feature files: ids from file names, durations from a CSV or the grid.

    `store` must know the model's feature dimension: the number of snippets is read from the
    `[T, D]` array its `load` returns (layout resolved), never from a raw shape.
    """
    from gsmt.data.dataset import unlabelled_video

    videos = []
    for path in _feature_files(folder):
        vid = check_video_id(path.stem, folder)
        if durations is not None and vid not in durations:
            raise GsmtError(folder, f"video '{vid}' has no duration in the durations file")
        # The length on the grid: the duration comes from it, or a given duration is checked against it
        # (the .npy header or .h5 shape when it costs no read).
        count = None
        if all(grid.values()):
            count = store.num_snippets(vid) if durations is not None else None
            if count is None:
                count = len(store.load(vid))
        videos.append(unlabelled_video(
            vid, count,
            durations[vid] if durations is not None else None, where=folder, **grid,
            hint="give --durations, or the grid (--fps, --feature-stride, --feature-window)"))
    return videos


def _store_files(store: FeatureStore, videos: list[Video]) -> list[Path]:
    if store.is_h5:
        return [store.root]
    return [p for p in (store.path(v.id) for v in videos) if p is not None]
