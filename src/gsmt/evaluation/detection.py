"""Detection mAP at tIoU thresholds, identical to the official ActivityNet `eval_detection.py`.

The official code ranks, matches and interpolates one prediction at a time; this module computes
the same numbers with array operations (DESIGN.md section 8):

- per class, predictions are ranked with the very same call as the official code
  (`scores.argsort()[::-1]` on the class's scores in file order), so equal scores rank the same;
- a prediction can only match ground truth of its own class in its own video, so the greedy
  matching is independent per (class, video) group; it runs over the rank within the group
  (a short loop) with every group and every tIoU threshold processed at once;
- the ground truth a prediction visits is ordered by `tiou.argsort()[::-1]` on rows of the same
  length as the official per-prediction call, so ties and NaN (0/0) visit in the same order.

THUMOS `ambiguous` segments live in `Video.ambiguous`, not in `Video.segments`: they are not
ground truth here, as in the official protocol. Zero-length ground truth is kept, and so is ground
truth with end < start (the official code counts it among the positives; the loader counts it as a
fault): with one such segment and one perfectly found one, AP is 0.5.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from pathlib import Path

import numpy as np

from gsmt.annotations.load import Annotations, Video
from gsmt.io.read import parse_json, read_json, read_text
from gsmt.errors import GsmtError

log = logging.getLogger("gsmt.evaluation")

TIOU_PRESETS: dict[str, np.ndarray] = {
    # linspace, not arange: arange differs in the last bit and flips matches sitting on a threshold.
    "anet": np.linspace(0.5, 0.95, 10),
    "thumos": np.linspace(0.3, 0.7, 5),
    "epic": np.linspace(0.1, 0.5, 5),
}


def parse_tiou(spec: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """tIoU thresholds from a preset name (`anet`, `thumos`, `epic`), `"0.3,0.5"` or a sequence."""
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in TIOU_PRESETS:
            return TIOU_PRESETS[key].copy()
        try:
            values = [float(x) for x in key.split(",") if x.strip()]
        except ValueError:
            raise GsmtError("tiou", f"{spec!r} is neither a preset ({', '.join(TIOU_PRESETS)}) "
                                    "nor a comma-separated list of numbers") from None
    else:
        values = [float(x) for x in np.asarray(spec, dtype=np.float64).ravel()]
    if not values:
        raise GsmtError("tiou", "no tIoU threshold given")
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise GsmtError("tiou", f"thresholds must lie in [0, 1], got {values}")
    return np.asarray(values, dtype=np.float64)


# ------------------------------------------------------------------ predictions


def _check_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_results(results: object, where: str) -> dict[str, list[dict]]:
    if not isinstance(results, Mapping):
        raise GsmtError(where, "'results' must map video ids to lists of predictions")
    for vid, preds in results.items():
        if not isinstance(preds, list):
            raise GsmtError(where, f"video {vid!r}: predictions must be a list")
        for i, p in enumerate(preds):
            ok = (isinstance(p, Mapping) and isinstance(p.get("label"), str)
                  and _check_number(p.get("score")) and isinstance(p.get("segment"), (list, tuple))
                  and len(p["segment"]) == 2 and all(_check_number(t) for t in p["segment"]))
            if not ok:
                raise GsmtError(where, f"video {vid!r}, prediction {i}: expected "
                                       "{'label': str, 'score': number, 'segment': [start, end]} "
                                       f"with finite numbers, got {p!r:.200}")
    return dict(results)


def load_predictions(path: str | Path) -> dict[str, list[dict]]:
    """Read an ActivityNet submission JSON `{"results": {video_id: [{label, score, segment}]}}`
    (gzip-compressed too: magic bytes or a `.gz` name)."""
    if not Path(path).exists():
        raise GsmtError(path, "file not found")
    data = read_json(path)  # bounded, UTF-8, a video id listed twice refused
    if not isinstance(data, dict) or "results" not in data:
        raise GsmtError(path, "not an ActivityNet submission: no top-level 'results' key")
    return _check_results(data["results"], str(path))


# The fast path of `read_predictions` (issue 14): msgspec decodes and checks the schema in one pass
# in C. It refuses NaN/Infinity literals, booleans and out-of-range numbers, as `_check_results`
# does; what it cannot see (a key listed twice: msgspec keeps the last) is ruled out by counting
# colons, below. Any doubt sends the file to the strict reader, which then names the fault.
_FAST: tuple | None = None


def _fast_decoders() -> tuple | None:
    """(top-level decoder, results decoder, record type), or None without msgspec."""
    global _FAST
    if _FAST is None:
        try:
            import msgspec
        except ImportError:  # an optional speed-up: the strict reader does the same job
            _FAST = ()
        else:
            # gc=False: a record holds a str, a float and a tuple of floats, so it can never be
            # part of a reference cycle; untracked, half a million of them decode 4x faster.
            class Prediction(msgspec.Struct, gc=False):
                """One prediction record; `p["score"]` works as on the dict the strict reader gives."""

                label: str
                score: float
                segment: tuple[float, float]

                def __getitem__(self, key: str):
                    return getattr(self, key)

            _FAST = (msgspec.json.Decoder(dict[str, msgspec.Raw]),
                     msgspec.json.Decoder(dict[str, list[Prediction]]), Prediction, msgspec.DecodeError)
    return _FAST or None


def _fast_results(path: str | Path) -> dict[str, list] | None:
    """`results` of a submission read by msgspec, or None where only the strict reader may answer.

    Same guarantees as `read_json` + `_check_results`: the bounded UTF-8 read is the same; the
    other top-level values (version, external_data, ...) go through the strict `parse_json`; for
    `results`, every colon of the text is either a member of an object or inside a string, and no
    escape writes a colon (`\\u003a` sends the file to the strict reader), so

        colons in the text == video ids + 3 x predictions + colons in ids and labels

    holds exactly when no object lists a key twice and no prediction carries an extra field.
    """
    fast = _fast_decoders()
    if fast is None:
        return None
    top_decoder, results_decoder, _, decode_error = fast
    text = read_text(path)  # bounded, UTF-8 checked, a byte-order mark dropped
    if "\\u003" in text:  # perhaps an escaped colon (\\u003a): one scan, rare false alarms
        return None
    try:
        top = top_decoder.decode(text)
        raw = top.get("results")
        if raw is None:
            return None
        results = results_decoder.decode(raw)
    except (decode_error, RecursionError):  # RecursionError: msgspec's depth limit
        return None
    expected = len(top) + sum(key.count(":") for key in top)
    for key, value in top.items():
        if key != "results":
            piece = bytes(value).decode("utf-8")
            try:
                parse_json(piece, path)  # duplicate keys and runaway nesting of the other values
            except GsmtError:
                return None
            expected += piece.count(":")
    labels = list(map(attrgetter("label"), chain.from_iterable(results.values())))
    expected += (len(results) + 3 * len(labels) + "".join(results).count(":")
                 + "".join(labels).count(":"))
    if text.count(":") != expected:
        return None
    return results


def read_predictions(path: str | Path) -> dict[str, list]:
    """`load_predictions`, fast: the same checks and the same numbers, as records that answer
    `p["label"]`, `p.label` alike (msgspec; the strict reader's dicts when it is missing or when
    the file needs a closer look, so every error message is the strict reader's)."""
    if not Path(path).exists():
        raise GsmtError(path, "file not found")
    results = _fast_results(path)
    return results if results is not None else load_predictions(path)


@dataclass
class FlatPredictions:
    """All predictions as flat arrays, in file order (videos in dict order, then each list)."""

    video_ids: list[str]  # the predictions' video ids, dict order
    video: np.ndarray  # [N] int64 index into video_ids
    segments: np.ndarray  # [N, 2] float64 seconds
    label: np.ndarray  # [N] int64 id in `classes`; -1 for a name not in `classes`
    score: np.ndarray  # [N] float64
    unknown_labels: list[str] = field(default_factory=list)  # names mapped to -1


def flatten_predictions(predictions: Mapping[str, list[dict]], classes: Sequence[str]) -> FlatPredictions:
    """Convert `{video_id: [{label, score, segment}]}` into flat arrays, keeping file order."""
    video_ids = list(predictions)
    lists = [predictions[v] for v in video_ids]
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    flat = [p for x in lists for p in x]
    n = len(flat)
    index = {name: i for i, name in enumerate(classes)}
    fast = _FAST and set(map(type, flat)) == {_FAST[2]}  # records of `read_predictions`
    get = attrgetter if fast else itemgetter
    names = list(map(get("label"), flat))
    label = np.fromiter(map(index.get, names, repeat(-1, n)), dtype=np.int64, count=n)
    score = np.fromiter(map(get("score"), flat), dtype=np.float64, count=n)
    segments = np.fromiter(chain.from_iterable(map(get("segment"), flat)), dtype=np.float64,
                           count=2 * n).reshape(n, 2)
    unknown = sorted({names[i] for i in np.flatnonzero(label < 0)})
    video = np.repeat(np.arange(len(video_ids), dtype=np.int64), counts)
    return FlatPredictions(video_ids, video, segments, label, score, unknown)


# ------------------------------------------------------------------ shared helpers


def segment_tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """tIoU with the official arithmetic, broadcasting `pred[..., 2]` against `gt[..., 2]`.

    intersection = clip(min(ends) - max(starts), 0); union = len_gt + len_pred - intersection;
    0/0 gives NaN exactly as the official `segment_iou` does.
    """
    tt1 = np.maximum(pred[..., 0], gt[..., 0])
    tt2 = np.minimum(pred[..., 1], gt[..., 1])
    inter = (tt2 - tt1).clip(0)
    union = (gt[..., 1] - gt[..., 0]) + (pred[..., 1] - pred[..., 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _alternate_id(video_id: str) -> str:
    # mmaction2 and the official GT keys carry "v_", most result files do not.
    return video_id[2:] if video_id.startswith("v_") else "v_" + video_id


def match_video_ids(ids: Sequence[str], known: Sequence[str]) -> np.ndarray:
    """Index of each id in `known` (exact match first, then with/without the `v_` prefix), -1 if none."""
    lookup = {v: i for i, v in enumerate(known)}
    return np.fromiter((lookup.get(v, lookup.get(_alternate_id(v), -1)) for v in ids),
                       dtype=np.int64, count=len(ids))


def _blocked_set(blocked: Iterable[str]) -> set[str]:
    if isinstance(blocked, (str, bytes, Path)):
        # A string is iterable: "v_abc" would block the videos 'v', '_', 'a', ... Refuse it.
        raise GsmtError("blocked", f"expected a list of video ids, got a {type(blocked).__name__} "
                                   f"({str(blocked)[:60]!r}); read a file or a packaged list with "
                                   "gsmt.annotations.packaged.load_blocked")
    out = set()
    for b in blocked:
        if not isinstance(b, str):
            raise GsmtError("blocked", f"video ids must be strings, got {b!r:.60}")
        out.add(b)
        out.add(_alternate_id(b))
    return out


def group_starts(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For sorted keys: (unique keys, start of each run, rank of each element within its run)."""
    n = len(sorted_keys)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return sorted_keys[:0], e, e
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    rank = np.arange(n) - starts[run]
    return sorted_keys[starts], starts, rank


def rank_desc_by_rows(scores: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rank of each element within its group under the official `s.argsort()[::-1]`.

    `s` is the group's scores in the given order; groups of equal size are stacked into one 2-D
    argsort, which runs NumPy's 1-D sort on each row, so ties come out as in per-group calls.
    """
    n = len(scores)
    rank = np.empty(n, dtype=np.int64)
    if n == 0:
        return rank
    order = np.argsort(group, kind="stable")
    _, starts, _ = group_starts(group[order])
    sizes = np.diff(np.append(starts, n))
    for size in np.unique(sizes):
        rows = starts[sizes == size][:, None] + np.arange(size)  # [R, size] positions in `order`
        members = order[rows]
        desc = np.ascontiguousarray(scores[members]).argsort(axis=1)[:, ::-1]
        r = np.empty_like(desc)
        np.put_along_axis(r, desc, np.arange(size)[None, :], axis=1)
        rank[members] = r
    return rank


# ------------------------------------------------------------------ ground truth


@dataclass
class GroundTruth:
    """The evaluated ground truth as flat arrays (videos of the subset minus blocked ones)."""

    video_ids: list[str]
    video: np.ndarray  # [G] int64 index into video_ids
    segments: np.ndarray  # [G, 2] float64, raw
    label: np.ndarray  # [G] int64 ids into `classes`
    classes: list[str]  # the full vocabulary
    class_ids: np.ndarray  # ids present in the ground truth: the classes mAP averages over


def ground_truth_arrays(videos: Sequence[Video], classes: Sequence[str]) -> GroundTruth:
    """Flatten videos (already filtered to the evaluated subset) into `GroundTruth` arrays."""
    ids = [v.id for v in videos]
    counts = [len(v.labels) for v in videos]
    segs = [np.asarray(v.segments, dtype=np.float64).reshape(-1, 2) for v in videos]
    labs = [np.asarray(v.labels, dtype=np.int64).ravel() for v in videos]
    segments = np.concatenate(segs) if segs else np.zeros((0, 2))
    label = np.concatenate(labs) if labs else np.zeros(0, dtype=np.int64)
    video = np.repeat(np.arange(len(ids), dtype=np.int64), counts)
    return GroundTruth(ids, video, segments, label, list(classes), np.unique(label))


# ------------------------------------------------------------------ matching and AP


def _match_bucket(p_seg: np.ndarray, p_grp: np.ndarray, p_rank: np.ndarray, g_seg: np.ndarray,
                  thr: np.ndarray) -> np.ndarray:
    """Greedy matching for predictions whose groups all hold exactly `g_seg.shape[1]` GT.

    p_grp: local group index; g_seg[group, j] the group's GT in file order. Returns tp [n, T].
    """
    n, size, nt = len(p_grp), g_seg.shape[1], len(thr)
    tiou = segment_tiou(p_seg[:, None, :], g_seg[p_grp])  # [n, size]
    visit = np.ascontiguousarray(tiou).argsort(axis=1)[:, ::-1]  # the official visiting order
    tiou_sorted = np.take_along_axis(tiou, visit, axis=1)
    # NaN < thr is False, so NaN passes like in the official loop; visiting order is descending
    # with NaN first, hence the passing GT form a prefix and the first unlocked one matches.
    passes = ~(tiou_sorted[:, :, None] < thr[None, None, :])  # [n, size, T]
    locked = np.zeros((len(g_seg), size, nt), dtype=bool)
    tp = np.zeros((n, nt), dtype=bool)
    order = np.lexsort((p_grp, p_rank))
    _, starts, _ = group_starts(p_rank[order])
    bounds = np.append(starts, n)
    for a, b in zip(bounds[:-1], bounds[1:]):  # one step per rank within group
        sel = order[a:b]
        grp = p_grp[sel]
        vis = visit[sel]  # [m, size]
        cand = passes[sel] & ~locked[grp[:, None], vis]  # [m, size, T]
        hit = cand.any(axis=1)  # [m, T]
        first = cand.argmax(axis=1)  # [m, T]
        j = np.take_along_axis(vis, first, axis=1)  # GT index in group, [m, T]
        gi, ti = np.nonzero(hit)
        locked[grp[gi], j[gi, ti], ti] = True
        tp[sel] = hit
    return tp


def match_predictions(gt: GroundTruth, p_gtvideo: np.ndarray, p_seg: np.ndarray, p_label: np.ndarray,
                      ranked: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """True positives [T, len(ranked)] for predictions visited in `ranked` order (class by class).

    `p_gtvideo` is each prediction's index in `gt.video_ids` (-1: no GT video, always a FP).
    """
    nv = max(len(gt.video_ids), 1)
    tp = np.zeros((len(thr), len(ranked)), dtype=bool)
    # ground truth grouped by (class, video), file order kept within a group
    g_key = gt.label * nv + gt.video
    g_order = np.argsort(g_key, kind="stable")
    keys, g_start, g_pos = group_starts(g_key[g_order])
    g_size = np.diff(np.append(g_start, len(g_order)))
    # predictions, in ranked order, mapped to their group
    pv = p_gtvideo[ranked]
    p_key = p_label[ranked] * nv + pv
    grp = np.searchsorted(keys, p_key)
    grp_ok = (pv >= 0) & (grp < len(keys))
    grp_ok[grp_ok] = keys[grp[grp_ok]] == p_key[grp_ok]
    pos = np.flatnonzero(grp_ok)
    grp = grp[pos]
    by_group = np.argsort(grp, kind="stable")  # keeps ranked order inside each group
    _, _, rank_sorted = group_starts(grp[by_group])
    rank = np.empty_like(rank_sorted)
    rank[by_group] = rank_sorted
    size = g_size[grp]
    for s in np.unique(size):
        m = size == s
        groups, local = np.unique(grp[m], return_inverse=True)
        g_seg = gt.segments[g_order[g_start[groups][:, None] + np.arange(s)]]  # [Gs, s, 2]
        at = pos[m]
        tp[:, at] = _match_bucket(p_seg[ranked[at]], local, rank[m], g_seg, thr).T
    return tp


def interpolated_ap(tp: np.ndarray, npos: int) -> np.ndarray:
    """All-point interpolated AP per row of tp [T, n] (VOC 2011, as the official code)."""
    nt, n = tp.shape
    if n == 0 or npos == 0:
        return np.zeros(nt)
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_c = np.cumsum(~tp, axis=1, dtype=np.float64)
    rec = tp_c / npos
    prec = tp_c / (tp_c + fp_c)
    zeros, ones = np.zeros((nt, 1)), np.ones((nt, 1))
    mprec = np.hstack([zeros, prec, zeros])
    mrec = np.hstack([zeros, rec, ones])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    step = mrec[:, 1:] - mrec[:, :-1]
    return np.where(step != 0, step * mprec[:, 1:], 0.0).sum(axis=1)


# ------------------------------------------------------------------ public entry


@dataclass
class DetectionMetrics:
    tiou: np.ndarray  # [T]
    mAP: np.ndarray  # [T]
    average_mAP: float
    per_class_ap: dict[str, list[float]]  # label -> AP per tIoU (GT classes of the subset only)
    recall: dict = field(default_factory=dict)  # see gsmt.evaluation.recall.recall_metrics
    ignored_labels: int = 0  # predictions whose label is not a GT class of the subset
    num_predictions: int = 0  # predictions evaluated (blocked and ignored ones excluded)

    def to_json(self) -> dict:
        return {
            "tiou": [float(t) for t in self.tiou],
            "mAP": [float(x) for x in self.mAP],
            "average_mAP": float(self.average_mAP),
            "per_class_ap": {k: [float(x) for x in v] for k, v in self.per_class_ap.items()},
            "recall": _jsonable(self.recall),
        }

    def format_table(self) -> str:
        """A printable table: mAP (%) per tIoU and the average."""
        head = ["tIoU"] + [f"{t:.2f}" for t in self.tiou] + ["avg"]
        row = ["mAP"] + [f"{100 * x:.2f}" for x in self.mAP] + [f"{100 * self.average_mAP:.2f}"]
        widths = [max(len(a), len(b)) for a, b in zip(head, row)]
        fmt = " | ".join(f"{{:>{w}}}" for w in widths)
        lines = [fmt.format(*head), "-+-".join("-" * w for w in widths), fmt.format(*row)]
        for key in ("AR@1", "AR@5", "AR@10", "AR@100", "AUC"):
            if key in self.recall:
                lines.append(f"{key}: {100 * self.recall[key]:.2f}")
        return "\n".join(lines)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (np.ndarray, list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    return x


def _resolve_videos(ground_truth: Annotations | Sequence[Video], classes: Sequence[str] | None,
                    subset: str | Sequence[str] | None) -> tuple[list[Video], list[str]]:
    if isinstance(ground_truth, Annotations):
        videos, classes = list(ground_truth.videos), list(ground_truth.classes)
    else:
        videos = list(ground_truth)
        if classes is None:
            raise GsmtError("ground truth", "a list of videos needs `classes` (the label names)")
        classes = list(classes)
    if subset:
        names = {subset} if isinstance(subset, str) else set(subset)
        videos = [v for v in videos if v.subset in names]
    return videos, classes


def gather_inputs(ground_truth: Annotations | Sequence[Video], predictions: Mapping[str, list[dict]] | str | Path, *,
                  subset: str | Sequence[str] | None, blocked: Iterable[str], classes: Sequence[str] | None
                  ) -> tuple[list[Video], list[str], GroundTruth, FlatPredictions, np.ndarray]:
    """What evaluation and analysis both start from: the evaluated videos (subset minus blocked),
    the classes, their ground-truth arrays, the flattened predictions and, per prediction, whether
    its video is blocked."""
    if isinstance(predictions, (str, Path)):
        predictions = read_predictions(predictions)
    elif isinstance(predictions, Mapping) and isinstance(predictions.get("results"), Mapping):
        predictions = _check_results(predictions["results"], "predictions")
    block = _blocked_set(blocked)
    videos, classes = _resolve_videos(ground_truth, classes, subset)
    videos = [v for v in videos if v.id not in block]
    gt = ground_truth_arrays(videos, classes)
    if len(gt.label) == 0:
        raise GsmtError("ground truth", f"no ground-truth segment in subset {subset!r} "
                                        f"({len(videos)} videos after blocking)")
    try:
        flat = flatten_predictions(predictions, classes)
    except (KeyError, TypeError, ValueError) as e:
        raise GsmtError("predictions", "expected {video_id: [{'label': str, 'score': number, "
                                       f"'segment': [start, end]}}, ...]}}: {e!r}") from None
    pred_blocked = np.fromiter((v in block for v in flat.video_ids), dtype=bool,
                               count=len(flat.video_ids))[flat.video]
    return videos, classes, gt, flat, pred_blocked


AGNOSTIC_CLASS = "action"


def merge_labels(ground_truth: Annotations, predictions: Mapping[str, list]) -> tuple[Annotations, dict[str, list[dict]]]:
    """Ground truth and predictions with every label merged into one class, `action`: their
    mAP is class-agnostic, localization alone (`gsmt eval --class-agnostic`)."""
    videos = [replace(v, labels=np.zeros_like(v.labels)) for v in ground_truth.videos]
    merged = {vid: [{"label": AGNOSTIC_CLASS, "score": p["score"], "segment": p["segment"]} for p in preds]
              for vid, preds in predictions.items()}
    return replace(ground_truth, videos=videos, classes=[AGNOSTIC_CLASS]), merged


def evaluate_detection(ground_truth: Annotations | Sequence[Video],
                       predictions: Mapping[str, list[dict]] | str | Path, *,
                       subset: str | Sequence[str] | None = None,
                       tiou: str | Sequence[float] | np.ndarray = "anet",
                       blocked: Iterable[str] = (), classes: Sequence[str] | None = None,
                       with_recall: bool = True) -> DetectionMetrics:
    """mAP per tIoU exactly as the official ActivityNet evaluation, plus Recall@kx and AR@AN.

    Ground truth: the videos of `subset` (all when None) minus `blocked`; mAP averages over the
    classes present in it. Predictions on blocked videos are dropped, those on other videos are
    false positives, and a label that is not a ground-truth class is ignored and counted (the
    official code crashes there). A prediction id `x` matches the ground truth id `v_x` and back.
    """
    from gsmt.evaluation.recall import recall_metrics  # recall builds on this module

    thr = parse_tiou(tiou)
    videos, classes, gt, flat, pred_blocked = gather_inputs(ground_truth, predictions, subset=subset,
                                                            blocked=blocked, classes=classes)
    known = np.zeros(len(classes) + 1, dtype=bool)
    known[gt.class_ids] = True
    label_ok = known[flat.label]  # -1 indexes the trailing False
    ignored = ~label_ok & ~pred_blocked
    n_ignored = int(ignored.sum())
    if n_ignored:
        ids = np.unique(flat.label[ignored])
        unknown = sorted({classes[c] for c in ids if c >= 0}
                         | (set(flat.unknown_labels) if ids[0] < 0 else set()))
        shown = ", ".join(repr(s) for s in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        log.warning("predictions: %d predictions with a label that is not a ground-truth class "
                    "of the evaluated videos were ignored (%s)", n_ignored, shown)
    keep = np.flatnonzero(label_ok & ~pred_blocked)
    p_gtvideo = match_video_ids(flat.video_ids, gt.video_ids)[flat.video[keep]]
    p_seg, p_label, p_score = flat.segments[keep], flat.label[keep], flat.score[keep]

    # per class: the official ranking call on the class's scores in file order
    by_label = np.argsort(p_label, kind="stable")
    labels_sorted = p_label[by_label]
    bounds = np.searchsorted(labels_sorted, np.append(gt.class_ids, np.iinfo(np.int64).max))
    ranked_parts = []
    for i in range(len(gt.class_ids)):
        idx = by_label[bounds[i]:bounds[i + 1]]
        ranked_parts.append(idx[p_score[idx].argsort()[::-1]])
    ranked = np.concatenate(ranked_parts) if ranked_parts else np.zeros(0, dtype=np.int64)
    tp = match_predictions(gt, p_gtvideo, p_seg, p_label, ranked, thr)

    npos = np.bincount(gt.label, minlength=len(classes))
    ap = np.zeros((len(thr), len(gt.class_ids)))
    start = 0
    for i, c in enumerate(gt.class_ids):
        end = start + len(ranked_parts[i])
        ap[:, i] = interpolated_ap(tp[:, start:end], int(npos[c]))
        start = end
    mAP = ap.mean(axis=1) if len(gt.class_ids) else np.zeros(len(thr))
    recall = {}
    if with_recall:
        recall = recall_metrics(gt, p_gtvideo, p_seg, p_label, p_score, thr)
    return DetectionMetrics(
        tiou=thr, mAP=mAP, average_mAP=float(mAP.mean()),
        per_class_ap={classes[c]: ap[:, i].tolist() for i, c in enumerate(gt.class_ids)},
        recall=recall, ignored_labels=n_ignored, num_predictions=len(keep))

