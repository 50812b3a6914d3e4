"""Error analysis of a detection file in the manner of DETAD (Alwassel et al., ECCV 2018).

Built on the evaluator's readers, tIoU, matching and AP code (`gsmt.evaluation.predictions`,
`gsmt.evaluation.tiou`, `gsmt.evaluation.matching`, `gsmt.evaluation.detection`).

**Error types** at the tIoU threshold `a` (default 0.5). G is the number of ground-truth instances
of the evaluated videos (the subset minus blocked videos, as `gsmt eval`). The predictions on
those videos, all classes together, are sorted by descending score (equal scores keep file
order) and the top N = min(10G, their number) are classified, each by the first rule that applies:

1. `true_positive`: tIoU >= a with a not yet matched ground truth of its label; of those, the one
   with the highest tIoU (the first in file order on ties) becomes matched;
2. `double_detection`: tIoU >= a with a ground truth of its label that is already matched;
3. `wrong_label`: tIoU >= a with a ground truth of another label only;
4. `localization`: 0.1 <= best tIoU with a ground truth of its label < a;
5. `confusion`: 0.1 <= best tIoU with a ground truth of another label < a;
6. `background`: tIoU < 0.1 with every ground truth.

Co-occurring actions (MultiTHUMOS, Charades): ground truth is matched within its label only, so a
prediction that matches an instance of its own label is a true positive (or a double detection)
whatever instances of other labels overlap it; it is a wrong_label only when no instance of its
label reaches tIoU a. Two predictions of two labels on two co-occurring instances are two true
positives.

A prediction only meets the ground truth of its own video; 0/0 (a zero-length prediction on a
zero-length ground truth) counts as tIoU 0 here. Predictions on other videos are ignored. A label
that no ground truth carries is kept: such a prediction is a wrong_label, confusion or background.
`profile[k]` counts the six types among the predictions ranked kG .. (k+1)G - 1 (k = 0..9).

**Localization errors by kind** (`localization_kinds`, among the top G and the top N), against the
prediction's highest-tIoU ground truth g of its label (the first in file order on ties), each by
the first rule that applies:
1. `merged`: the prediction covers more than half of each of two or more ground truths of its label
   (it spans repeats of its action);
2. `too_short`: at least 90% of the prediction lies inside g (a fragment of its instance);
3. `too_long`: at least 90% of g lies inside the prediction;
4. `shifted`: neither (both edges off).

**Bins** (DETAD's THUMOS14 bins) of the ground truth: length in seconds XS (0, 3], S (3, 6],
M (6, 12], L (12, 18], XL over 18; coverage (length / video duration) XS (0, .02], S (.02, .04],
M (.04, .06], L (.06, .08], XL over .08. A ground truth of length <= 0 is in no bin.

**Bin mAP**: `gsmt eval`'s average mAP (the same ranking, matching and interpolated AP, averaged
over the tIoU set and over the classes present in the bin) with only the bin's ground truth,
after dropping every prediction whose best ground truth (same video, same label, highest tIoU,
the first in file order on ties) lies outside the bin with a tIoU >= the smallest threshold of the
set. Everything else about the predictions is as in `gsmt eval` (predictions on videos without
ground truth are false positives). With all ground truth in one bin nothing is dropped and the
bin's number is `gsmt eval`'s average mAP. DETAD itself drops the predictions that the full
evaluation matched to another bin's ground truth at some threshold; the two rules differ only
when a prediction's best ground truth was already taken by a higher-scored one.

`false_negatives[bin]`: the share of the bin's ground truth that no true_positive among the top N
predictions matched (None for an empty bin).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation.detection import gather_inputs, interpolated_ap
from gsmt.evaluation.matching import GroundTruth, group_starts, match_predictions, match_video_ids
from gsmt.evaluation.tiou import parse_tiou, segment_tiou

ERROR_TYPES = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")
LOCALIZATION_KINDS = ("merged", "too_short", "too_long", "shifted")
NESTED = 0.9  # share of one segment inside the other for too_short / too_long
BIN_NAMES = ("XS", "S", "M", "L", "XL")
LENGTH_EDGES = (0.0, 3.0, 6.0, 12.0, 18.0)  # seconds; the last bin is open
COVERAGE_EDGES = (0.0, 0.02, 0.04, 0.06, 0.08)  # share of the video
MIN_TIOU = 0.1  # below it a prediction is a background error
BLOCKS = 10  # the profile covers the top 10G predictions


@dataclass
class Analysis:
    """Error types of the top predictions, mAP per ground-truth bin and missed ground truth."""

    tiou: float
    num_gt: int
    num_predictions: int
    counts: dict[str, int]
    profile: list[dict[str, int]]
    by_length: dict[str, dict]
    by_coverage: dict[str, dict]
    false_negatives: dict[str, float | None]
    mAP_tiou: list[float]  # the thresholds the bin mAPs average over
    average_mAP: float  # all ground truth, nothing dropped: `gsmt eval`'s average mAP
    localization_kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # "top_G" / "top_N" -> counts
    types: list[str] = field(default_factory=list, repr=False)  # type of each top prediction, by rank

    def to_json(self) -> dict:
        """The `analysis.json` document (plain JSON types, no NaN)."""
        return {
            "tiou": self.tiou, "num_gt": self.num_gt, "num_predictions": self.num_predictions,
            "counts": dict(self.counts), "profile": [dict(p) for p in self.profile],
            "by_length": {k: dict(v) for k, v in self.by_length.items()},
            "by_coverage": {k: dict(v) for k, v in self.by_coverage.items()},
            "false_negatives": dict(self.false_negatives),
            "mAP_tiou": list(self.mAP_tiou), "average_mAP": self.average_mAP,
            "localization_kinds": {k: dict(v) for k, v in self.localization_kinds.items()},
        }

    def format_table(self) -> str:
        """A printable summary: type shares in the top G and top N, then the bins."""
        g, n = self.num_gt, self.num_predictions
        top_g = self.profile[0]
        lines = [f"error analysis at tIoU {self.tiou:g}: {g} ground-truth instances, top {n} predictions",
                 f"{'type':<19}{'top 1G':>15} {'top ' + str(n):>15}"]
        for t in ERROR_TYPES:
            share_g = 100 * top_g[t] / g
            share_n = 100 * self.counts[t] / n if n else 0.0
            lines.append(f"{t:<19}{top_g[t]:>7} {share_g:6.1f}% {self.counts[t]:>7} {share_n:6.1f}%")
            if t == "localization" and self.localization_kinds:
                for k in LOCALIZATION_KINDS:
                    in_g, in_n = self.localization_kinds["top_G"][k], self.localization_kinds["top_N"][k]
                    lines.append(f"  {k.replace('_', ' '):<17}{in_g:>7} {100 * in_g / g:6.1f}% {in_n:>7} "
                                 f"{100 * in_n / n if n else 0.0:6.1f}%")
        thr = self.mAP_tiou
        span = f"{thr[0]:g}" if len(thr) == 1 else f"{thr[0]:g}:{thr[-1]:g}"
        lines.append(f"bins (average mAP % over tIoU {span}; all: {100 * self.average_mAP:.2f})")
        lines.append(f"{'':<19}" + "".join(f"{b:>8}" for b in BIN_NAMES))

        def row(name: str, values: Iterable) -> str:
            return f"{name:<19}" + "".join(f"{v:>8}" for v in values)

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}"

        lines.append(row("length   instances", (self.by_length[b]["instances"] for b in BIN_NAMES)))
        lines.append(row("length   mAP %", (pct(self.by_length[b]["average_mAP"]) for b in BIN_NAMES)))
        lines.append(row("length   missed %", (pct(self.false_negatives[b]) for b in BIN_NAMES)))
        lines.append(row("coverage instances", (self.by_coverage[b]["instances"] for b in BIN_NAMES)))
        lines.append(row("coverage mAP %", (pct(self.by_coverage[b]["average_mAP"]) for b in BIN_NAMES)))
        return "\n".join(lines)


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value for bins (e0, e1], ..., (e_last, inf): 0..len(edges)-1; -1 for <= e0 or NaN."""
    v = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="left") - 1
    return np.where(np.isnan(v), -1, idx)


def _video_buckets(p_video: np.ndarray, g_video: np.ndarray,
                   num_videos: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For the predictions with a video (>= 0) whose video has ground truth: (positions, GT members
    [n, s]) per ground-truth count s, members in file order."""
    g_order = np.argsort(g_video, kind="stable")
    g_count = np.bincount(g_video, minlength=num_videos)
    g_start = np.cumsum(g_count) - g_count
    pos = np.flatnonzero(p_video >= 0)
    size = g_count[p_video[pos]]
    for s in np.unique(size):
        if s == 0:
            continue
        at = pos[size == s]
        yield at, g_order[g_start[p_video[at]][:, None] + np.arange(s)]


def _tiou(p_seg: np.ndarray, g_seg: np.ndarray) -> np.ndarray:
    # the evaluator's tIoU; 0/0 counts as no overlap here
    return np.nan_to_num(segment_tiou(p_seg[:, None, :], g_seg), nan=0.0)


def classify(gt: GroundTruth, video: np.ndarray, seg: np.ndarray, label: np.ndarray, a: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Error type (index into ERROR_TYPES) of predictions given in rank order, and the GT each
    true positive matched (-1 otherwise). `video` indexes `gt.video_ids`."""
    n = len(video)
    matched_gt = np.full(n, -1, dtype=np.int64)
    best_same = np.full(n, -np.inf)
    best_other = np.full(n, -np.inf)
    locked = np.zeros(len(gt.label), dtype=bool)
    # rank within (video, label): predictions of different groups never compete for a GT
    key = video * (len(gt.classes) + 2) + (label + 1)
    by_key = np.argsort(key, kind="stable")
    _, _, r = group_starts(key[by_key])
    grank = np.empty(n, dtype=np.int64)
    grank[by_key] = r
    for at, members in _video_buckets(video, gt.video, len(gt.video_ids)):
        tiou = _tiou(seg[at], gt.segments[members])  # [m, s]
        same = gt.label[members] == label[at][:, None]
        best_same[at] = np.where(same, tiou, -np.inf).max(axis=1)
        best_other[at] = np.where(same, -np.inf, tiou).max(axis=1)
        ok = same & (tiou >= a)
        steps = np.argsort(grank[at], kind="stable")
        _, starts, _ = group_starts(grank[at][steps])
        bounds = np.append(starts, len(at))
        for lo, hi in zip(bounds[:-1], bounds[1:]):  # one step per rank within a group
            sel = steps[lo:hi]
            cand = ok[sel] & ~locked[members[sel]]
            j = np.where(cand, tiou[sel], -1.0).argmax(axis=1)
            rows = np.arange(len(sel))
            hit = cand[rows, j]
            g = members[sel[hit], j[hit]]
            locked[g] = True
            matched_gt[at[sel[hit]]] = g
    kind = np.select(
        [matched_gt >= 0, best_same >= a, best_other >= a, best_same >= MIN_TIOU, best_other >= MIN_TIOU],
        [0, 1, 2, 3, 4], default=5)
    return kind, matched_gt


def localization_kind(gt: GroundTruth, video: np.ndarray, seg: np.ndarray, label: np.ndarray,
                      best: np.ndarray) -> np.ndarray:
    """Kind (index into LOCALIZATION_KINDS) of predictions that are localization errors, given each
    one's highest-tIoU ground truth of its label `best` (from `_best_same_label_gt`)."""
    g = gt.segments[best]
    inter = np.clip(np.minimum(seg[:, 1], g[:, 1]) - np.maximum(seg[:, 0], g[:, 0]), 0.0, None)
    p_len, g_len = seg[:, 1] - seg[:, 0], g[:, 1] - g[:, 0]
    halves = np.zeros(len(video), dtype=np.int64)  # ground truths of its label it covers over half of
    for at, members in _video_buckets(video, gt.video, len(gt.video_ids)):
        p, g_all = seg[at][:, None, :], gt.segments[members]  # [m, 1, 2], [m, s, 2]
        over = np.minimum(p[..., 1], g_all[..., 1]) - np.maximum(p[..., 0], g_all[..., 0])
        same = gt.label[members] == label[at][:, None]
        halves[at] = (same & (over > 0.5 * (g_all[..., 1] - g_all[..., 0]))).sum(axis=1)
    short = (inter >= NESTED * p_len) & (p_len > 0)
    long = (inter >= NESTED * g_len) & (g_len > 0)
    return np.select([halves >= 2, short, long], [0, 1, 2], default=3)


def _best_same_label_gt(gt: GroundTruth, video: np.ndarray, seg: np.ndarray, label: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's highest-tIoU GT of its label in its video (-1: none) and that tIoU."""
    best = np.full(len(video), -1, dtype=np.int64)
    best_t = np.zeros(len(video))
    for at, members in _video_buckets(np.where(label >= 0, video, -1), gt.video, len(gt.video_ids)):
        score = np.where(gt.label[members] == label[at][:, None], _tiou(seg[at], gt.segments[members]), -1.0)
        j = score.argmax(axis=1)
        rows = np.arange(len(at))
        found = score[rows, j] >= 0
        best[at[found]] = members[rows, j][found]
        best_t[at[found]] = score[rows, j][found]
    return best, best_t


def _average_map(gt: GroundTruth, in_bin: np.ndarray, video: np.ndarray, seg: np.ndarray, label: np.ndarray,
                 score: np.ndarray, usable: np.ndarray, thr: np.ndarray) -> float:
    """`gsmt eval`'s average mAP with the GT `in_bin` and the `usable` predictions (file order)."""
    class_ids = np.unique(gt.label[in_bin])
    sub = GroundTruth(gt.video_ids, gt.video[in_bin], gt.segments[in_bin], gt.label[in_bin], gt.classes,
                      class_ids)
    known = np.zeros(len(gt.classes) + 1, dtype=bool)
    known[class_ids] = True
    keep = np.flatnonzero(usable & known[label])  # label -1 indexes the trailing False
    p_video, p_seg, p_label, p_score = video[keep], seg[keep], label[keep], score[keep]
    # per class: the official ranking call on the class's scores in file order (as the evaluator)
    by_label = np.argsort(p_label, kind="stable")
    bounds = np.searchsorted(p_label[by_label], np.append(class_ids, np.iinfo(np.int64).max))
    parts = []
    for i in range(len(class_ids)):
        idx = by_label[bounds[i]:bounds[i + 1]]
        parts.append(idx[p_score[idx].argsort()[::-1]])
    ranked = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    tp = match_predictions(sub, p_video, p_seg, p_label, ranked, thr)
    npos = np.bincount(sub.label, minlength=len(gt.classes))
    ap = np.zeros((len(thr), len(class_ids)))
    start = 0
    for i, c in enumerate(class_ids):
        end = start + len(parts[i])
        ap[:, i] = interpolated_ap(tp[:, start:end], int(npos[c]))
        start = end
    return float(ap.mean(axis=1).mean()) if len(class_ids) else 0.0


def analyze_detection(ground_truth: Annotations | Sequence[Video],
                      predictions: Mapping[str, list[dict]] | str | Path, *,
                      subset: str | Sequence[str] | None = None, tiou: float = 0.5,
                      tiou_set: str | Sequence[float] | np.ndarray = "anet", blocked: Iterable[str] = (),
                      classes: Sequence[str] | None = None) -> Analysis:
    """Error types of the top 10G predictions at tIoU `tiou`, bin mAPs over `tiou_set`, missed GT."""
    a = float(tiou)
    if not (math.isfinite(a) and 0.0 < a <= 1.0):
        raise GsmtError("tiou", f"the threshold must lie in (0, 1], got {tiou}")
    thr = parse_tiou(tiou_set)
    videos, classes, gt, flat, pred_blocked = gather_inputs(ground_truth, predictions, subset=subset,
                                                            blocked=blocked, classes=classes)
    num_gt = len(gt.label)
    p_video = match_video_ids(flat.video_ids, gt.video_ids)[flat.video]  # -1: not an evaluated video

    # ---- error types of the top 10G predictions on the evaluated videos
    on_gt = np.flatnonzero(p_video >= 0)
    top = on_gt[np.argsort(-flat.score[on_gt], kind="stable")[:BLOCKS * num_gt]]
    kind, matched_gt = classify(gt, p_video[top], flat.segments[top], flat.label[top], a)
    n = len(top)
    counts = np.bincount(kind, minlength=len(ERROR_TYPES))
    per_block = np.bincount(np.arange(n) // num_gt * len(ERROR_TYPES) + kind,
                            minlength=BLOCKS * len(ERROR_TYPES)).reshape(BLOCKS, len(ERROR_TYPES))
    matched = np.zeros(num_gt, dtype=bool)
    matched[matched_gt[matched_gt >= 0]] = True
    best, best_t = _best_same_label_gt(gt, p_video, flat.segments, flat.label)
    is_loc = np.flatnonzero(kind == ERROR_TYPES.index("localization"))
    at = top[is_loc]
    loc = localization_kind(gt, p_video[at], flat.segments[at], flat.label[at], best[at])
    localization_kinds = {
        name: {k: int(c) for k, c in zip(LOCALIZATION_KINDS, np.bincount(loc[in_block], minlength=4))}
        for name, in_block in (("top_G", is_loc < num_gt), ("top_N", np.ones(len(is_loc), dtype=bool)))}

    # ---- bins of the ground truth and their mAP
    length = gt.segments[:, 1] - gt.segments[:, 0]
    duration = np.array([v.duration for v in videos], dtype=np.float64)[gt.video]
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = np.where(duration > 0, length / duration, np.nan)
    length_bin = bin_index(length, LENGTH_EDGES)
    coverage_bin = bin_index(coverage, COVERAGE_EDGES)
    usable = ~pred_blocked
    has_best = (best >= 0) & (best_t >= thr.min())
    args = (p_video, flat.segments, flat.label, flat.score)

    def bins(bin_of: np.ndarray) -> dict[str, dict]:
        out = {}
        for b, name in enumerate(BIN_NAMES):
            in_bin = bin_of == b
            n_in = int(in_bin.sum())
            value = None
            if n_in:
                drop = has_best & (bin_of[np.maximum(best, 0)] != b)
                value = _average_map(gt, in_bin, *args, usable & ~drop, thr)
            out[name] = {"instances": n_in, "average_mAP": value}
        return out

    false_negatives = {}
    for b, name in enumerate(BIN_NAMES):
        in_bin = length_bin == b
        false_negatives[name] = float(1.0 - matched[in_bin].mean()) if in_bin.any() else None
    return Analysis(
        tiou=a, num_gt=num_gt, num_predictions=n,
        counts={t: int(c) for t, c in zip(ERROR_TYPES, counts)},
        profile=[{t: int(c) for t, c in zip(ERROR_TYPES, row)} for row in per_block],
        by_length=bins(length_bin), by_coverage=bins(coverage_bin), false_negatives=false_negatives,
        mAP_tiou=[float(t) for t in thr],
        average_mAP=_average_map(gt, np.ones(num_gt, dtype=bool), *args, usable, thr),
        localization_kinds=localization_kinds,
        types=[ERROR_TYPES[k] for k in kind])
