"""One epoch of training: optimiser steps on a loader's batches, NaN/Inf steps skipped, the loss
terms summed on the device and read once (`gsmt.engine.trainer.train` runs the epochs)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from tqdm import tqdm

from gsmt.config import Config
from gsmt.engine.distributed import Dist
from gsmt.losses import gsmt_loss


@dataclass
class StepContext:
    """What every optimiser step of a run uses; `forward` is the (DDP-wrapped, compiled) model."""

    cfg: Config
    ddp: Dist
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: torch.nn.Module | None
    num_classes: int
    steps_per_epoch: int

    @property
    def max_streak(self) -> int:
        return max(1, self.cfg.train.max_nonfinite_steps)

    @property
    def use_bf16(self) -> bool:
        return self.device.type == "cuda" and self.cfg.train.bf16


@dataclass
class Steps:
    """Counters that run across epochs: optimiser steps taken, and consecutive NaN/Inf steps."""

    step: int = 0
    streak: int = 0


@dataclass
class Epoch:
    sums: LossSums  # the finite steps' loss terms, still on the device
    seen: int  # samples, all ranks
    seconds: float
    finite_steps: int
    nonfinite: int  # steps skipped for a NaN/Inf loss or gradient
    diverged: bool = False  # the streak reached train.max_nonfinite_steps: the run must stop
    stopped: bool = False  # `stop_after_steps` reached (tests of resume)


def train_one_epoch(ctx: StepContext, loader, resident, steps: Steps, *, epoch: int, read_empty: set[str],
                    progress: bool, stop_after_steps: int | None = None) -> Epoch:
    """One pass over `loader` (batches, or sample indices into `resident`); `steps` is advanced."""
    cfg, ddp, device, model, optimizer, ema = ctx.cfg, ctx.ddp, ctx.device, ctx.model, ctx.optimizer, ctx.ema
    forward, use_bf16 = ctx.forward, ctx.use_bf16
    sums = LossSums()  # read once, at the end of the epoch
    seen, t0 = 0, time.perf_counter()
    next_postfix = t0  # the progress bar shows the loss at most once a second: each read waits
    finite_steps = nonfinite = 0  # optimiser steps of this epoch taken / skipped (NaN/Inf)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="batch",
               disable=not progress, leave=False)
    for batch in bar:
        if resident is not None:  # a batch of sample indices
            batch = resident.batch(batch, device)
        elif bool(batch["no_snippets"].any()):  # a host tensor (the DataLoader's): no wait for the device
            read_empty.update(v for v, e in zip(batch["video_id"], batch["no_snippets"].tolist()) if e)
        batch = to_device(batch, device)
        for group in optimizer.param_groups:
            group["lr"] = cfg.train.lr * lr_factor(cfg, steps.step, ctx.steps_per_epoch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            outputs = forward(batch["features"], batch["valid"], **pair_inputs(batch))
        outputs = {k: v.float() for k, v in outputs.items()}
        loss, logs = gsmt_loss(outputs, batch, cfg.loss, normalizers=_normalizers(batch, ddp, ctx.num_classes,
                                                                           outputs["cls_logits"].shape[1]))
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
            steps.streak = 0
            finite_steps += 1
            sums.add(logs)
        else:  # skipped: the weights stay those of the last finite step
            optimizer.zero_grad(set_to_none=True)
            steps.streak += 1
            nonfinite += 1
            if steps.streak >= ctx.max_streak:
                return Epoch(sums, seen, time.perf_counter() - t0, finite_steps, nonfinite, diverged=True)
        steps.step += 1
        n = int(batch["features"].shape[0]) * ddp.world_size
        seen += n
        if not bar.disable and time.perf_counter() >= next_postfix:  # a logging point: reads the loss
            bar.set_postfix(loss=f"{float(logs['total']):.3f}",
                            samples_s=f"{seen / (time.perf_counter() - t0):.1f}")
            next_postfix = time.perf_counter() + 1.0
        if stop_after_steps is not None and steps.step >= stop_after_steps:
            return Epoch(sums, seen, time.perf_counter() - t0, finite_steps, nonfinite, stopped=True)
    return Epoch(sums, seen, time.perf_counter() - t0, finite_steps, nonfinite)


def pair_inputs(batch: dict) -> dict:
    """The (snippet, class) pairs whose masks a multi-label model is trained on, as `forward` keywords."""
    if "pair_snippet" not in batch:
        return {}
    return {"pair_snippet": batch["pair_snippet"], "pair_class": batch["pair_class"]}


def all_finite(module: torch.nn.Module) -> bool:
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


def lr_factor(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay (or constant) over the whole run, per optimiser step."""
    warmup = cfg.train.warmup_epochs * steps_per_epoch
    total = max(1, cfg.train.epochs * steps_per_epoch)
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if cfg.train.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _agree(ok: torch.Tensor, ddp: Dist) -> bool:
    """True only when the device flag `ok` (a bool tensor) holds on every rank."""
    if ddp.world_size == 1:
        return bool(ok)
    flag = (~ok).to(torch.float32).reshape(1)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() == 0.0)


def _normalizers(batch: dict, ddp: Dist, num_classes: int, num_scores: int) -> dict | None:
    """Per-rank loss normalisers from global counts, so that DDP's gradient average equals the
    gradient of one process on the whole global batch (`num_scores`: the classifier's outputs, K
    for a sigmoid per class, K + 1 for a softmax with background)."""
    if ddp.world_size == 1:
        return None
    target = torch.where(batch["valid"], batch["cls_target"], torch.full_like(batch["cls_target"], -1))
    fg = (target >= 0) & (target < num_classes)
    kept = (target >= 0).sum()
    if "pair_class" in batch:  # multi-label: classes per (foreground) snippet, masks per pair
        per = fg.sum() if num_scores == num_classes else kept  # sigmoid focal: per foreground snippet
        counts = torch.stack([per, (batch["pair_class"] >= 0).sum(), kept]).to(torch.float64)
    else:
        counts = torch.stack([kept, fg.sum(), kept]).to(torch.float64)
    dist.all_reduce(counts)
    counts = (counts / ddp.world_size).clamp(min=1.0)
    # Read on the host (a wait per step, DDP only): as Python numbers they divide the loss sums as
    # they always have; 0-d device tensors would not give the same bits (CUDA divides by a host
    # scalar as a multiplication by its reciprocal, by a tensor as a true division).
    # "action": the action-vs-background term of `label_scores: actionness`, over every kept snippet.
    return {"cls": float(counts[0]), "mask": float(counts[1]), "action": float(counts[2])}
