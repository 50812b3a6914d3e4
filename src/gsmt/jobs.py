"""What the `predict`, `eval` and `visualize` commands do with files (the CLI only parses arguments)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from gsmt.config import apply_overrides
from gsmt.data.annotations import Annotations, Video, check_video_id, load_annotations
from gsmt.data.features import FeatureStore
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.data import make_dataset, open_data, report_faults, require_features, subset_videos
from gsmt.engine.predictor import predict_dataset, submission, to_results
from gsmt.engine.trainer import pick_device
from gsmt.errors import GsmtError
from gsmt.evaluation import DetectionMetrics, evaluate_detection, load_predictions
from gsmt.io import atomic_write_text
from gsmt.postprocess.fusion import fuse_results, load_video_scores

FEATURE_SUFFIXES = (".npy", ".npz", ".pt", ".csv")


def _read_durations(path: str | Path) -> dict[str, float]:
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise GsmtError(path, f"cannot read durations ({exc.strerror or type(exc).__name__})") from None
    try:
        return {row["video"]: float(row["duration"]) for row in rows}
    except (KeyError, TypeError, ValueError):
        raise GsmtError(path, "expected a CSV with columns video,duration") from None


def _feature_folder_videos(folder: Path, grid: dict, durations: dict[str, float] | None) -> list[Video]:
    """Videos for a bare folder of feature files: ids from file names, durations from a CSV or the grid."""
    if not folder.is_dir():
        raise GsmtError(folder, "feature folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix in FEATURE_SUFFIXES)
    if not files:
        raise GsmtError(folder, f"no feature files ({', '.join(FEATURE_SUFFIXES)})")
    store = FeatureStore(folder)
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
                    batch_size: int | None = None, progress: bool = False, where: str = "data") -> dict:
    """ActivityNet `results` for `videos`: every video present, even those where nothing was found."""
    require_features(videos, features, where)
    dataset = make_dataset(videos, features, cfg, len(classes), train=False)
    detections = predict_dataset(model, dataset, cfg.decode, device=device, batch_size=batch_size,
                                 progress=progress)
    report_faults(dataset.faults, where)
    results = to_results(detections, classes)
    for video in videos:
        results.setdefault(video.id, [])
    return results


def run_predict(args) -> str:
    """`gsmt predict`: detections for a subset of a data folder, or for a bare folder of features."""
    state = load_checkpoint(args.checkpoint)
    model, cfg, meta = model_from_checkpoint(state, args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides, sections=("decode",))
    device = pick_device(args.device)
    model.to(device)
    classes = meta["classes"]
    if args.data:
        source = open_data(args.data, cfg, feature_dim=meta["feature_dim"])
        report_faults(source.annotations.faults, source.annotations.source)
        subset = args.subset or cfg.data.eval_subset
        videos = subset_videos(source.annotations, subset, args.data)
        features = source.features
    else:
        grid = {"fps": args.fps or meta["grid"].get("fps"),
                "feature_stride": args.feature_stride or meta["grid"].get("feature_stride"),
                "feature_window": args.feature_window or meta["grid"].get("feature_window")}
        cfg.data.fps, cfg.data.feature_stride, cfg.data.feature_window = (
            grid["fps"], grid["feature_stride"], grid["feature_window"])
        durations = _read_durations(args.durations) if args.durations else None
        videos = _feature_folder_videos(Path(args.features), grid, durations)
        features = FeatureStore(args.features, feature_dim=meta["feature_dim"])
    # A progress bar belongs on a terminal; in a log or a pipe it is noise around the real messages.
    results = predict_results(model, cfg, classes, videos, features, device=device,
                              batch_size=args.batch_size, progress=sys.stderr.isatty(),
                              where=args.data or args.features)
    external = {"used": False}
    if args.fuse:
        fused, lacking = fuse_results(results, load_video_scores(args.fuse), mode=args.fuse_mode,
                                      max_keep=cfg.decode.max_keep)
        results = fused
        external = {"used": True, "details": f"video-level classifier scores from {Path(args.fuse).name}, "
                                              f"fusion mode {args.fuse_mode}; {lacking} videos without scores"}
    atomic_write_text(args.out, json.dumps(submission(results, external)))
    n = sum(len(r) for r in results.values())
    return f"wrote {n} detections for {len(results)} videos to {args.out}"


def _pick_subset(gt: Annotations, predictions: dict, subset: str | None, where: str) -> str | None:
    """Without --subset: the one subset holding all predicted videos."""
    if subset is not None:
        if subset not in gt.subsets:
            raise GsmtError(where, f"no subset '{subset}' (subsets: {', '.join(gt.subsets)})")
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


def run_eval(gt_path: str | Path, pred_path: str | Path, *, subset: str | None = None, tiou: str | None = None,
             blocked: str | Path | None = None, json_out: str | Path | None = None) -> DetectionMetrics:
    """`gsmt eval`: mAP at each tIoU, recall, per-class AP; optionally written as JSON."""
    gt = load_annotations(gt_path)
    report_faults(gt.faults, gt_path)
    predictions = load_predictions(pred_path)
    subset = _pick_subset(gt, predictions, subset, str(pred_path))
    blocked_ids: list[str] = []
    if blocked:
        try:
            blocked_ids = [str(v) for v in json.loads(Path(blocked).read_text())]
        except (OSError, json.JSONDecodeError, TypeError):
            raise GsmtError(blocked, "expected a JSON list of video ids") from None
    tiou = tiou or gt.meta.get("tiou") or "anet"
    metrics = evaluate_detection(gt, predictions, subset=subset, tiou=tiou, blocked=blocked_ids)
    if json_out:
        atomic_write_text(json_out, json.dumps(metrics.to_json(), indent=2))
    return metrics


def visualize(args) -> Path:
    """`gsmt visualize`: a timeline (--gt --pred --video), a mask heatmap (--checkpoint --features)
    or training curves (--log)."""
    from gsmt import viz

    if args.log:
        log = Path(args.log)
        return viz.plot_curves(args.out, log / "log.jsonl" if log.is_dir() else log)
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
    from gsmt import viz

    names = list(classes) + sorted({d["label"] for d in detections} - set(classes))
    index = {name: i for i, name in enumerate(names)}
    return viz.plot_timeline(
        out, duration=video.duration, gt_segments=video.segments, gt_labels=video.labels,
        pred_segments=np.array([d["segment"] for d in detections], dtype=np.float64).reshape(-1, 2),
        pred_labels=np.array([index[d["label"]] for d in detections], dtype=np.int64),
        pred_scores=np.array([d["score"] for d in detections], dtype=np.float64),
        classes=names, video_id=video.id, top=top)


def mask_picture(out, checkpoint, features, *, gt_path=None, video_id=None) -> Path:
    """The predicted global mask of a video's first sample beside its ground-truth mask."""
    from gsmt import viz
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
    return viz.plot_masks(out, pred_mask=raw["masks"], gt_mask=gt_mask, valid=raw["valid"],
                          title=f"global mask M of {raw['video'].id}", actionness=actionness)
