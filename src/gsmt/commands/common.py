"""What every command shares: one-line errors, argparse types, the video extra's import."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

from gsmt.errors import GsmtError
from gsmt.schema import device_option, option

if TYPE_CHECKING:
    from gsmt.annotations.types import Annotations


def one_line(text: str) -> str:
    """An error message as one line: a path or a value holding a line break cannot split it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def tiou_set(text: str) -> str:
    """argparse `type=` of a tIoU set (a preset of `TIOU_PRESETS`, `0.3,0.5`): checked before any file is read."""
    from gsmt.evaluation.tiou import parse_tiou  # NumPy only

    try:
        parse_tiou(text)
    except GsmtError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
    return text


def add_overrides(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.overrides`."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar=metavar, help=help)


def add_video_run_options(p: argparse.ArgumentParser) -> None:
    """`--device`, `--batch-size`, `--threads`, `--quiet`: how `gsmt extract` and `gsmt detect` run a backbone."""
    p.add_argument("--device", default="cpu", type=device_option, help="cpu | cuda | cuda:N | mps | auto")
    p.add_argument("--batch-size", type=option(int, ge=1, le=1024), default=16,  # video.extract.MAX_BATCH
                   help="frames or clips per forward pass")
    p.add_argument("--threads", type=option(int, ge=1, le=1024),  # video.frames.MAX_THREADS
                   help="CPU threads of torch and of FFmpeg's decoding (default: the libraries' own choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def video_device(name: str) -> str:
    """The device asked for, checked before any work: `--device cuda` on a machine without CUDA is
    one line, not torch's AssertionError from deep inside the model's `.to()`."""
    from gsmt.engine.distributed import pick_device

    return str(pick_device(name, "--device"))


def video_extra(command: str, module: str):
    """Import the video extra's module, or say in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(f"gsmt.video.{module}")
    except ImportError as exc:
        raise GsmtError(f"gsmt {command}", f"needs the video extra ({exc.name} is not installed): "
                                           "pip install -e '.[video]' in a clone of gsmt") from None


def pick_subset(gt: Annotations, predictions: dict, subset: str | None, where: str,
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
def blame_files(gt_path, pred_path):
    """The evaluator names its inputs by role ("ground truth", "predictions"); the command names the files."""
    try:
        yield
    except GsmtError as exc:
        files = {"ground truth": gt_path, "predictions": pred_path}
        if exc.where in files:
            raise GsmtError(files[exc.where], exc.problem) from None
        raise
