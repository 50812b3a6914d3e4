"""Batched inference: model -> decoding of whole batches -> Soft-NMS of all videos at once -> submission JSON."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from gsmt.annotations.types import Video
from gsmt.annotations.load import report_faults
from gsmt.config import DecodeConfig
from gsmt.data.dataset import TALDataset, collate
from gsmt.engine.distributed import settle
from gsmt.errors import Faults, GsmtError
from gsmt.model import GSMT
from gsmt.postprocess import Detections, actionness_decode
from gsmt.postprocess.decode import FlatDetections, decode_many, decode_pairs_many, select_pairs
from gsmt.postprocess.fusion import weigh_by_video_classes
from gsmt.postprocess.nms import decay_fragments, soft_nms_many
from gsmt.postprocess.windows import drop_edge_cuts_many


@torch.no_grad()
def predict_dataset(model: GSMT, dataset: TALDataset, decode_cfg: DecodeConfig, *,
                    device: torch.device | str = "cpu", batch_size: int | None = None,
                    progress: bool = False, substitute=None, candidates=None) -> dict[str, Detections]:
    """Detections in video seconds for every video of `dataset` (windows merged, Soft-NMS applied).

    Each batch is decoded at once (`decode_many`), and Soft-NMS runs once over every video
    (`soft_nms_many`): the numbers of decoding each sample and suppressing each video alone.
    `substitute(probs, masks, batch, i) -> (probs, masks)` may replace a sample's outputs before
    decoding (the paper's oracle analysis, Table 6); `candidates(batch) -> FlatDetections` replaces
    the model and the decoding altogether (`model` may then be None: benchmarks/oracle.py decodes
    the ground truth itself), and the windows and Soft-NMS are handled as for a model.
    """
    if model is not None:
        model.eval()
    loader = DataLoader(dataset, batch_size=batch_size or decode_cfg.batch_size, shuffle=False,
                        collate_fn=collate)
    video_index: dict[str, int] = {}  # first appearance order, as the windows come
    parts: list[FlatDetections] = []  # per batch; group = video index
    for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
        if candidates is not None:
            dets = candidates(batch)
        elif getattr(model, "labels", "single") == "multi":  # a model without the attribute: one label
            if substitute is not None:
                raise GsmtError("predict", "the oracle substitution takes single-label outputs")
            dets = decode_multilabel(model, _forward(model, batch["features"].to(device), batch["valid"].to(device)),
                                     batch, decode_cfg)
        else:
            outputs = _forward(model, batch["features"].to(device), batch["valid"].to(device))
            dets = _decode_single(outputs, batch, decode_cfg, substitute)
        if dataset.mode == "window" and decode_cfg.drop_edge_cuts:
            dets = drop_edge_cuts_many(dets, batch["t_start"].numpy(), batch["t_end"].numpy(),
                                       batch["overlap_prev"].numpy(), batch["overlap_next"].numpy())
        videos = np.asarray([video_index.setdefault(v, len(video_index)) for v in batch["video_id"]],
                            dtype=np.int64)
        dets.group = videos[dets.group]
        parts.append(dets)
    if not parts:
        return {}
    found = FlatDetections(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in ("group", "segments", "labels", "scores")))
    # Grouped by video, each video's windows in dataset order (a stable sort keeps it).
    found = found.take(np.argsort(found.group, kind="stable"))
    kept = decay_fragments(soft_nms_many(found, len(video_index), **_nms_options(decode_cfg)),
                           decode_cfg.fragment_decay)
    kept = weigh_by_video_classes(kept, decode_cfg.video_fusion)
    return dict(zip(video_index, kept.split(len(video_index))))


def _decode_single(outputs: dict, batch: dict, decode_cfg: DecodeConfig, substitute) -> FlatDetections:
    """Softmax probabilities and one mask per snippet (the paper's model) -> candidates."""
    probs = torch.softmax(outputs["cls_logits"].float(), dim=1).cpu().numpy()
    masks = (torch.sigmoid(outputs["mask_logits"].float()).cpu().numpy()
             if "mask_logits" in outputs else None)
    if substitute is not None:
        swapped = [substitute(probs[i], None if masks is None else masks[i], batch, i)
                   for i in range(len(probs))]
        probs = np.stack([p for p, _ in swapped])
        masks = None if swapped[0][1] is None else np.stack([m for _, m in swapped])
    return decode_samples(probs, masks, batch, decode_cfg)


def decode_multilabel(model: GSMT, outputs: dict, batch: dict, cfg: DecodeConfig) -> FlatDetections:
    """A multi-label model's batch -> candidates: the pairs (snippet, class) above `theta_c`
    (`select_pairs`, at most `m1` per sample, or per snippet with `pairs: snippets`), their masks
    computed for them alone, decoded by `decode_pairs_many`."""
    probs = model.class_probs(outputs).cpu().numpy()
    valid = batch["valid"].numpy()
    snippet, cls = select_pairs(probs, valid, cfg.theta_c, cfg.m1,
                                per_snippet=cfg.topk_classes if cfg.pairs == "snippets" else None,
                                colabel_ratio=cfg.colabel_ratio)
    device = outputs["cls_logits"].device
    logits = model.pair_mask_logits(outputs, torch.from_numpy(snippet).to(device), torch.from_numpy(cls).to(device))
    columns = torch.sigmoid(logits.float()).cpu().numpy()
    return decode_pairs_many(probs, columns, snippet, cls, valid, batch["t_start"].numpy(), batch["t_end"].numpy(),
                             batch["duration"].numpy().astype(np.float64), mode=cfg.mode,
                             thresholds=np.asarray(cfg.thresholds, dtype=np.float64), m2=cfg.m2,
                             theta_c=cfg.theta_c, score=cfg.score, mask_score=cfg.resolved_mask_score())


def decode_samples(probs: np.ndarray, masks: np.ndarray | None, batch: dict, cfg: DecodeConfig) -> FlatDetections:
    """Decode a batch of samples (videos, or windows of them) into candidates in video seconds;
    group b of the result is sample b."""
    common = dict(
        valid=batch["valid"].numpy(),
        t_start=batch["t_start"].numpy(),
        t_end=batch["t_end"].numpy(),
        topk_classes=cfg.topk_classes,
        thresholds=np.asarray(cfg.thresholds, dtype=np.float64),
        m2=cfg.m2,
        theta_c=cfg.theta_c,
    )
    durations = batch["duration"].numpy().astype(np.float64)
    if masks is None:  # the paper's Table 7 ablation: no mask branch (one sample at a time)
        return FlatDetections.from_parts([
            actionness_decode(probs[i], valid=common["valid"][i], t_start=common["t_start"][i],
                              t_end=common["t_end"][i], duration=float(durations[i]),
                              topk_classes=cfg.topk_classes, thresholds=common["thresholds"], m2=cfg.m2,
                              theta_c=cfg.theta_c)
            for i in range(len(probs))])
    return decode_many(probs, masks, durations=durations, mode=cfg.mode, m1=cfg.m1, score=cfg.score,
                       mask_score=cfg.resolved_mask_score(), **common)


def _forward(model: GSMT, features: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's outputs for a batch: the same numbers whatever the batch size.

    Kernels pick their algorithm by shape, so a plain batched pass changes a sample's outputs in
    the last bits with the batch it sits in (up to 3e-5 in a mask logit), enough to flip a rounded
    score or a mask threshold. On the CPU only `Conv1d` does so (oneDNN, and the native kernel
    above a few samples); Linear, LayerNorm, GELU and attention give each sample the same bits at
    any batch size (tests/engine/test_predictor.py). So on the CPU the batch runs at once and only
    the convolutions run one sample at a time (`_per_sample_convs`): the very numbers of a
    one-sample pass, in one pass per batch. Elsewhere (CUDA, MPS: kernels not verified) each
    sample runs alone.
    """
    if features.device.type == "cpu":
        with _per_sample_convs(model):
            return model(features, valid)
    parts = [model(features[i:i + 1], valid[i:i + 1]) for i in range(features.shape[0])]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _conv1d_each(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` computed one sample at a time, as a one-sample batch computes it."""
    forward = type(conv).forward
    return torch.cat([forward(conv, x[i:i + 1]) for i in range(x.shape[0])])


@contextmanager
def _per_sample_convs(model: nn.Module):
    """Within the block, every Conv1d of `model` runs one sample at a time (`_conv1d_each`)."""
    patched = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    for m in patched:
        m.forward = _conv1d_each.__get__(m)  # an instance attribute: the class stays as it is
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def decode_sample(probs: np.ndarray, masks: np.ndarray | None, batch: dict, i: int,
                  cfg: DecodeConfig) -> Detections:
    """Decode one sample (a video, or one window of it) into candidates in video seconds."""
    one = {k: batch[k][i:i + 1] for k in ("valid", "t_start", "t_end", "duration")}
    flat = decode_samples(probs[None], None if masks is None else masks[None], one, cfg)
    return Detections(flat.segments, flat.labels, flat.scores)


def _nms_options(cfg: DecodeConfig) -> dict:
    return dict(sigma=cfg.nms_sigma, method=cfg.nms_method, iou_threshold=cfg.nms_iou_threshold,
                per_class=cfg.nms_per_class, max_keep=cfg.max_keep)


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


def predict_results(model, cfg, classes: list[str], videos: list[Video], features, *, device,
                    batch_size: int | None = None, progress: bool = False, where: str = "data",
                    shard: tuple[int, int] = (0, 1)) -> dict | None:
    """ActivityNet `results` for `videos`: every video present, even those where nothing was found.

    `shard=(rank, world_size)` under an initialised process group (`gsmt predict` under torchrun):
    each process predicts every world_size-th video, rank 0 gathers them and returns the same
    results, in the same order, as one process would; the other ranks return None. Per-sample
    outputs do not depend on the batch a sample sits in (gsmt.engine.predictor), so the split
    changes no number.
    """
    from gsmt.engine.resolve import make_dataset, require_features

    rank, world = shard
    require_features(videos, features, where)
    try:
        dataset = make_dataset(videos[rank::world], features, cfg, len(classes), train=False)
        detections = predict_dataset(model, dataset, cfg.decode, device=device, batch_size=batch_size,
                                     progress=progress and rank == 0)
        payload = {"results": to_results(detections, classes), "faults": dict(dataset.faults.counts)}
    except GsmtError as exc:
        if world == 1:
            raise
        failure, payload = exc, None
    else:
        failure = None
    if world > 1:
        shares = settle(world, failure, payload, who="gsmt predict")
        if rank != 0:
            return None
        payload = {"results": {}, "faults": {}}
        for share in shares:
            payload["results"].update(share["results"])
            for kind, n in share["faults"].items():
                payload["faults"][kind] = payload["faults"].get(kind, 0) + n
    faults = Faults()
    faults.counts.update(payload["faults"])
    report_faults(faults, where)
    found = payload["results"]
    # One process's order: videos with samples in input order, then those without any.
    results = {video.id: found[video.id] for video in videos if video.id in found}
    for video in videos:
        results.setdefault(video.id, [])
    return results
