"""What the `predict`, `eval` and `visualize` commands do with files (the CLI only parses arguments)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from gsmt.annotations.load import (Annotations, Video, check_video_id, load_annotations, meta_tiou,
    report_faults)
from gsmt.data.features import FeatureStore
from gsmt.annotations.packaged import load_blocked
from gsmt.io.read import check_seconds, read_csv_rows
from gsmt.errors import Faults, GsmtError
from gsmt.evaluation import DetectionMetrics, evaluate_detection, load_predictions, merge_labels
from gsmt.evaluation.detection import read_predictions
from gsmt.io.write import atomic_write_text
from gsmt.io.guard import check_output_location, refuse_overwriting_inputs
from gsmt.postprocess.fusion import fuse_results, load_video_scores

FEATURE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")

# torch and everything built on it (config, checkpoints, the model) are imported inside the
# functions that need them: `gsmt eval` and `gsmt analyze` never load torch (seconds of start-up;
# tests/test_eval_fast.py).


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
    files = _feature_files(folder)
    videos = []
    for path in files:
        vid = check_video_id(path.stem, folder)
        if durations is not None:
            if vid not in durations:
                raise GsmtError(folder, f"video '{vid}' has no duration in the durations file")
            duration = durations[vid]
        elif grid.get("fps") and grid.get("feature_stride") and grid.get("feature_window"):
            n = len(store.load(vid))
            duration = ((n - 1) * grid["feature_stride"] + grid["feature_window"]) / grid["fps"]
        else:
            raise GsmtError(folder, "give --durations, or the grid (--fps, --feature-stride, --feature-window)")
        videos.append(Video(id=vid, subset="predict", duration=float(duration), fps=grid.get("fps"),
                            feature_stride=grid.get("feature_stride"), feature_window=grid.get("feature_window")))
    return videos


def predict_results(model, cfg, classes: list[str], videos: list[Video], features, *, device,
                    batch_size: int | None = None, progress: bool = False, where: str = "data",
                    shard: tuple[int, int] = (0, 1)) -> dict | None:
    """ActivityNet `results` for `videos`: every video present, even those where nothing was found.

    `shard=(rank, world_size)` under an initialised process group (`gsmt predict` under torchrun):
    each process predicts every world_size-th video, rank 0 gathers them and returns the same
    results, in the same order, as one process would; the other ranks return None. Per-sample
    outputs do not depend on the batch a sample sits in (gsmt.engine.predictor), so the split
    changes no number.
    """
    from gsmt.engine.resolve import make_dataset, require_features
    from gsmt.engine.predictor import predict_dataset, to_results

    rank, world = shard
    require_features(videos, features, where)
    try:
        dataset = make_dataset(videos[rank::world], features, cfg, len(classes), train=False)
        detections = predict_dataset(model, dataset, cfg.decode, device=device, batch_size=batch_size,
                                     progress=progress and rank == 0)
        payload = {"results": to_results(detections, classes), "faults": dict(dataset.faults.counts)}
    except GsmtError as exc:
        if world == 1:
            raise
        payload = {"error": (str(exc.where), exc.problem)}
    if world > 1:
        payload = _gather_shards(payload, world)
        if rank != 0:
            return None
    faults = Faults()
    faults.counts.update(payload["faults"])
    report_faults(faults, where)
    found = payload["results"]
    # One process's order: videos with samples in input order, then those without any.
    results = {video.id: found[video.id] for video in videos if video.id in found}
    for video in videos:
        results.setdefault(video.id, [])
    return results


def _gather_shards(payload: dict, world: int) -> dict:
    """Every rank's results and fault counts, merged; a GsmtError of any rank is raised on all
    (no rank is left waiting for another that stopped)."""
    import torch.distributed as dist

    parts: list = [None] * world
    dist.all_gather_object(parts, payload)
    for part in parts:
        if "error" in part:
            raise GsmtError(*part["error"], shared=True)
    merged: dict = {"results": {}, "faults": {}}
    for part in parts:
        merged["results"].update(part["results"])
        for kind, n in part["faults"].items():
            merged["faults"][kind] = merged["faults"].get(kind, 0) + n
    return merged


def checkpoint_inputs(checkpoint: str | Path) -> list[Path]:
    """The files a `--checkpoint` argument stands for: the checkpoint read and, for a run
    directory, the run's own files (an output there would replace a part of the run)."""
    from gsmt.engine.checkpoint import resolve_checkpoint
    from gsmt.engine.rundir import RUN_FILES

    path = Path(checkpoint)
    files = [resolve_checkpoint(path)]
    if path.is_dir():
        files += [path / name for name in RUN_FILES]
    return files


def _store_files(store: FeatureStore, videos: list[Video]) -> list[Path]:
    if store.is_h5:
        return [store.root]
    return [p for p in (store.path(v.id) for v in videos) if p is not None]


def run_predict(args) -> str:
    """`gsmt predict`: detections for a subset of a data folder, or for a bare folder of features."""
    from gsmt.config import apply_overrides
    from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from gsmt.engine.resolve import MODE_DEFAULTS, open_data, subset_videos
    from gsmt.engine.predictor import submission
    from gsmt.engine.distributed import pick_device

    check_output_location(args.out, "file")
    refuse_overwriting_inputs(args.out, {"--checkpoint": checkpoint_inputs(args.checkpoint),
                                         "--fuse": args.fuse, "--durations": args.durations})
    # Every input file is read before the model runs: a bad one fails in a second, not after it.
    scores = load_video_scores(args.fuse) if args.fuse else None
    state = load_checkpoint(args.checkpoint)
    model, cfg, meta = model_from_checkpoint(state, args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides, sections=("decode",))
    if cfg.decode.mode == "auto":  # `--set decode.mode=auto`: the default of the model's temporal mode
        cfg.decode.mode = MODE_DEFAULTS[meta["temporal_mode"]]["decode_mode"]
    classes = meta["classes"]
    if cfg.decode.topk_classes > len(classes):
        raise GsmtError("--set", f"decode.topk_classes must be <= the model's {len(classes)} classes, "
                                 f"got {cfg.decode.topk_classes}")
    device = pick_device(args.device, where="--device")
    model.to(device)
    if args.data:
        source = open_data(args.data, cfg, feature_dim=meta["feature_dim"])
        if os.environ.get("RANK", "0") == "0":  # under torchrun: said once, not by every process
            report_faults(source.annotations.faults, source.annotations.source)
        subset = args.subset or cfg.data.eval_subset
        videos = subset_videos(source.annotations, subset, source.annotations.source or args.data)
        features = source.features
        refuse_overwriting_inputs(args.out, {"--data annotations": source.annotations.source or None,
                                             "--data features": _store_files(features, videos)})
    else:
        # A given value always wins (the parser refuses 0 and negatives); only a missing one
        # falls back to the grid recorded in the checkpoint.
        grid = {key: given if given is not None else meta["grid"].get(key)
                for key, given in (("fps", args.fps), ("feature_stride", args.feature_stride),
                                   ("feature_window", args.feature_window))}
        cfg.data.fps, cfg.data.feature_stride, cfg.data.feature_window = (
            grid["fps"], grid["feature_stride"], grid["feature_window"])
        refuse_overwriting_inputs(args.out, {"--features": _feature_files(Path(args.features))})
        durations = _read_durations(args.durations) if args.durations else None
        # The model's feature dimension resolves each file's layout ([T, D] or [D, T]) before its
        # length gives the video's duration.
        features = FeatureStore(args.features, feature_dim=meta["feature_dim"])
        videos = _feature_folder_videos(Path(args.features), grid, durations, features)
    # Under torchrun every process predicts a share of the videos and rank 0 writes the file.
    import torch.distributed as dist

    from gsmt.engine.distributed import init_distributed, leave_group

    own_group = not dist.is_initialized()
    ddp = init_distributed(device)
    try:
        # A progress bar belongs on a terminal; in a log or a pipe it is noise around the real messages.
        results = predict_results(model, cfg, classes, videos, features, device=device,
                                  batch_size=args.batch_size, progress=sys.stderr.isatty(),
                                  where=args.data or args.features, shard=(ddp.rank, ddp.world_size))
    finally:
        if ddp.world_size > 1 and own_group:
            leave_group()
    if results is None:  # another rank writes the submission
        return ""
    external = {"used": False}
    if args.fuse:
        fused, lacking = fuse_results(results, scores, mode=args.fuse_mode,
                                      max_keep=cfg.decode.max_keep)
        results = fused
        external = {"used": True, "details": f"video-level classifier scores from {Path(args.fuse).name}, "
                                              f"fusion mode {args.fuse_mode}; {lacking} videos without scores"}
    atomic_write_text(args.out, json.dumps(submission(results, external)))
    n = sum(len(r) for r in results.values())
    return f"wrote {n} detections for {len(results)} videos to {args.out}"


def _pick_subset(gt: Annotations, predictions: dict, subset: str | None, where: str,
                 gt_where: str | None = None) -> str | None:
    """Without --subset: the one subset holding all predicted videos. A --subset that the ground
    truth lacks is the ground truth's error (`gt_where`); the others name the predictions."""
    if subset is not None:
        if subset not in gt.subsets:
            raise GsmtError(gt_where or gt.source or where,
                            f"no subset '{subset}' (subsets: {', '.join(gt.subsets)})")
        return subset
    by_id = gt.by_id()
    found = set()
    for vid in predictions:
        video = by_id.get(vid) or by_id.get(f"v_{vid}") or by_id.get(vid.removeprefix("v_"))
        if video is not None:
            found.add(video.subset)
    if len(found) == 1:
        return found.pop()
    if not found:
        if len(gt.subsets) == 1:
            return gt.subsets[0]
        raise GsmtError(where, f"no predicted video is in the ground truth; pass --subset ({', '.join(gt.subsets)})")
    raise GsmtError(where, f"predicted videos span several subsets ({', '.join(sorted(found))}); pass --subset")


@contextlib.contextmanager
def _blame_files(gt_path, pred_path):
    """The evaluator names its inputs by role ("ground truth", "predictions"); the command names the files."""
    try:
        yield
    except GsmtError as exc:
        files = {"ground truth": gt_path, "predictions": pred_path}
        if exc.where in files:
            raise GsmtError(files[exc.where], exc.problem) from None
        raise


def run_eval(gt_path: str | Path, pred_path: str | Path, *, subset: str | None = None, tiou: str | None = None,
             blocked: str | Path | None = None, json_out: str | Path | None = None,
             class_agnostic: bool = False) -> DetectionMetrics:
    """`gsmt eval`: mAP at each tIoU, recall, per-class AP; optionally written as JSON. With
    `class_agnostic`, every label counts as one class (localization alone)."""
    check_output_location(json_out, "file", flag="--json")
    refuse_overwriting_inputs(json_out, {"--gt": gt_path, "--pred": pred_path, "--blocked": blocked},
                              flag="--json")
    gt = load_annotations(gt_path)
    report_faults(gt.faults, gt_path)
    tiou = tiou or meta_tiou(gt) or "anet"  # a bad `gsmt.tiou` field names the ground truth
    predictions = read_predictions(pred_path)  # msgspec when it can: the same checks, 3x faster
    # A JSON list file (gzip allowed) or a packaged list by name (`activitynet13`: the 198 ids).
    # Every input is read before any is compared with another: a bad file is named as such.
    blocked_ids: list[str] = load_blocked(blocked) if blocked else []
    subset = _pick_subset(gt, predictions, subset, str(pred_path), str(gt_path))
    if class_agnostic:
        gt, predictions = merge_labels(gt, predictions)
    with _blame_files(gt_path, pred_path):
        metrics = evaluate_detection(gt, predictions, subset=subset, tiou=tiou, blocked=blocked_ids)
    if json_out:
        atomic_write_text(json_out, json.dumps(metrics.to_json(), indent=2))
    return metrics


def visualize(args) -> Path:
    """`gsmt visualize`: a timeline (--gt --pred --video), a mask heatmap (--checkpoint --features)
    or training curves (--log)."""
    from gsmt.viz.curves import plot_curves

    check_output_location(args.out, "file")
    log_file = None
    if args.log:
        log_file = Path(args.log) / "log.jsonl" if Path(args.log).is_dir() else Path(args.log)
    refuse_overwriting_inputs(args.out, {
        "--gt": args.gt, "--pred": args.pred, "--features": args.features, "--log": log_file,
        "--checkpoint": checkpoint_inputs(args.checkpoint) if args.checkpoint and Path(args.checkpoint).exists()
        else None})
    if args.log:
        log = Path(args.log)
        return plot_curves(args.out, log / "log.jsonl" if log.is_dir() else log)
    if args.checkpoint and args.features:
        return mask_picture(args.out, args.checkpoint, args.features, gt_path=args.gt, video_id=args.video)
    if args.gt and args.pred and args.video:
        gt = load_annotations(args.gt)
        video = gt.by_id().get(args.video)
        if video is None:
            raise GsmtError(args.gt, f"no video '{args.video}'")
        return timeline_picture(args.out, video, gt.classes, load_predictions(args.pred).get(args.video, []),
                                top=args.top)
    raise GsmtError("visualize", "give --gt --pred --video (timeline), --checkpoint --features (mask) or --log (curves)")


def timeline_picture(out, video: Video, classes: list[str], detections: list[dict], *, top: int = 10) -> Path:
    from gsmt.viz.timeline import plot_timeline

    names = list(classes) + sorted({d["label"] for d in detections} - set(classes))
    index = {name: i for i, name in enumerate(names)}
    return plot_timeline(
        out, duration=video.duration, gt_segments=video.segments, gt_labels=video.labels,
        pred_segments=np.array([d["segment"] for d in detections], dtype=np.float64).reshape(-1, 2),
        pred_labels=np.array([index[d["label"]] for d in detections], dtype=np.int64),
        pred_scores=np.array([d["score"] for d in detections], dtype=np.float64),
        classes=names, video_id=video.id, top=top)


def mask_picture(out, checkpoint, features, *, gt_path=None, video_id=None) -> Path:
    """The predicted global mask of a video's first sample beside its ground-truth mask."""
    from gsmt.viz.masks import plot_masks
    from gsmt.api import Localizer
    from gsmt.data.targets import make_targets

    loc = Localizer.from_checkpoint(checkpoint)
    video = None
    if gt_path:
        gt = load_annotations(gt_path)
        video = gt.by_id().get(video_id or Path(features).stem)
        if video is None:
            raise GsmtError(gt_path, f"no video '{video_id or Path(features).stem}'")
    raw = loc.raw_outputs(features, duration=video.duration if video else None,
                          fps=video.fps if video else None, feature_stride=video.feature_stride if video else None,
                          feature_window=video.feature_window if video else None)
    if "masks" not in raw:
        raise GsmtError(checkpoint, "this model has no mask branch")
    gt_mask = None
    if video is not None:
        span_end = min(video.duration, float(raw["t_end"][raw["valid"]].max()))
        targets = make_targets(video.segments, video.labels, raw["t_start"], raw["t_end"], raw["valid"],
                               len(loc.classes), span=(0.0, span_end), ambiguous=video.ambiguous)
        gt_mask = targets.mask
    actionness = raw["probs"][:-1].max(axis=0)
    return plot_masks(out, pred_mask=raw["masks"], gt_mask=gt_mask, valid=raw["valid"],
                          title=f"global mask M of {raw['video'].id}", actionness=actionness)


def run_analyze(gt_path: str | Path, pred_path: str | Path, out: str | Path, *, subset: str | None = None,
                tiou: float = 0.5, tiou_set: str | None = None, blocked: str | Path | None = None):
    """`gsmt analyze`: error types, mAP by ground-truth bin and missed ground truth, as
    `OUT/analysis.json` and pictures. Returns the `Analysis` and the picture paths."""
    from gsmt.viz.analysis import ANALYSIS_PICTURES, plot_analysis
    from gsmt.evaluation.analysis import analyze_detection

    out = Path(out)
    inputs = {"--gt": gt_path, "--pred": pred_path, "--blocked": blocked}
    for target in (out, out / "analysis.json", *(out / name for name in ANALYSIS_PICTURES.values())):
        refuse_overwriting_inputs(target, inputs)
    check_output_location(out, "folder")  # after: "is also an input" says more than "not a folder"
    if out.exists() and not out.is_dir():
        raise GsmtError(out, "--out must be a folder; this is a file")
    gt = load_annotations(gt_path)
    report_faults(gt.faults, gt_path)
    tiou_set = tiou_set or meta_tiou(gt) or "anet"
    predictions = load_predictions(pred_path)
    blocked_ids: list[str] = load_blocked(blocked) if blocked else []
    subset = _pick_subset(gt, predictions, subset, str(pred_path), str(gt_path))
    with _blame_files(gt_path, pred_path):
        analysis = analyze_detection(gt, predictions, subset=subset, tiou=tiou, tiou_set=tiou_set,
                                     blocked=blocked_ids)
    document = analysis.to_json()
    atomic_write_text(out / "analysis.json", json.dumps(document, indent=2))
    return analysis, plot_analysis(out, document)
