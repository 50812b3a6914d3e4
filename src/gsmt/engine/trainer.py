"""Training: optimisation loop, validation and model selection, checkpoints, logs, resume, DDP."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler

from gsmt.annotations.types import Annotations, Video
from gsmt.config import Config, decisions, save_config, validate
from gsmt.data.dataset import EMPTY_VIDEO_FAULT, TALDataset, collate
from gsmt.data.standardize import FeatureStats, auto_mode, feature_stats
from gsmt.engine.checkpoint import (
    build_model,
    check_training_state,
    load_checkpoint,
    model_meta,
    save_checkpoint,
    with_feature_stats,
)
from gsmt.engine.distributed import Dist, init_distributed, pick_device
from gsmt.engine.loop import LossSums, StepContext, Steps, all_finite, pair_inputs, to_device, train_one_epoch
from gsmt.engine.predictor import predict_dataset, to_results
from gsmt.engine.resolve import (DataSource, make_dataset, open_data, report_faults, require_features,
    resolve_config, split_for_selection, subset_videos)
from gsmt.engine.resident import load_resident
from gsmt.engine.rundir import check_resume, claim_run_dir, data_fingerprint, discard_unsaved_run, trim_log
from gsmt.errors import Faults, GsmtError, counted
from gsmt.evaluation import evaluate_detection
from gsmt.io.guard import check_output_location
from gsmt.losses import gsmt_loss, mask_iou, pair_mask_iou
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
class TrainData:
    """What a run trains and selects on, read and checked before the run directory is claimed."""

    source: DataSource
    annotations: Annotations
    train_videos: list[Video]  # the training subset
    fit_videos: list[Video]  # ... less the model-selection videos
    select_videos: list[Video]
    train_set: TALDataset
    val_set: TALDataset | None
    feature_dim: int
    record: dict  # data_fingerprint: what a resume must find again
    stats: FeatureStats | None = None  # the fit videos' feature statistics (model.standardize)


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


def _feature_stats(data: TrainData, ddp: Dist) -> FeatureStats:
    """The training videos' feature statistics; under DDP each rank reads its share and all merge
    the shares in rank order (every rank gets the same numbers)."""
    ids = [v.id for v in data.fit_videos]
    mine = feature_stats(data.source.features, ids[ddp.rank::ddp.world_size], data.feature_dim)
    if ddp.world_size == 1:
        return mine
    shares: list = [None] * ddp.world_size
    dist.all_gather_object(shares, (mine.count, mine.mean, mine.m2))
    stats = FeatureStats(0, np.zeros(data.feature_dim), np.zeros(data.feature_dim))
    for count, mean, m2 in shares:
        stats = stats.merge(FeatureStats(count, mean, m2))
    return stats


def _resolve_standardize(cfg: Config, stats: FeatureStats, ddp: Dist) -> Config:
    """`model.standardize: auto` decided from the training features (`gsmt.data.standardize.auto_mode`),
    printed and recorded in config.yaml like the other settings taken from the data."""
    if cfg.model.standardize != "auto":
        return cfg
    mode, why = auto_mode(stats)
    out = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, standardize=mode))
    line = f"model.standardize={mode} ({why})"
    out.__dict__.update({k: v for k, v in cfg.__dict__.items() if k.startswith("_")})
    out.__dict__["_decisions"] = [*decisions(cfg), line]
    if ddp.main:
        print(f"decided from the data: {line}")
    return out


def _diverged(run_dir: Path, where: str, saved_epoch: int | None) -> GsmtError:
    kept = (f"the last checkpoint with a finite loss is kept ({run_dir / 'last.pt'}, epoch {saved_epoch})"
            if saved_epoch else "no checkpoint was saved")
    return GsmtError(run_dir, f"training diverged: {where}; {kept}. Lower train.lr (or lengthen "
                              "train.warmup_epochs)")


def _optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    raise GsmtError("train.optimizer", f"unknown optimizer '{t.optimizer}' (adamw | sgd)")


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
    data = TrainData(source, annotations, train_videos, fit_videos, select_videos, train_set, val_set, feature_dim,
                     data_fingerprint([v.id for v in train_videos], feature_dim, annotations.classes,
                                      videos=train_videos, features=source.features))
    # The statistics: for a new run, and for `auto` to decide as the run did (a resume takes the
    # numbers themselves from its checkpoint).
    if cfg.model.standardize == "auto" or (cfg.model.standardize != "none" and not (
            resume and (run_dir / "last.pt").exists())):
        data.stats = _feature_stats(data, ddp)
        cfg = _resolve_standardize(cfg, data.stats, ddp)

    run_inputs = {"--data annotations": annotations.source or None, "--data features": source.features.root,
                  **(inputs or {})}
    lock = _on_main(ddp, lambda: claim_run_dir(run_dir, inputs=run_inputs, resume=resume, overwrite=overwrite))
    wrote: list[bool] = []  # set once this run has written its config.yaml
    try:
        return _train_locked(cfg, ddp, device, run_dir, data, resume=resume, progress=progress,
                             stop_after_steps=stop_after_steps, wrote=wrote)
    except BaseException:
        if lock is not None and wrote:
            # Failed before any checkpoint: its config.yaml and log would refuse (or, on --resume,
            # bind) the corrected rerun; the error line says what happened.
            discard_unsaved_run(run_dir)
        raise
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg: Config, ddp: Dist, device: torch.device, run_dir: Path, data: TrainData, *, resume: bool,
                  progress: bool, stop_after_steps: int | None, wrote: list | None = None) -> TrainResult:
    source, annotations, train_set, val_set = data.source, data.annotations, data.train_set, data.val_set
    feature_dim, data_record = data.feature_dim, data.record
    K = annotations.num_classes
    # Resume compares the request with the run's record before a single file is written.
    _on_main(ddp, lambda: check_resume(run_dir, cfg, data_record) if resume else None)
    if ddp.main:
        save_config(cfg, run_dir / "config.yaml")
        if wrote is not None:
            wrote.append(True)
    if ddp.world_size > 1:
        dist.barrier()

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, K, feature_dim)
    resuming = resume and (run_dir / "last.pt").exists()
    standardize, stats = cfg.model.standardize, data.stats
    if standardize != "none" and not resuming:  # a resumed run takes them from its checkpoint
        model.set_feature_stats(stats.mean, stats.scale(standardize))
        standardised = (f", features standardised ({standardize}) over {stats.count:,} training snippet"
                        + ("s" if stats.count != 1 else ""))
    else:
        standardised = ", features as read" if standardize == "none" else ""
    model = model.to(device)
    n_params = count_parameters(model)
    optimizer = _optimizer(cfg, model)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema))
           if cfg.train.ema > 0 else None)
    meta = model_meta(cfg, annotations.classes, feature_dim)
    history: list[dict] = []
    start_epoch, step, best = 0, 0, None

    if resuming:
        last = run_dir / "last.pt"
        state = load_checkpoint(last)
        check_training_state(state, last)
        try:
            model.load_state_dict(with_feature_stats(state["model"], feature_dim))
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(with_feature_stats(state["ema"], feature_dim, "module."))
            torch.set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GsmtError(last, f"cannot resume: the training state does not fit this run ({first})") from None
        start_epoch, step = state["epoch"], state["step"]
        history, best = state["history"], state.get("best")
    if resume and ddp.main:
        # Lines past the checkpoint (a kill between an epoch's log line and its checkpoint) are
        # logged again by this run: the earlier ones go.
        trim_log(run_dir, start_epoch)
    # Read once, before the first epoch (None: the DataLoader reads the samples every epoch).
    resident = load_resident(train_set, device, cfg.train.resident, cfg.train.resident_memory_fraction)
    logger = _Logger(run_dir, ddp.main)
    if ddp.main:
        if start_epoch:
            logger.log({"event": "resumed", "from_epoch": start_epoch})
            print(f"resumed from epoch {start_epoch} ({run_dir / 'last.pt'})")
        print(f"gsmt train: {n_params:,} parameters, {counted(len(train_set), 'training sample')} "
              f"({counted(len(data.fit_videos), 'video')}), {counted(len(data.select_videos), 'video')} for model "
              "selection, "
              f"mode {cfg.data.temporal_mode}, T={cfg.data.T}, K={K}, D={feature_dim}{standardised}, device {device}"
              + (f", samples resident in {resident.where} memory" if resident is not None else ""))

    metric = cfg.train.select_metric if val_set is not None else None
    net = DistributedDataParallel(model) if ddp.world_size > 1 else model
    # One sampler for any world size: the same seeded permutation is split across ranks, so a
    # global batch holds the same samples whatever the number of processes; when the sample count
    # does not divide by the world size, DistributedSampler repeats up to world_size - 1 samples of
    # the permutation's start in the last batch (padding, so every rank takes the same steps).
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
        # same seed and settings give the same model (tests/engine/test_resident.py).
        loader = DataLoader(range(len(train_set)), batch_size=cfg.train.batch_size // ddp.world_size,
                            sampler=sampler, drop_last=False)
    ctx = StepContext(cfg=cfg, ddp=ddp, device=device, model=model,
                      forward=torch.compile(net) if cfg.train.compile else net, optimizer=optimizer, ema=ema,
                      num_classes=K, steps_per_epoch=len(loader))
    steps = Steps(step=step)
    read_empty: set[str] = set()  # videos without snippet rows, as the batches report them
    saved_epoch = start_epoch or None  # the epoch of last.pt
    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        net.train()
        run = train_one_epoch(ctx, loader, resident, steps, epoch=epoch, read_empty=read_empty,
                              progress=progress and ddp.main, stop_after_steps=stop_after_steps)
        step = steps.step
        if run.diverged:
            logger.log({"event": "diverged", "epoch": epoch + 1, "step": step + 1, "nonfinite_steps": steps.streak})
            logger.close()
            raise _diverged(run_dir, f"the loss was NaN/Inf in {steps.streak} consecutive steps (up to step "
                                     f"{step + 1}, epoch {epoch + 1}; train.max_nonfinite_steps="
                                     f"{ctx.max_streak})", saved_epoch)
        if run.stopped:
            logger.close()
            return TrainResult(run_dir, epoch, history, None, n_params, model)
        sums, seen, finite_steps, nonfinite = run.sums, run.seen, run.finite_steps, run.nonfinite
        if finite_steps == 0:
            logger.log({"event": "diverged", "epoch": epoch + 1, "step": step, "nonfinite_steps": nonfinite})
            logger.close()
            raise _diverged(run_dir, f"no step of epoch {epoch + 1} had a finite loss ({nonfinite} steps)",
                            saved_epoch)
        n_batches = finite_steps
        record = {"epoch": epoch + 1, "split": "train", "step": step,
                  "lr": optimizer.param_groups[0]["lr"],
                  "samples_per_s": seen / max(1e-9, run.seconds),
                  **_loss_record(sums.totals(), n_batches)}
        if nonfinite:
            record["nonfinite_steps"] = nonfinite
        record = _average_across_ranks(record, ddp)
        if steps.streak or not all_finite(model) or (ema is not None and not all_finite(ema.module)):
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
    if steps.streak:
        raise _diverged(run_dir, f"the loss was NaN/Inf in the last {steps.streak} steps of the run", saved_epoch)
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
        batch = to_device(batch, device)
        outputs = {k: v.float() for k, v in model(batch["features"], batch["valid"], **pair_inputs(batch)).items()}
        _, logs = gsmt_loss(outputs, batch, cfg.loss)
        total.add(logs)
        n += 1
        target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
        fg = (target >= 0) & (target < num_classes)
        fg_hits += ((outputs["cls_logits"].argmax(1) == target) & fg).sum()
        # Counted without indexing by `fg` (which would wait for the device to learn the size).
        fg_per_class.scatter_add_(0, torch.where(fg, target, 0).reshape(-1), fg.reshape(-1).to(torch.int64))
        iou = None
        if "mask_logits" in outputs:
            iou = mask_iou(outputs["mask_logits"], batch["mask_target"], fg, batch["valid"])
        elif "pair_mask_logits" in outputs:
            iou = pair_mask_iou(outputs["pair_mask_logits"], batch["pair_mask"], batch["pair_class"], batch["valid"])
        if iou is not None:
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
