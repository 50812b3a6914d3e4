"""Evaluator speed: `gsmt.evaluation.evaluate_detection` vs a loop-by-loop port of the official code.

ActivityNet-1.3 validation ground truth (4,926 videos, 200 classes) with 100 seeded random
predictions per video (half jittered copies of the ground truth, half random segments). Times the
vectorised evaluator (best of 3) and the reference loop (`tests/official_reference.py`: the
official algorithm without pandas, so faster than the official script itself), checks that their
mAPs agree and prints a markdown table.

    python -m benchmarks.eval_speed [--per-video 100] [--sample 1.0]

The reference runs on everything by default (about half a minute); `--sample 0.1` runs it on 10%
of the videos and extrapolates its time linearly (its cost is one pass per prediction).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations, Video
from gsmt.io.read import read_text
from gsmt.annotations.packaged import timelines_path
from gsmt.evaluation import TIOU_PRESETS, evaluate_detection

from tests.official_reference import reference_detection  # the reference lives with the tests

GT_PATH = timelines_path("activitynet13")  # the packaged real ActivityNet-1.3 annotations (.json.gz)


def load_ground_truth(path: Path) -> tuple[dict, Annotations]:
    """The raw `database` (for the reference) and Annotations of the same validation videos."""
    database = json.loads(read_text(path))["database"]
    database = {k: v for k, v in database.items() if v["subset"] == "validation"}
    try:
        from gsmt.annotations.load import load_annotations
    except ImportError:  # the reader is newer than this script's first version
        load_annotations = None
    if load_annotations is not None:
        ann = load_annotations(path)
        return database, Annotations(videos=ann.subset("validation"), classes=ann.classes)
    classes = sorted({a["label"] for v in database.values() for a in v["annotations"]})
    index = {c: i for i, c in enumerate(classes)}
    videos = [Video(id=k, subset=v["subset"], duration=float(v["duration"]),
                    segments=np.array([a["segment"] for a in v["annotations"]], dtype=np.float64).reshape(-1, 2),
                    labels=np.array([index[a["label"]] for a in v["annotations"]], dtype=np.int64))
              for k, v in database.items()]
    return database, Annotations(videos=videos, classes=classes)


def make_predictions(database: dict, classes: list[str], per_video: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    results = {}
    for vid, v in database.items():
        dur = float(v["duration"])
        anns = v["annotations"]
        n_near = per_video // 2 if anns else 0
        seg = np.empty((per_video, 2))
        labels = rng.integers(0, len(classes), per_video)
        if n_near:
            pick = rng.integers(0, len(anns), n_near)
            base = np.array([anns[i]["segment"] for i in pick], dtype=np.float64)
            length = np.maximum(base[:, 1] - base[:, 0], 1.0)
            seg[:n_near] = base + rng.normal(0, 0.15, (n_near, 2)) * length[:, None]
            own = rng.random(n_near) < 0.7
            labels[:n_near][own] = [classes.index(anns[i]["label"]) for i in pick[own]]
        start = rng.uniform(0, dur, per_video - n_near)
        seg[n_near:, 0] = start
        seg[n_near:, 1] = start + rng.uniform(0.5, max(dur - start.min(), 1.0), per_video - n_near)
        seg = np.sort(seg, axis=1)
        score = rng.random(per_video)
        score[:n_near] = 0.3 + 0.7 * score[:n_near]
        results[vid] = [{"label": classes[c], "score": float(s), "segment": [float(a), float(b)]}
                        for c, s, (a, b) in zip(labels, score, seg)]
    return results


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-video", type=int, default=100)
    ap.add_argument("--sample", type=float, default=1.0, help="reference on this fraction of videos")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    database, ann = load_ground_truth(GT_PATH)
    results = make_predictions(database, ann.classes, args.per_video, args.seed)
    n_pred = sum(len(p) for p in results.values())
    tiou = TIOU_PRESETS["anet"]

    t_fast, m = best_of(lambda: evaluate_detection(ann, results, subset="validation", tiou=tiou), 3)
    t_fast_ap, m_ap = best_of(lambda: evaluate_detection(ann, results, subset="validation", tiou=tiou,
                                                         with_recall=False), 3)

    frac = args.sample
    rng = np.random.default_rng(args.seed + 1)
    ids = list(database)
    keep = set(ids) if frac >= 1 else set(rng.choice(ids, int(round(frac * len(ids))), replace=False))
    sub_db = {k: v for k, v in database.items() if k in keep}
    sub_res = {k: v for k, v in results.items() if k in keep}
    sub_ann = Annotations(videos=[v for v in ann.videos if v.id in keep], classes=ann.classes)
    t0 = time.perf_counter()
    ref_ap, _ = reference_detection(sub_db, sub_res, "validation", tiou)
    t_ref = time.perf_counter() - t0
    sub_n = sum(len(p) for p in sub_res.values())
    t_ref_full = t_ref * n_pred / sub_n
    m_sub = evaluate_detection(sub_ann, sub_res, subset="validation", tiou=tiou, with_recall=False)
    diff = float(np.abs(m_sub.mAP - ref_ap.mean(axis=1)).max())

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"input: ActivityNet-1.3 validation, {len(database)} videos, {len(ann.classes)} classes, "
          f"{n_pred} predictions ({args.per_video}/video, seed {args.seed})")
    print(f"gsmt average mAP {m.average_mAP:.6f}, mAP-only run {m_ap.average_mAP:.6f}; reference vs "
          f"gsmt on {len(keep)} videos: max |mAP diff| over tIoU = {diff:.2e}"
          + ("  OK" if diff <= 1e-6 else "  MISMATCH"))
    print()
    print("| evaluator | predictions | time (s) | ratio |")
    print("|---|---:|---:|---:|")
    note = "" if frac >= 1 else f" (measured on {sub_n}, extrapolated)"
    print(f"| reference loop (official algorithm, no pandas) | {n_pred}{note} | {t_ref_full:.1f} | 1.0 |")
    print(f"| gsmt evaluate_detection, mAP only | {n_pred} | {t_fast_ap:.2f} | "
          f"{t_ref_full / t_fast_ap:.0f}x |")
    print(f"| gsmt evaluate_detection, mAP + Recall@kx + AR@AN | {n_pred} | {t_fast:.2f} | "
          f"{t_ref_full / t_fast:.0f}x |")
    if diff > 1e-6:
        sys.exit(1)


if __name__ == "__main__":
    main()
