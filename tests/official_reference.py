"""Loop-by-loop reference implementations of the official algorithms, for the tests only.

Written from the ActivityNet `Evaluation/eval_detection.py` and `eval_proposal.py` (and
ActionFormer's `compute_topkx_recall_detection`) step by step, with the same sort calls, in plain
Python + NumPy (no pandas). Deliberately slow and literal: it is the oracle the vectorised
`gsmt.evaluation` is compared with. One documented difference from the official code: a predicted
label that is not a ground-truth class is skipped instead of raising KeyError.

Inputs: `database = {video_id: {"subset": str, "annotations": [{"label", "segment"}]}}` (dict
order = file order) and `results = {video_id: [{"label", "score", "segment"}]}`.
"""

from __future__ import annotations

import numpy as np


def segment_iou(target, candidates):
    tt1 = np.maximum(target[0], candidates[:, 0])
    tt2 = np.minimum(target[1], candidates[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter.astype(float) / union


def interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def import_ground_truth(database, subset, blocked=()):
    """Rows (video, start, end, label id) in file order and the activity index (first appearance)."""
    activity_index, rows = {}, []
    for vid, v in database.items():
        if subset is not None and v["subset"] != subset:
            continue
        if vid in blocked:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = len(activity_index)
            rows.append((vid, float(ann["segment"][0]), float(ann["segment"][1]),
                         activity_index[ann["label"]]))
    return rows, activity_index


def import_predictions(results, activity_index, blocked=()):
    rows = []
    for vid, preds in results.items():
        if vid in blocked:
            continue
        for p in preds:
            if p["label"] not in activity_index:
                continue  # the official code raises KeyError here
            rows.append((vid, float(p["segment"][0]), float(p["segment"][1]),
                         activity_index[p["label"]], float(p["score"])))
    return rows


def compute_average_precision_detection(gt_rows, pred_rows, tiou_thresholds):
    ap = np.zeros(len(tiou_thresholds))
    if not pred_rows:
        return ap
    npos = float(len(gt_rows))
    lock_gt = np.ones((len(tiou_thresholds), len(gt_rows))) * -1
    scores = np.array([p[4] for p in pred_rows])
    sort_idx = scores.argsort()[::-1]
    prediction = [pred_rows[i] for i in sort_idx]
    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))
    by_video = {}
    for gidx, g in enumerate(gt_rows):
        by_video.setdefault(g[0], []).append(gidx)
    for idx, this_pred in enumerate(prediction):
        if this_pred[0] not in by_video:
            fp[:, idx] = 1
            continue
        gidx = by_video[this_pred[0]]
        this_gt = np.array([[gt_rows[i][1], gt_rows[i][2]] for i in gidx])
        tiou_arr = segment_iou(np.array([this_pred[1], this_pred[2]]), this_gt)
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, gidx[jdx]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, gidx[jdx]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def reference_detection(database, results, subset, tiou_thresholds, blocked=()):
    """(ap [T, C], activity_index {label: column}) exactly as `ANETdetection.evaluate`."""
    gt_rows, activity_index = import_ground_truth(database, subset, blocked)
    pred_rows = import_predictions(results, activity_index, blocked)
    ap = np.zeros((len(tiou_thresholds), len(activity_index)))
    for cidx in activity_index.values():
        ap[:, cidx] = compute_average_precision_detection(
            [g for g in gt_rows if g[3] == cidx], [p for p in pred_rows if p[3] == cidx],
            tiou_thresholds)
    return ap, activity_index


def reference_topkx_recall(database, results, subset, tiou_thresholds, top_k=(1, 5), blocked=()):
    """ActionFormer's Recall@kx averaged over the GT classes: [T, len(top_k)]."""
    gt_rows, activity_index = import_ground_truth(database, subset, blocked)
    pred_rows = import_predictions(results, activity_index, blocked)
    recall = np.zeros((len(tiou_thresholds), len(top_k), len(activity_index)))
    for cidx in activity_index.values():
        gt_c = [g for g in gt_rows if g[3] == cidx]
        pred_c = [p for p in pred_rows if p[3] == cidx]
        if not pred_c:
            continue
        tp = np.zeros((len(tiou_thresholds), len(top_k)))
        n_gts = 0
        for vid in dict.fromkeys(g[0] for g in gt_c):
            this_gt = np.array([[g[1], g[2]] for g in gt_c if g[0] == vid])
            n_gts += len(this_gt)
            this_pred = [p for p in pred_c if p[0] == vid]
            if not this_pred:
                continue
            order = np.array([p[4] for p in this_pred]).argsort()[::-1]
            top = order[:max(top_k) * len(this_gt)]
            segs = np.array([[p[1], p[2]] for p in this_pred])[top]
            tiou_arr = np.stack([segment_iou(s, this_gt) for s in segs])
            for tidx, thr in enumerate(tiou_thresholds):
                for kidx, k in enumerate(top_k):
                    tiou = tiou_arr[:k * len(this_gt)]
                    tp[tidx, kidx] += ((tiou >= thr).sum(axis=0) > 0).sum()
        recall[..., cidx] = tp / n_gts
    return recall.mean(axis=2)


def reference_average_recall(database, results, subset, tiou_thresholds, max_avg_nr_proposals=100,
                             blocked=()):
    """`average_recall_vs_avg_nr_proposals` of eval_proposal.py: (recall, avg_recall, per_video).

    Proposals are the predictions whose label is a GT class (the detection evaluator's input).
    """
    gt_rows, activity_index = import_ground_truth(database, subset, blocked)
    proposals = import_predictions(results, activity_index, blocked)
    video_lst = list(dict.fromkeys(g[0] for g in gt_rows))
    ratio = max_avg_nr_proposals * float(len(video_lst)) / len(proposals)
    score_lst, total_nr_proposals = [], 0
    for vid in video_lst:
        this_gt = np.array([[g[1], g[2]] for g in gt_rows if g[0] == vid])
        this_p = [p for p in proposals if p[0] == vid]
        if not this_p:
            score_lst.append(np.zeros((len(this_gt), 1)))
            continue
        sort_idx = np.array([p[4] for p in this_p]).argsort()[::-1]
        segs = np.array([[p[1], p[2]] for p in this_p])[sort_idx, :]
        nr = np.minimum(int(segs.shape[0] * ratio), segs.shape[0])
        total_nr_proposals += nr
        segs = segs[:nr, :]
        tiou = np.empty((len(this_gt), nr))
        for i in range(nr):
            tiou[:, i] = segment_iou(segs[i, :], this_gt)
        score_lst.append(tiou)
    pcn_lst = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(len(video_lst)) / total_nr_proposals)
    matches = np.empty((len(video_lst), len(pcn_lst)))
    positives = np.empty(len(video_lst))
    recall = np.empty((len(tiou_thresholds), len(pcn_lst)))
    for ridx, thr in enumerate(tiou_thresholds):
        for i, score in enumerate(score_lst):
            positives[i] = score.shape[0]
            true_positives_tiou = score >= thr
            pcn_proposals = np.minimum((score.shape[1] * pcn_lst).astype(int), score.shape[1])
            for j, nr_proposals in enumerate(pcn_proposals):
                matches[i, j] = np.count_nonzero((true_positives_tiou[:, :nr_proposals]).sum(axis=1))
        recall[ridx, :] = matches.sum(axis=0) / positives.sum()
    avg_recall = recall.mean(axis=0)
    proposals_per_video = pcn_lst * (float(total_nr_proposals) / len(video_lst))
    return recall, avg_recall, proposals_per_video
