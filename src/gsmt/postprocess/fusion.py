"""Video-level class fusion: with an external classifier (ActivityNet practice, DESIGN.md section
6.8), or with the video's own detections as the classifier (`decode.video_fusion`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gsmt.io.read import read_json
from gsmt.errors import GsmtError
from gsmt.postprocess.decode import FlatDetections


def weigh_by_video_classes(dets: FlatDetections, power: float) -> FlatDetections:
    """Each detection's score x (m_c / m_top) ** power, where m_c is the sum of its video's detection
    scores of its class c and m_top the largest such sum of the video: a class the video's detections
    barely hold is pushed down, as a video-level classifier's fusion does on THUMOS14, with no
    classifier but the detections themselves. Every group (video) re-sorted by score (ties keep their
    order); `power` 0 leaves the detections as they are."""
    if power == 0 or len(dets) == 0:
        return dets
    n_groups, n_labels = int(dets.group.max()) + 1, int(dets.labels.max()) + 1
    mass = np.zeros((n_groups, n_labels))
    np.add.at(mass, (dets.group, dets.labels), dets.scores)
    top = mass.max(axis=1)
    share = np.divide(mass, top[:, None], out=np.ones_like(mass), where=top[:, None] > 0)
    return dets.rescored(dets.scores * share[dets.group, dets.labels] ** power)


def load_video_scores(path: str | Path) -> dict[str, dict[str, float]]:
    """Read `{video_id: {label: probability}}` JSON (never pickle: the file is user-supplied)."""
    path = Path(path)
    if not path.exists():
        raise GsmtError(path, "classifier score file not found")
    data = read_json(path)  # bounded, UTF-8, a video id listed twice refused (gsmt.io.read)
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        data = data["results"]
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise GsmtError(path, "expected {video_id: {label: probability}}")
    out = {}
    for vid, scores in data.items():
        try:
            out[str(vid)] = {str(k): float(p) for k, p in scores.items()}
        except (TypeError, ValueError, OverflowError):
            raise GsmtError(path, f"video '{vid}': probabilities must be numbers") from None
        if any(not math.isfinite(p) or p < 0 for p in out[str(vid)].values()):
            raise GsmtError(path, f"video '{vid}': probabilities must be finite and >= 0")
    return out


def _lookup(scores: dict[str, dict[str, float]], video_id: str) -> dict[str, float] | None:
    for key in (video_id, f"v_{video_id}", video_id.removeprefix("v_")):
        if key in scores:
            return scores[key]
    return None


def fuse_results(results: dict[str, list[dict]], scores: dict[str, dict[str, float]], *,
                 mode: str = "multiply", topk: int = 2, max_keep: int | None = None
                 ) -> tuple[dict[str, list[dict]], int]:
    """Fuse detection scores with video-level class probabilities.

    `multiply`: each detection's score times the video's probability of its label.
    `topk`: each detection is relabelled with each of the video's `topk` classes, scored
    `score * p(class)` (the class-agnostic practice of BSN/BMN/G-TAD on ActivityNet).
    Returns the fused results and the number of videos the classifier file lacks (left unchanged).
    """
    if mode not in ("multiply", "topk"):
        raise GsmtError("--fuse-mode", f"unknown mode '{mode}' (multiply | topk)")
    fused, missing = {}, 0
    for vid, dets in results.items():
        probs = _lookup(scores, vid)
        if probs is None:
            missing += 1
            fused[vid] = dets
            continue
        if mode == "multiply":
            new = [{**d, "score": d["score"] * probs.get(d["label"], 0.0)} for d in dets]
        else:
            best = sorted(probs.items(), key=lambda kv: -kv[1])[:topk]
            new = [{**d, "label": label, "score": d["score"] * p} for label, p in best for d in dets]
        new.sort(key=lambda d: -d["score"])
        fused[vid] = new[:max_keep] if max_keep else new
    return fused, missing
