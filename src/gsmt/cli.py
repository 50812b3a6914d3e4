"""gsmt: temporal action localization with Global Segmentation Mask Transformers."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from gsmt import __version__
from gsmt.errors import GsmtError
from gsmt.schema import DEMO_MIN_VIDEOS, SEED_MAX, device_option, option


def one_line(text: str) -> str:
    """An error message as one line: a path or a value holding a line break cannot split it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _tiou_set(text: str) -> str:
    """argparse `type=` of a tIoU set (`anet`, `thumos`, `epic`, `0.3,0.5`): checked before any file is read."""
    from gsmt.evaluation.detection import parse_tiou  # NumPy only

    try:
        parse_tiou(text)
    except GsmtError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return text


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line, `gsmt: error: --opt: problem (see
    gsmt CMD --help)`, exit code 2, like every other error of gsmt (no usage block)."""

    def error(self, message: str):
        message = re.sub(r"^argument ([^:]+?): ", lambda m: m.group(1).split("/")[-1] + ": ", message)
        self.exit(2, one_line(f"gsmt: error: {message} (see {self.prog} --help)") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gsmt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gsmt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo, _add_synth, _add_train, _add_predict, _add_eval, _add_analyze, _add_visualize,
                _add_extract, _add_detect):
        add(sub)
    return parser


# ---------------------------------------------------------------- synth
def _add_synth(sub) -> None:
    from gsmt.synth import generate as synth

    p = sub.add_parser("synth", help="write a synthetic dataset (annotations + features)")
    synth.add_arguments(p)
    p.set_defaults(func=synth.run_cli)


# ---------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train GSMT on a data folder")
    p.add_argument("config", help="preset (demo, anet, thumos) or a YAML file")
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
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from gsmt.config import PRESETS, load_config
    from gsmt.video.record import with_data_backbone  # JSON only: no torch, PyAV or transformers
    from gsmt.engine.trainer import train
    from gsmt.io.guard import check_output_location

    check_output_location(args.out, "folder")
    cfg = load_config(args.config, args.overrides)
    cfg = with_data_backbone(cfg, args.data)  # features of `gsmt extract`: the checkpoint records the backbone
    config_file = None if args.config in PRESETS else args.config  # an input, like the data
    result = train(cfg, args.data, args.out, resume=args.resume, overwrite=args.overwrite,
                   progress=not args.quiet, inputs={"CONFIG": config_file})
    best = f", best epoch {result.best_epoch}" if result.best_epoch else ""
    print(f"trained {result.epochs} epochs{best}; run directory: {result.run_dir}")
    return 0


# ---------------------------------------------------------------- predict
def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="detect actions; writes ActivityNet submission JSON")
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
    p.set_defaults(func=_run_predict)


def _run_predict(args) -> int:
    from gsmt.jobs import run_predict

    summary = run_predict(args)
    if summary:  # under torchrun only rank 0 writes and reports
        print(summary)
    return 0


# ---------------------------------------------------------------- extract (gsmt[video])
def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="videos -> per-snippet features with a transformers backbone (gsmt[video])")
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
    p.add_argument("--device", default="cpu", type=device_option, help="cpu | cuda | cuda:N | mps | auto")
    p.add_argument("--batch-size", type=option(int, ge=1, le=1024), default=16,  # video.extract.MAX_BATCH
                   help="frames or clips per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_extract)


def _video_device(name: str) -> str:
    """The device asked for, checked before any work: `--device cuda` on a machine without CUDA is
    one line, not torch's AssertionError from deep inside the model's `.to()`."""
    from gsmt.engine.distributed import pick_device

    return str(pick_device(name, "--device"))


def _video_extra(command: str, module: str):
    """Import the video extra's job module, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(f"gsmt.video.{module}")
    except ImportError as exc:
        raise GsmtError(f"gsmt {command}", f"needs the video extra ({exc.name} is not installed): "
                                           "pip install 'gsmt[video]'") from None


def _run_extract(args) -> int:
    run_extract = _video_extra("extract", "extract").run_extract

    summary = run_extract(args.videos, args.backbone, args.out, fps=args.fps, stride=args.feature_stride,
                          window=args.feature_window, annotations=args.annotations,
                          device=_video_device(args.device), batch_size=args.batch_size, progress=not args.quiet)
    if summary:  # under torchrun only rank 0 reports
        print(summary)
    return 0


# ---------------------------------------------------------------- detect (gsmt[video])
def _add_detect(sub) -> None:
    p = sub.add_parser("detect", help="videos -> detections JSON, WebVTT subtitles, timeline PNG (gsmt[video])")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (or folders of videos)")
    p.add_argument("--checkpoint", required=True, help="run directory (best, else last) or checkpoint file")
    p.add_argument("--out", required=True, help="folder for <id>.json, <id>.vtt, <id>_timeline.png, detections.json")
    p.add_argument("--backbone", help="a copy of the recorded backbone (checked by digest), or the backbone of a "
                                      "checkpoint that records none")
    p.add_argument("--fps", type=option(float, gt=0, le=1000), help="only when the checkpoint records no grid")
    p.add_argument("--feature-stride", type=option(int, ge=1), help="only when the checkpoint records no grid")
    p.add_argument("--feature-window", type=option(int, ge=1, le=4096),
                   help="only when the checkpoint records no grid")
    p.add_argument("--min-score", type=option(float, ge=0, le=1), default=0.3, help="subtitles: lowest score shown")
    p.add_argument("--top", type=option(int, ge=1), default=10, help="detections drawn on the timeline")
    p.add_argument("--device", default="cpu", type=device_option, help="cpu | cuda | cuda:N | mps | auto")
    p.add_argument("--batch-size", type=option(int, ge=1, le=1024), default=16,  # video.extract.MAX_BATCH
                   help="frames or clips per forward pass")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_detect)


def _run_detect(args) -> int:
    run_detect = _video_extra("detect", "pipeline").run_detect

    print(run_detect(args.videos, args.checkpoint, args.out, backbone=args.backbone, fps=args.fps,
                     stride=args.feature_stride, window=args.feature_window, device=_video_device(args.device),
                     batch_size=args.batch_size, min_score=args.min_score, top=args.top, progress=not args.quiet))
    return 0


# ---------------------------------------------------------------- eval
def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="mAP at tIoU thresholds (identical to the official ActivityNet code)")
    p.add_argument("--gt", required=True, help="ground truth (ActivityNet JSON or another annotation format)")
    p.add_argument("--pred", required=True, help="predictions (ActivityNet submission JSON)")
    p.add_argument("--subset", help="GT subset (default: the subset of the predicted videos)")
    p.add_argument("--tiou", default=None, type=_tiou_set,
                   help="anet | thumos | epic | a comma list (default: from the data)")
    p.add_argument("--blocked", metavar="NAME|FILE",
                   help="JSON list of video ids to leave out, or 'activitynet13' for the packaged list of "
                        "the 198 ActivityNet-1.3 validation videos the BSN/BMN features lack")
    p.add_argument("--class-agnostic", action="store_true",
                   help="merge every label into one class: mAP of localization alone")
    p.add_argument("--json", help="write the metrics as JSON here")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    from gsmt.jobs import run_eval

    metrics = run_eval(args.gt, args.pred, subset=args.subset, tiou=args.tiou, blocked=args.blocked,
                       json_out=args.json, class_agnostic=args.class_agnostic)
    print(metrics.format_table())
    return 0


# ---------------------------------------------------------------- analyze
def _add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="error analysis: false-positive types, mAP by action length and coverage")
    p.add_argument("--gt", required=True, help="ground truth (ActivityNet JSON or another annotation format)")
    p.add_argument("--pred", required=True, help="predictions (ActivityNet submission JSON)")
    p.add_argument("--subset", help="GT subset (default: the subset of the predicted videos)")
    p.add_argument("--tiou", type=option(float, gt=0, le=1), default=0.5,
                   help="tIoU threshold of the error types (default 0.5)")
    p.add_argument("--tiou-set", default=None, type=_tiou_set,
                   help="thresholds of the bins' average mAP: anet | thumos | epic | a comma list "
                        "(default: as gsmt eval, from the data)")
    p.add_argument("--blocked", metavar="NAME|FILE",
                   help="JSON list of video ids to leave out, or 'activitynet13' (as gsmt eval)")
    p.add_argument("--out", required=True, help="folder for analysis.json and the pictures")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from gsmt.jobs import run_analyze

    analysis, pictures = run_analyze(args.gt, args.pred, args.out, subset=args.subset, tiou=args.tiou,
                                     tiou_set=args.tiou_set, blocked=args.blocked)
    print(analysis.format_table())
    print(f"wrote {Path(args.out) / 'analysis.json'}, " + ", ".join(p.name for p in pictures.values()))
    return 0


# ---------------------------------------------------------------- visualize
def _add_visualize(sub) -> None:
    p = sub.add_parser("visualize", help="pictures: timeline, global mask heatmap, training curves")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--gt", help="ground truth file (timeline; mask heatmap's target)")
    p.add_argument("--pred", help="predictions JSON (timeline)")
    p.add_argument("--video", help="video id")
    p.add_argument("--checkpoint", help="run directory or checkpoint (mask heatmap)")
    p.add_argument("--features", help="feature file of one video (mask heatmap)")
    p.add_argument("--log", help="run directory or its log.jsonl (training curves)")
    p.add_argument("--top", type=option(int, ge=1), default=10, help="predictions shown on the timeline")
    p.set_defaults(func=_run_visualize)


def _run_visualize(args) -> int:
    from gsmt.jobs import visualize

    path = visualize(args)
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="synthetic data -> train -> predict -> evaluate -> table and pictures")
    p.add_argument("--preset", default="thumos-like", choices=["thumos-like", "anet-like"])
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a previous demo output folder")
    p.add_argument("--videos", type=option(int, ge=DEMO_MIN_VIDEOS), help="synthetic videos (default: the demo's size)")
    p.add_argument("--seed", type=option(int, ge=0, le=SEED_MAX), default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config value")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--video", action="store_true",
                   help="the raw-video path instead (gsmt[video]): mp4 clips -> extract -> train -> detect, "
                        "subtitles and timeline (default --out demo_video_out)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from gsmt.demo import run_demo, run_video_demo

    if args.video:
        _video_extra("extract", "extract")  # one line naming the missing extra, not an ImportError
        out = Path(args.out) if args.out != "demo_out" else Path("demo_video_out")
        run_video_demo(out=out, overwrite=args.overwrite, videos=args.videos or 48, seed=args.seed,
                       progress=not args.quiet)
        return 0
    run_demo(preset=args.preset, out=Path(args.out), overwrite=args.overwrite, videos=args.videos,
             seed=args.seed, overrides=args.overrides, progress=not args.quiet)
    return 0


def _show_warnings() -> logging.Handler:
    """Counted data faults and other library warnings as `gsmt: warning: ...` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("gsmt: warning: %(message)s"))
    logging.getLogger("gsmt").addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = _show_warnings()
    try:
        return int(args.func(args) or 0)
    except GsmtError as exc:
        print(one_line(f"gsmt: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsmt: interrupted", file=sys.stderr)
        return 130
    finally:
        # main() may run many times in one process (tests, notebooks): no handler piles up.
        logging.getLogger("gsmt").removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
