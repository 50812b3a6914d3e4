"""Training: optimisation loop, validation and model selection, checkpoints, logs, resume, DDP."""

from __future__ import annotations

import json
import math
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

from gsmt.config import Config, save_config, validate
from gsmt.annotations.load import Annotations
from gsmt.data.dataset import EMPTY_VIDEO_FAULT, collate
from gsmt.engine.checkpoint import (build_model, check_training_state, load_checkpoint, model_meta,
                                    save_checkpoint)
from gsmt.engine.resolve import (load_resident, make_dataset, open_data, report_faults, require_features,
    resolve_config, split_for_selection, subset_videos)
from gsmt.engine.distributed import Dist, init_distributed, pick_device
from gsmt.engine.predictor import predict_dataset, to_results
from gsmt.engine.rundir import check_resume, claim_run_dir, data_fingerprint
from gsmt.errors import Faults, GsmtError
from gsmt.io.guard import check_output_location
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


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool, inputs: dict | None = None) -> None:
    """Check a run directory as `train` does (gsmt.engine.rundir), create it, clear it with
    `overwrite`; the lock is released on return (`train` holds it for the whole run)."""
    claim_run_dir(out, inputs=inputs or {}, resume=resume, overwrite=overwrite).release()


def _on_main(ddp: Dist, fn):
    """Run `fn` on rank 0 only; its GsmtError is raised on every rank (no rank waits forever)."""
    result, error = None, None
    if ddp.main:
        try:
            result = fn()
        except GsmtError as exc:
            error = (exc.where, exc.problem)
    if ddp.world_size > 1:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise GsmtError(*error)
    return result


def _all_finite(module: torch.nn.Module) -> bool:
    flags = [torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True  # one wait for the device, not one per tensor


def _grad_norm(model: torch.nn.Module, clip: float, device: torch.device) -> torch.Tensor:
    """Total gradient norm (clipped to `clip` when > 0), a 0-d tensor left on the device: a NaN/Inf
    norm means the step is unusable."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return torch.zeros((), device=device)
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))


class LossSums:
    """The loss terms of many steps, kept on the device and read on the host in one transfer.

    Reading each step's terms as floats would make the host wait for the device at every step.
    Instead each step's terms are stacked into one small device tensor (one kernel, no wait), and
    `totals()` copies all of them at once and adds them in step order as Python floats (float64):
    the very sums, bit for bit, of adding each step's terms as floats. The set of terms may change
    from step to step (`background` only when a batch has background columns): a term is summed
    over the steps that have it, and the totals keep the order in which the terms first appeared."""

    def __init__(self) -> None:
        self._steps: list[tuple[tuple[str, ...], torch.Tensor]] = []

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        self._steps.append((tuple(logs), torch.stack([torch.as_tensor(v).reshape(()) for v in logs.values()])))

    def totals(self) -> dict[str, float]:
        if not self._steps:
            return {}
        # float32 -> Python float is exact; mixed dtypes promote to float64, also exact.
        flat = torch.cat([values for _, values in self._steps]).tolist()
        sums: dict[str, float] = {}
        i = 0
        for keys, _ in self._steps:
            for key in keys:
                sums[key] = sums.get(key, 0.0) + flat[i]
                i += 1
        return sums


def _diverged(run_dir: Path, where: str, saved_epoch: int | None) -> GsmtError:
    kept = (f"the last checkpoint with a finite loss is kept ({run_dir / 'last.pt'}, epoch {saved_epoch})"
            if saved_epoch else "no checkpoint was saved")
    return GsmtError(run_dir, f"training diverged: {where}; {kept}. Lower train.lr (or lengthen "
                              "train.warmup_epochs)")


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
          overwrite: bool = False, progress: bool = True, stop_after_steps: int | None = None,
          inputs: dict | None = None) -> TrainResult:
    """Train GSMT on a data folder; checkpoints, config and logs go to `run_dir`.

    `stop_after_steps` ends the run early after that many optimiser steps (tests of resume).
    `inputs` names further input files ({"CONFIG": path}) that must not lie in `run_dir`.
    The run directory is checked, locked and (resume) compared with the request before any file
    is written (gsmt.engine.rundir); rank 0 alone takes the lock and writes.
    A loss that stays NaN/Inf (`train.max_nonfinite_steps` steps in a row, or a whole epoch) stops
    the run with a GsmtError; such steps are skipped, and weights that last gave a non-finite loss
    are never saved.
    """
    run_dir = Path(run_dir)
    validate(cfg)  # a Config built or changed in Python is checked like a loaded one
    check_output_location(run_dir, "folder")
    device = pick_device(cfg.train.device)
    ddp = init_distributed(device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    source = open_data(data_dir, cfg)
    annotations = source.annotations
    if ddp.main:
        report_faults(annotations.faults, annotations.source)
    cfg = validate(resolve_config(cfg, annotations), f"config resolved with {source.root}")
    if cfg.train.batch_size % ddp.world_size:
        raise GsmtError("train.batch_size", f"{cfg.train.batch_size} is not divisible by {ddp.world_size} processes")

    train_videos = subset_videos(annotations, cfg.data.train_subset, str(source.root))
    require_features(train_videos, source.features, source.root)
    fit_videos, select_videos = split_for_selection(train_videos, cfg.data.val_fraction, cfg.train.seed)
    K = annotations.num_classes
    if cfg.decode.topk_classes > K:
        raise GsmtError(source.root, f"config key 'decode.topk_classes' must be <= the dataset's {K} classes, "
                                     f"got {cfg.decode.topk_classes}")
    train_set = make_dataset(fit_videos, source.features, cfg, K, train=True)
    val_set = make_dataset(select_videos, source.features, cfg, K, train=False) if select_videos else None
    if len(train_set) == 0:
        raise GsmtError(source.root, "no usable training samples")
    feature_dim = source.features.feature_dim or int(train_set[0]["features"].shape[0])
    data_record = data_fingerprint([v.id for v in train_videos], feature_dim, annotations.classes)

    run_inputs = {"--data annotations": annotations.source or None, "--data features": source.features.root,
                  **(inputs or {})}
    lock = _on_main(ddp, lambda: claim_run_dir(run_dir, inputs=run_inputs, resume=resume, overwrite=overwrite))
    try:
        return _train_locked(cfg, ddp, device, source, annotations, run_dir, train_videos, fit_videos,
                             select_videos, train_set, val_set, feature_dim, data_record,
                             resume=resume, progress=progress, stop_after_steps=stop_after_steps)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg: Config, ddp: Dist, device: torch.device, source, annotations: Annotations, run_dir: Path,
                  train_videos, fit_videos, select_videos, train_set, val_set, feature_dim: int,
                  data_record: dict, *, resume: bool, progress: bool,
                  stop_after_steps: int | None) -> TrainResult:
    K = annotations.num_classes
    # Resume compares the request with the run's record before a single file is written.
    _on_main(ddp, lambda: check_resume(run_dir, cfg, data_record) if resume else None)
    if ddp.main:
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
        last = run_dir / "last.pt"
        state = load_checkpoint(last)
        check_training_state(state, last)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            torch.set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GsmtError(last, f"cannot resume: the training state does not fit this run ({first})") from None
        start_epoch, step = state["epoch"], state["step"]
        history, best = state["history"], state.get("best")
    # Read once, before the first epoch (None: the DataLoader reads the samples every epoch).
    resident = load_resident(train_set, device, cfg.train.resident, cfg.train.resident_memory_fraction)
    logger = _Logger(run_dir, ddp.main)
    if ddp.main:
        if start_epoch:
            logger.log({"event": "resumed", "from_epoch": start_epoch})
            print(f"resumed from epoch {start_epoch} ({run_dir / 'last.pt'})")
        print(f"gsmt train: {n_params:,} parameters, {len(train_set)} training samples "
              f"({len(fit_videos)} videos), {len(select_videos)} videos for model selection, "
              f"mode {cfg.data.temporal_mode}, T={cfg.data.T}, K={K}, D={feature_dim}, device {device}"
              + (f", samples resident in {resident.where} memory" if resident is not None else ""))

    metric = cfg.train.select_metric if val_set is not None else None
    net = DistributedDataParallel(model) if ddp.world_size > 1 else model
    # One sampler for any world size: the same seeded permutation is split across ranks, so a
    # global batch holds the same samples whatever the number of processes.
    sampler = DistributedSampler(train_set, num_replicas=ddp.world_size, rank=ddp.rank, shuffle=True,
                                 seed=cfg.train.seed)
    if resident is None:
        # Pinned batches let `_to`'s copies to the GPU run without the host waiting for them.
        loader = DataLoader(train_set, batch_size=cfg.train.batch_size // ddp.world_size, sampler=sampler,
                            collate_fn=collate, num_workers=cfg.train.num_workers, drop_last=False,
                            pin_memory=device.type == "cuda")
    else:
        # The same sampler through a DataLoader of indices: the same permutation, and the same draw
        # from the global RNG as each epoch's DataLoader iterator makes, as the sample path; so the
        # same seed and settings give the same model (tests/test_resident_training.py).
        loader = DataLoader(range(len(train_set)), batch_size=cfg.train.batch_size // ddp.world_size,
                            sampler=sampler, drop_last=False)
    forward = torch.compile(net) if cfg.train.compile else net
    steps_per_epoch = len(loader)
    use_bf16 = device.type == "cuda" and cfg.train.bf16

    read_empty: set[str] = set()  # videos without snippet rows, as the batches report them
    max_streak = max(1, cfg.train.max_nonfinite_steps)
    streak = 0  # consecutive steps with a NaN/Inf loss (or gradient), across epochs
    saved_epoch = start_epoch or None  # the epoch of last.pt
    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        net.train()
        sums = LossSums()  # read once, at the end of the epoch
        seen, t0 = 0, time.perf_counter()
        next_postfix = t0  # the progress bar shows the loss at most once a second: each read waits
        finite_steps = nonfinite = 0  # optimiser steps of this epoch taken / skipped (NaN/Inf)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="batch",
                   disable=not (progress and ddp.main), leave=False)
        for batch in bar:
            if resident is not None:  # a batch of sample indices
                batch = resident.batch(batch, device)
            elif bool(batch["no_snippets"].any()):  # a host tensor (the DataLoader's): no wait for the device
                read_empty.update(v for v, e in zip(batch["video_id"], batch["no_snippets"].tolist()) if e)
            batch = _to(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = cfg.train.lr * _lr_factor(cfg, step, steps_per_epoch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outputs = forward(batch["features"], batch["valid"])
            outputs = {k: v.float() for k, v in outputs.items()}
            loss, logs = gsmt_loss(outputs, batch, cfg.loss, normalizers=_normalizers(batch, ddp, K))
            optimizer.zero_grad(set_to_none=True)
            # The backward runs whatever the loss: a NaN/Inf loss gives gradients that are discarded
            # below, and it lets the loss and the gradient norm be checked together, in the one wait
            # for the device that a step keeps. That wait is inherent: a skipped step must leave the
            # weights, the optimiser state (AdamW's step count and moments, SGD's momentum) and the
            # EMA untouched, the streak of skipped steps stops the run at exactly
            # `train.max_nonfinite_steps`, and the optimisers' `step` has no device-side guard
            # (fused AdamW's `found_inf` would change the numbers, and SGD has none).
            loss.backward()
            # Gradients are all-reduced by now: the norm is the same on every rank.
            norm = _grad_norm(model, cfg.train.grad_clip, device)
            # Every rank takes the same decision (DDP's all-reduce of gradients is collective).
            finite = _agree(torch.isfinite(loss.detach()).all() & torch.isfinite(norm), ddp)
            if finite:
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                streak = 0
                finite_steps += 1
                sums.add(logs)
            else:  # skipped: the weights stay those of the last finite step
                optimizer.zero_grad(set_to_none=True)
                streak += 1
                nonfinite += 1
                if streak >= max_streak:
                    logger.log({"event": "diverged", "epoch": epoch + 1, "step": step + 1, "nonfinite_steps": streak})
                    logger.close()
                    raise _diverged(run_dir, f"the loss was NaN/Inf in {streak} consecutive steps (up to step "
                                             f"{step + 1}, epoch {epoch + 1}; train.max_nonfinite_steps="
                                             f"{max_streak})", saved_epoch)
            step += 1
            n = int(batch["features"].shape[0]) * ddp.world_size
            seen += n
            if not bar.disable and time.perf_counter() >= next_postfix:  # a logging point: reads the loss
                bar.set_postfix(loss=f"{float(logs['total']):.3f}",
                                samples_s=f"{seen / (time.perf_counter() - t0):.1f}")
                next_postfix = time.perf_counter() + 1.0
            if stop_after_steps is not None and step >= stop_after_steps:
                logger.close()
                return TrainResult(run_dir, epoch, history, None, n_params, model)
        if finite_steps == 0:
            logger.log({"event": "diverged", "epoch": epoch + 1, "step": step, "nonfinite_steps": nonfinite})
            logger.close()
            raise _diverged(run_dir, f"no step of epoch {epoch + 1} had a finite loss ({nonfinite} steps)",
                            saved_epoch)
        n_batches = finite_steps
        record = {"epoch": epoch + 1, "split": "train", "step": step,
                  "lr": optimizer.param_groups[0]["lr"],
                  "samples_per_s": seen / max(1e-9, time.perf_counter() - t0),
                  **_loss_record(sums.totals(), n_batches)}
        if nonfinite:
            record["nonfinite_steps"] = nonfinite
        record = _average_across_ranks(record, ddp)
        if streak or not _all_finite(model) or (ema is not None and not _all_finite(ema.module)):
            # The weights at hand last gave a NaN/Inf loss: no checkpoint of them, last.pt and
            # best.pt stay those of the last epoch that ended on a finite step.
            if ddp.main:
                record["checkpoint"] = "skipped: non-finite loss at the end of the epoch"
                history.append(record)
                logger.log(record)
                print(_epoch_line(record, cfg.train.epochs) + "  (not saved: non-finite loss)", flush=True)
            if ddp.world_size > 1:
                dist.barrier()
            continue
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
                "data": data_record,
            }
            save_checkpoint(run_dir / "last.pt", state)
            if best is not None and best["epoch"] == epoch + 1:
                save_checkpoint(run_dir / "best.pt", state)
            print(_epoch_line(record, cfg.train.epochs), flush=True)
        saved_epoch = epoch + 1
        if ddp.world_size > 1:
            dist.barrier()
    logger.close()
    if streak:
        raise _diverged(run_dir, f"the loss was NaN/Inf in the last {streak} steps of the run", saved_epoch)
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


def _agree(ok: torch.Tensor, ddp: Dist) -> bool:
    """True only when the device flag `ok` (a bool tensor) holds on every rank."""
    if ddp.world_size == 1:
        return bool(ok)
    flag = (~ok).to(torch.float32).reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() == 0.0)


def _loss_record(sums: dict[str, float], n: int) -> dict[str, float]:
    """Mean loss terms under log names: `loss` (the total), `loss_cls`, `loss_mask`, ..."""
    names = {"total": "loss", "fallback_fraction": "fallback_fraction"}
    return {names.get(k, f"loss_{k}"): v / n for k, v in sums.items()}


def _normalizers(batch: dict, ddp: Dist, num_classes: int) -> dict | None:
    """Per-rank loss normalisers from global counts, so that DDP's gradient average equals the
    gradient of one process on the whole global batch."""
    if ddp.world_size == 1:
        return None
    target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
    fg = (target >= 0) & (target < num_classes)
    counts = torch.stack([(target >= 0).sum(), fg.sum()]).to(torch.float64)
    dist.all_reduce(counts)
    counts = (counts / ddp.world_size).clamp(min=1.0)
    # Read on the host (a wait per step, DDP only): as Python numbers they divide the loss sums as
    # they always have; 0-d device tensors would not give the same bits (CUDA divides by a host
    # scalar as a multiplication by its reciprocal, by a tensor as a true division).
    return {"cls": float(counts[0]), "mask": float(counts[1])}


def _average_across_ranks(record: dict, ddp: Dist) -> dict:
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
    # Sums stay on the device and are read once at the end (exact: integer counts, and the loss
    # terms and the per-batch IoU sums added as floats in batch order, as LossSums does).
    total, n = LossSums(), 0
    iou_sums = LossSums()
    iou_count = 0
    device = torch.device(device)
    fg_hits = torch.zeros((), dtype=torch.int64, device=device)
    fg_per_class = torch.zeros(num_classes, dtype=torch.int64, device=device)
    for batch in loader:
        batch = _to(batch, device)
        outputs = {k: v.float() for k, v in model(batch["features"], batch["valid"]).items()}
        _, logs = gsmt_loss(outputs, batch, cfg.loss)
        total.add(logs)
        n += 1
        target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
        fg = (target >= 0) & (target < num_classes)
        fg_hits += ((outputs["cls_logits"].argmax(1) == target) & fg).sum()
        # Counted without indexing by `fg` (which would wait for the device to learn the size).
        fg_per_class.scatter_add_(0, torch.where(fg, target, 0).reshape(-1), fg.reshape(-1).to(torch.int64))
        if "mask_logits" in outputs:
            iou = mask_iou(outputs["mask_logits"], batch["mask_target"], fg, batch["valid"])
            iou_sums.add({"iou": iou.sum()})
            iou_count += iou.numel()
    out = _loss_record(total.totals(), max(1, n))
    fg_count = int(fg_per_class.sum())
    iou_sum = iou_sums.totals().get("iou", 0.0)
    if fg_count:
        out["fg_acc"] = int(fg_hits) / fg_count
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
    # A NaN/Inf value is never better than a finite one (NaN compares false both ways).
    if best is not None and not math.isfinite(value):
        return best if math.isfinite(best["value"]) else {"epoch": record["epoch"], "metric": metric, "value": value}
    if best is None or not math.isfinite(best["value"]) or (
            value >= best["value"] if higher_is_better else value <= best["value"]):
        return {"epoch": record["epoch"], "metric": metric, "value": value}
    return best


def _epoch_line(record: dict, epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record.get('loss', float('nan')):.4f}"]
    for key in ("val_loss", "val_loss_mask", "val_mask_iou", "val_fg_acc", "val_mAP"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    parts.append(f"{record['samples_per_s']:.1f} samples/s")
    return "  ".join(parts)
