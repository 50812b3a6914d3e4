"""Batched inference: model -> per-sample decoding -> per-video Soft-NMS -> submission JSON."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from gsmt.config import DecodeConfig
from gsmt.data.dataset import TALDataset, collate
from gsmt.model import GSMT
from gsmt.postprocess import Detections, actionness_decode, decode, soft_nms
from gsmt.postprocess.windows import drop_edge_cuts


@torch.no_grad()
def predict_dataset(model: GSMT, dataset: TALDataset, decode_cfg: DecodeConfig, *,
                    device: torch.device | str = "cpu", batch_size: int | None = None,
                    progress: bool = False, substitute=None) -> dict[str, Detections]:
    """Detections in video seconds for every video of `dataset` (windows merged, Soft-NMS applied).

    `substitute(probs, masks, batch, i) -> (probs, masks)` may replace a sample's outputs before
    decoding (the paper's oracle analysis, Table 6).
    """
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size or decode_cfg.batch_size, shuffle=False,
                        collate_fn=collate)
    per_video: dict[str, list[Detections]] = defaultdict(list)
    durations: dict[str, float] = {}
    for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
        outputs = _forward_each(model, batch["features"].to(device), batch["valid"].to(device))
        probs = torch.softmax(outputs["cls_logits"].float(), dim=1).cpu().numpy()
        masks = (torch.sigmoid(outputs["mask_logits"].float()).cpu().numpy()
                 if "mask_logits" in outputs else None)
        for i, video_id in enumerate(batch["video_id"]):
            durations[video_id] = float(batch["duration"][i])
            p, m = probs[i], None if masks is None else masks[i]
            if substitute is not None:
                p, m = substitute(p, m, batch, i)
            dets = decode_sample(p, m, batch, i, decode_cfg)
            if dataset.mode == "window" and decode_cfg.drop_edge_cuts:
                dets = drop_edge_cuts(dets, batch["t_start"][i].numpy(), batch["t_end"][i].numpy(),
                                      int(batch["overlap_prev"][i]), int(batch["overlap_next"][i]))
            per_video[video_id].append(dets)
    return {vid: suppress(Detections.concatenate(parts), decode_cfg) for vid, parts in per_video.items()}


def _forward_each(model: GSMT, features: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model on each sample alone, outputs stacked: the same numbers whatever the batch size.

    CPU and GPU kernels pick their algorithm by shape, so a batched pass changes a sample's outputs
    in the last bits with the batch it sits in, enough to flip a rounded score or a mask threshold.
    """
    parts = [model(features[i:i + 1], valid[i:i + 1]) for i in range(features.shape[0])]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def decode_sample(probs: np.ndarray, masks: np.ndarray | None, batch: dict, i: int,
                  cfg: DecodeConfig) -> Detections:
    """Decode one sample (a video, or one window of it) into candidates in video seconds."""
    common = dict(
        valid=batch["valid"][i].numpy(),
        t_start=batch["t_start"][i].numpy(),
        t_end=batch["t_end"][i].numpy(),
        duration=float(batch["duration"][i]),
        mode=cfg.mode,
        topk_classes=cfg.topk_classes,
        thresholds=np.asarray(cfg.thresholds, dtype=np.float64),
        m2=cfg.m2,
        theta_c=cfg.theta_c,
    )
    if masks is None:  # the paper's Table 7 ablation: no mask branch
        del common["mode"]  # runs of actionness: one decoding for both
        return actionness_decode(probs, **common)
    return decode(probs, masks, m1=cfg.m1, score=cfg.score, **common)


def suppress(dets: Detections, cfg: DecodeConfig) -> Detections:
    return soft_nms(dets.segments, dets.scores, dets.labels, sigma=cfg.nms_sigma, method=cfg.nms_method,
                    iou_threshold=cfg.nms_iou_threshold, per_class=cfg.nms_per_class,
                    max_keep=cfg.max_keep)


def to_results(detections: dict[str, Detections], classes: list[str]) -> dict[str, list[dict]]:
    """ActivityNet `results` entries: {video_id: [{label, score, segment}]}, best first."""
    results = {}
    for video_id, dets in detections.items():
        order = np.argsort(-dets.scores, kind="stable")
        results[video_id] = [
            {"label": classes[int(dets.labels[j])], "score": round(float(dets.scores[j]), 6),
             "segment": [round(float(dets.segments[j, 0]), 3), round(float(dets.segments[j, 1]), 3)]}
            for j in order
        ]
    return results


def submission(results: dict[str, list[dict]], external_data: dict | None = None) -> dict:
    return {"version": "VERSION 1.3", "external_data": external_data or {"used": False},
            "results": results}
