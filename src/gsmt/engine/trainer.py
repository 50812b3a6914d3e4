"""Training: optimisation loop, validation and model selection, checkpoints, logs, resume, DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from gsmt.config import Config, save_config
from gsmt.data.annotations import Annotations
from gsmt.data.dataset import EMPTY_VIDEO_FAULT, collate
from gsmt.engine.checkpoint import build_model, load_checkpoint, model_meta, save_checkpoint
from gsmt.engine.data import (make_dataset, open_data, report_faults, require_features, resolve_config,
                              split_for_selection, subset_videos)
from gsmt.engine.predictor import predict_dataset, to_results
from gsmt.errors import Faults, GsmtError
from gsmt.evaluation import evaluate_detection
from gsmt.losses import gsmt_loss, mask_iou
from gsmt.model import count_parameters


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    num_parameters: int = 0
    model: torch.nn.Module | None = None  # this process's trained weights (each DDP rank has its own)


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GsmtError("train.device", "CUDA was asked for but is not available")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return torch.device(name)


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise GsmtError(out, "run directory exists and is not empty (use --overwrite or --resume)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _lr_factor(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay (or constant) over the whole run, per optimiser step."""
    warmup = cfg.train.warmup_epochs * steps_per_epoch
    total = max(1, cfg.train.epochs * steps_per_epoch)
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if cfg.train.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    raise GsmtError("train.optimizer", f"unknown optimizer '{t.optimizer}' (adamw | sgd)")


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class _Logger:
    """JSON-lines log (always) and TensorBoard (when installed), written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "log.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is an optional extra
                self.tb = None

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None and "epoch" in record:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tb.add_scalar(f"{record.get('split', 'run')}/{key}", value, record["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train(cfg: Config, data_dir: str | Path, run_dir: str | Path, *, resume: bool = False,
          overwrite: bool = False, progress: bool = True, stop_after_steps: int | None = None) -> TrainResult:
    """Train GSMT on a data folder; checkpoints, config and logs go to `run_dir`.

    `stop_after_steps` ends the run early after that many optimiser steps (tests of resume).
    """
    run_dir = Path(run_dir)
    device = pick_device(cfg.train.device)
    ddp = _init_distributed(device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    source = open_data(data_dir, cfg)
    annotations = source.annotations
    if ddp.main:
        report_faults(annotations.faults, annotations.source)
    cfg = resolve_config(cfg, annotations)
    if cfg.train.batch_size % ddp.world_size:
        raise GsmtError("train.batch_size", f"{cfg.train.batch_size} is not divisible by {ddp.world_size} processes")

    train_videos = subset_videos(annotations, cfg.data.train_subset, str(source.root))
    require_features(train_videos, source.features, source.root)
    fit_videos, select_videos = split_for_selection(train_videos, cfg.data.val_fraction, cfg.train.seed)
    K = annotations.num_classes
    train_set = make_dataset(fit_videos, source.features, cfg, K, train=True)
    val_set = make_dataset(select_videos, source.features, cfg, K, train=False) if select_videos else None
    if len(train_set) == 0:
        raise GsmtError(source.root, "no usable training samples")
    feature_dim = source.features.feature_dim or int(train_set[0]["features"].shape[0])

    if ddp.main:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        save_config(cfg, run_dir / "config.yaml")
    if ddp.world_size > 1:
        dist.barrier()

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, K, feature_dim).to(device)
    n_params = count_parameters(model)
    optimizer = _optimizer(cfg, model)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema))
           if cfg.train.ema > 0 else None)
    meta = model_meta(cfg, annotations.classes, feature_dim)
    history: list[dict] = []
    start_epoch, step, best = 0, 0, None

    if resume and (run_dir / "last.pt").exists():
        state = load_checkpoint(run_dir / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        start_epoch, step = state["epoch"], state["step"]
        history, best = state["history"], state.get("best")
    logger = _Logger(run_dir, ddp.main)
    if ddp.main:
        if start_epoch:
            logger.log({"event": "resumed", "from_epoch": start_epoch})
            print(f"resumed from epoch {start_epoch} ({run_dir / 'last.pt'})")
        print(f"gsmt train: {n_params:,} parameters, {len(train_set)} training samples "
              f"({len(fit_videos)} videos), {len(select_videos)} videos for model selection, "
              f"mode {cfg.data.temporal_mode}, T={cfg.data.T}, K={K}, D={feature_dim}, device {device}")

    metric = cfg.train.select_metric if val_set is not None else None
    net = DistributedDataParallel(model) if ddp.world_size > 1 else model
    # One sampler for any world size: the same seeded permutation is split across ranks, so a
    # global batch holds the same samples whatever the number of processes.
    sampler = DistributedSampler(train_set, num_replicas=ddp.world_size, rank=ddp.rank, shuffle=True,
                                 seed=cfg.train.seed)
    loader = DataLoader(train_set, batch_size=cfg.train.batch_size // ddp.world_size, sampler=sampler,
                        collate_fn=collate, num_workers=cfg.train.num_workers, drop_last=False)
    steps_per_epoch = len(loader)
    use_bf16 = device.type == "cuda" and cfg.train.bf16

    read_empty: set[str] = set()  # videos without snippet rows, as the batches report them
    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        net.train()
        sums: dict[str, float] = {}
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="batch",
                   disable=not (progress and ddp.main), leave=False)
        for batch in bar:
            if bool(batch["no_snippets"].any()):
                read_empty.update(v for v, e in zip(batch["video_id"], batch["no_snippets"].tolist()) if e)
            batch = _to(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = cfg.train.lr * _lr_factor(cfg, step, steps_per_epoch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outputs = net(batch["features"], batch["valid"])
            outputs = {k: v.float() for k, v in outputs.items()}
            loss, logs = gsmt_loss(outputs, batch, cfg.loss, normalizers=_normalizers(batch, ddp, K))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            n = int(batch["features"].shape[0]) * ddp.world_size
            seen += n
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{logs['total']:.3f}", samples_s=f"{seen / (time.perf_counter() - t0):.1f}")
            if stop_after_steps is not None and step >= stop_after_steps:
                logger.close()
                return TrainResult(run_dir, epoch, history, None, n_params, model)
        n_batches = max(1, len(loader))
        record = {"epoch": epoch + 1, "split": "train", "step": step,
                  "lr": optimizer.param_groups[0]["lr"],
                  "samples_per_s": seen / max(1e-9, time.perf_counter() - t0),
                  **_loss_record(sums, n_batches)}
        record = _average_across_ranks(record, ddp)
        eval_model = ema.module if ema is not None else model
        if ddp.main and val_set is not None:
            record.update(_validate(eval_model, val_set, cfg, annotations, device))
        if ddp.main:
            history.append(record)
            logger.log(record)
            best = _select(record, best, metric)
            state = {
                "meta": meta,
                "model": model.state_dict(),
                "ema_model": ema.module.state_dict() if ema is not None else None,
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "step": step,
                "history": history,
                "best": best,
            }
            save_checkpoint(run_dir / "last.pt", state)
            if best is not None and best["epoch"] == epoch + 1:
                save_checkpoint(run_dir / "best.pt", state)
            print(_epoch_line(record, cfg.train.epochs), flush=True)
        if ddp.world_size > 1:
            dist.barrier()
    logger.close()
    if ddp.main:
        # Counted as samples are read: in this process, or (num_workers > 0) in the workers, whose
        # counts are lost; the batches' flags name the videos the workers found empty.
        data_faults = Faults()
        for dataset in (train_set, val_set):
            if dataset is not None:
                data_faults.merge(dataset.faults)
        data_faults.add(EMPTY_VIDEO_FAULT, len(read_empty - train_set.empty_videos))
        report_faults(data_faults, source.root)
    return TrainResult(run_dir, cfg.train.epochs, history, best["epoch"] if best else None, n_params, model)


def _loss_record(sums: dict[str, float], n: int) -> dict[str, float]:
    """Mean loss terms under log names: `loss` (the total), `loss_cls`, `loss_mask`, ..."""
    names = {"total": "loss", "fallback_fraction": "fallback_fraction"}
    return {names.get(k, f"loss_{k}"): v / n for k, v in sums.items()}


def _normalizers(batch: dict, ddp: _Dist, num_classes: int) -> dict | None:
    """Per-rank loss normalisers from global counts, so that DDP's gradient average equals the
    gradient of one process on the whole global batch."""
    if ddp.world_size == 1:
        return None
    target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
    fg = (target >= 0) & (target < num_classes)
    counts = torch.stack([(target >= 0).sum(), fg.sum()]).to(torch.float64)
    dist.all_reduce(counts)
    counts = (counts / ddp.world_size).clamp(min=1.0)
    return {"cls": float(counts[0]), "mask": float(counts[1])}


def _average_across_ranks(record: dict, ddp: _Dist) -> dict:
    if ddp.world_size == 1:
        return record
    keys = [k for k in record if k.startswith("loss") or k == "fallback_fraction"]
    values = torch.tensor([record[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {**record, **{k: float(v) / ddp.world_size for k, v in zip(keys, values)}}


@torch.no_grad()
def heldout_losses(model, dataset, cfg: Config, num_classes: int, device) -> dict:
    """Mean loss terms (`loss`, `loss_mask`, ...) on a dataset, foreground snippet accuracy
    (`fg_acc`), the rate of always answering the most frequent foreground class (`fg_majority`) and
    the mean IoU of the thresholded foreground mask columns with their targets (`mask_iou`)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.decode.batch_size, shuffle=False, collate_fn=collate)
    total, n = {}, 0
    fg_hits = fg_count = 0
    iou_sum, iou_count = 0.0, 0
    fg_per_class = torch.zeros(num_classes, dtype=torch.float64)
    for batch in loader:
        batch = _to(batch, device)
        outputs = {k: v.float() for k, v in model(batch["features"], batch["valid"]).items()}
        _, logs = gsmt_loss(outputs, batch, cfg.loss)
        for key, value in logs.items():
            total[key] = total.get(key, 0.0) + value
        n += 1
        target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
        fg = (target >= 0) & (target < num_classes)
        fg_hits += int((outputs["cls_logits"].argmax(1) == target)[fg].sum())
        fg_count += int(fg.sum())
        fg_per_class += torch.bincount(target[fg].cpu(), minlength=num_classes).double()
        if "mask_logits" in outputs:
            iou = mask_iou(outputs["mask_logits"], batch["mask_target"], fg, batch["valid"])
            iou_sum, iou_count = iou_sum + float(iou.sum()), iou_count + iou.numel()
    out = _loss_record(total, max(1, n))
    if fg_count:
        out["fg_acc"] = fg_hits / fg_count
        out["fg_majority"] = float(fg_per_class.max()) / fg_count
    if iou_count:
        out["mask_iou"] = iou_sum / iou_count
    return out


def _validate(model, val_set, cfg: Config, annotations: Annotations, device) -> dict:
    """Loss and detection mAP on the model-selection videos (held out from the training subset)."""
    out = {f"val_{k}": v for k, v in heldout_losses(model, val_set, cfg, annotations.num_classes, device).items()}
    detections = predict_dataset(model, val_set, cfg.decode, device=device)
    videos = list(val_set.videos)
    # Only classes present in these few videos are scored (the official rule); detections of the
    # others are dropped here rather than warned about at every epoch.
    present = np.unique(np.concatenate([v.labels for v in videos]))
    if present.size == 0:
        return out
    detections = {vid: d.take(np.isin(d.labels, present)) for vid, d in detections.items()}
    gt = Annotations(videos=videos, classes=annotations.classes)
    metrics = evaluate_detection(gt, to_results(detections, annotations.classes), tiou=cfg.decode.tiou,
                                 with_recall=False)
    out["val_mAP"] = float(metrics.average_mAP)
    return out


def _select(record: dict, best: dict | None, metric: str | None) -> dict:
    """Best epoch so far: highest mAP or lowest loss on the model-selection videos, else the last."""
    if metric is None or metric not in record:
        return {"epoch": record["epoch"], "metric": "last", "value": float(record["epoch"])}
    value = record[metric]
    higher_is_better = metric.endswith("mAP")
    # Ties go to the later epoch: it has trained longer (e.g. while the held-out mAP is still 0).
    if best is None or (value >= best["value"] if higher_is_better else value <= best["value"]):
        return {"epoch": record["epoch"], "metric": metric, "value": value}
    return best


def _epoch_line(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record.get('loss', float('nan')):.4f}"]
    for key in ("val_loss", "val_loss_mask", "val_mask_iou", "val_fg_acc", "val_mAP"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    parts.append(f"{record['samples_per_s']:.1f} samples/s")
    return "  ".join(parts)
