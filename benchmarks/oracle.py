"""Oracle rows (issue 32): how much of a dataset each design can represent at all.

The ground truth itself, on a dataset's snippet grid, is decoded as a perfect model of each design
would output it, through gsmt's own windows, decoding, Soft-NMS and evaluator (no model, no
features):
- `single` (the paper's): one label and one mask per snippet, the shortest instance holding it
  (then the lower class id): a one-hot class row and that instance's mask column;
- `multi` (`model.labels: multi`): every label of every snippet and one mask per (snippet, class),
  the shortest instance of that class holding it.
What the single-label oracle misses (a THUMOS14 Diving twin, the short instance inside a long one of
another class) no single-label model can find.

    python -m benchmarks.oracle --timelines thumos14 --timelines multithumos --timelines activitynet13 \
        [--timelines FILE=PRESET ...]     # e.g. ../charades.json=charades (not packaged: its licence)

Each dataset is read as its preset reads it (`thumos14` -> `thumos`, `multithumos` -> `multithumos`,
`activitynet13` -> `anet`; a file names its preset): the preset's temporal mode, T, decoding and
tIoUs, on the family's grid of that mode (window: 30 fps, stride 8, window 16, half-overlapping
windows; resize: 30 fps, stride 16, window 16), with every snippet proposing (`decode.m1` = T);
every video of the evaluated subset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from gsmt.annotations.load import load_annotations
from gsmt.annotations.packaged import TIMELINES, timelines_path
from gsmt.api import MemoryFeatures
from gsmt.config import load_config
from gsmt.data.dataset import TALDataset
from gsmt.data.grid import Grid
from gsmt.engine.predictor import decode_samples, predict_dataset, to_results
from gsmt.evaluation import evaluate_detection
from gsmt.postprocess.decode import decode_pairs_many

GRIDS = {"window": Grid(30.0, 8, 16), "resize": Grid(30.0, 16, 16)}  # the family's THUMOS14 / ActivityNet grids
PRESETS = {"thumos14": "thumos", "multithumos": "multithumos", "activitynet13": "anet"}
SUBSETS = ("test", "testing", "validation")  # the first one a file has is evaluated


def _single(num_classes: int, d):
    def candidates(batch):
        cls = batch["cls_target"].numpy()
        probs = np.zeros((cls.shape[0], num_classes + 1, cls.shape[1]))
        rows = np.where(cls >= 0, cls, num_classes)  # ignored snippets: background
        np.put_along_axis(probs, rows[:, None, :], 1.0, axis=1)
        return decode_samples(probs, batch["mask_target"].numpy().astype(np.float64), batch, d)
    return candidates


def _multi(num_classes: int, d):
    def candidates(batch):
        return decode_pairs_many(batch["label_target"].numpy(), batch["pair_mask"].numpy(),
                                 batch["pair_snippet"].numpy(), batch["pair_class"].numpy(), batch["valid"].numpy(),
                                 batch["t_start"].numpy(), batch["t_end"].numpy(),
                                 batch["duration"].numpy().astype(np.float64), mode=d.mode,
                                 thresholds=np.asarray(d.thresholds), m2=d.m2, theta_c=d.theta_c, score=d.score,
                                 mask_score=d.resolved_mask_score())
    return candidates


def oracle(path: str | Path, design: str, preset: str) -> dict:
    """Average mAP (and per tIoU) of the `design` oracle on the evaluated subset of `path`, read as `preset` reads it."""
    ann = load_annotations(path)
    subset = next(s for s in SUBSETS if s in ann.subsets)
    videos = ann.subset(subset)
    cfg = load_config(preset)
    mode, T = cfg.data.temporal_mode, cfg.data.T
    decode = dataclasses.replace(cfg.decode, m1=T)  # every snippet proposes
    grid = GRIDS[mode]
    features = MemoryFeatures({v.id: np.zeros((grid.num_snippets(v.duration), 1), np.float32) for v in videos})
    dataset = TALDataset(videos, features, ann.num_classes, mode=mode, T=T, window_stride=T // 2, grid=grid,
                         multilabel=design == "multi")
    found = predict_dataset(None, dataset, decode,
                            candidates=(_multi if design == "multi" else _single)(ann.num_classes, decode))
    metrics = evaluate_detection(ann, to_results(found, ann.classes), subset=subset, tiou=decode.tiou)
    return {"subset": subset, "videos": len(videos), "instances": int(sum(len(v.segments) for v in videos)),
            "preset": preset, **{k: v for k, v in metrics.to_json().items() if k in ("tiou", "mAP", "average_mAP")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timelines", action="append", required=True,
                        help=f"a packaged name ({', '.join(TIMELINES)}) or FILE=PRESET")
    parser.add_argument("--out", type=Path, help="write the records as JSON lines here")
    args = parser.parse_args(argv)
    records = []
    print("| dataset | preset | videos | instances | tIoU | single-label oracle | multi-label oracle |")
    print("|---|---|---:|---:|---|---:|---:|")
    for item in args.timelines:
        name, _, preset = item.partition("=")
        preset = preset or PRESETS.get(name)
        if preset is None:
            parser.error(f"--timelines {item}: name the preset that reads it (FILE=PRESET)")
        path = timelines_path(name) if name in TIMELINES else Path(name)
        rows = {design: oracle(path, design, preset) for design in ("single", "multi")}
        records.append({"timelines": name, **rows})
        s, m = rows["single"], rows["multi"]
        tiou = ",".join(f"{t:g}" for t in s["tiou"])
        print(f"| {Path(name).stem} | {preset} | {s['videos']} | {s['instances']} | {tiou} | "
              f"{100 * s['average_mAP']:.2f} | {100 * m['average_mAP']:.2f} |", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
