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

    python -m benchmarks.oracle --timelines thumos14 --timelines multithumos [--timelines FILE ...]

Window mode at the family's THUMOS14 grid (30 fps, stride 8, window 16; T = 256, half-overlapping
windows), the `thumos` preset's decoding, every video of the evaluated subset; tIoU `thumos`
(0.3:0.7) for THUMOS14 and `multithumos` (0.1:0.9) for the dense datasets.
"""

from __future__ import annotations

import argparse
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

GRID = Grid(30.0, 8, 16)
T = 256
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


def oracle(path: str | Path, design: str, tiou: str) -> dict:
    """Average mAP (and per tIoU) of the `design` oracle on the evaluated subset of `path`."""
    ann = load_annotations(path)
    subset = next(s for s in SUBSETS if s in ann.subsets)
    videos = ann.subset(subset)
    decode = load_config("thumos", [f"decode.m1={T}"]).decode  # every snippet proposes
    features = MemoryFeatures({v.id: np.zeros((GRID.num_snippets(v.duration), 1), np.float32) for v in videos})
    dataset = TALDataset(videos, features, ann.num_classes, mode="window", T=T, window_stride=T // 2, grid=GRID,
                         multilabel=design == "multi")
    found = predict_dataset(None, dataset, decode,
                            candidates=(_multi if design == "multi" else _single)(ann.num_classes, decode))
    metrics = evaluate_detection(ann, to_results(found, ann.classes), subset=subset, tiou=tiou)
    return {"subset": subset, "videos": len(videos), "instances": int(sum(len(v.segments) for v in videos)),
            **{k: v for k, v in metrics.to_json().items() if k in ("tiou", "mAP", "average_mAP")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timelines", action="append", required=True,
                        help=f"a packaged name ({', '.join(TIMELINES)}) or an annotation file")
    parser.add_argument("--out", type=Path, help="write the records as JSON lines here")
    args = parser.parse_args(argv)
    records = []
    print("| dataset | videos | instances | tIoU | single-label oracle | multi-label oracle |")
    print("|---|---:|---:|---|---:|---:|")
    for name in args.timelines:
        tiou = "thumos" if name == "thumos14" else "multithumos"
        rows = {design: oracle(timelines_path(name), design, tiou) for design in ("single", "multi")}
        records.append({"timelines": name, **rows})
        s, m = rows["single"], rows["multi"]
        print(f"| {name} | {s['videos']} | {s['instances']} | {tiou} | {100 * s['average_mAP']:.2f} | "
              f"{100 * m['average_mAP']:.2f} |", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
