"""GSMT training losses (DESIGN.md section 5): classification (Eq. 5) and mask (Eq. 6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gsmt.errors import GsmtError
from gsmt.schema import bounded


@dataclass
class LossConfig:
    """Loss switches and weights; defaults are the paper's (Table 5 ablations switch terms off)."""

    focal: bool = True
    logistic: bool = True
    lambda1: float = bounded(0.4, ge=0, le=1)
    gamma: float = bounded(2.0, ge=0)
    alpha: float = bounded(10.0, ge=0)
    boundary: bool = True
    dice: bool = True
    lambda2: float = bounded(0.4, ge=0)
    erosion_kernel: int = bounded(7, ge=1, odd=True)
    background_mask: bool = False
    mask_weight: float = bounded(1.0, ge=0)
    # c of the L2 fallback: "length" = the mask length T (DESIGN.md), "foreground" = the number of
    # foreground positions of the target (the paper's "ground-truth mask length" read literally).
    l2_norm: str = bounded("length", choices=("length", "foreground"))
    # Weight of the boundary head's own supervision (models with `boundary_gate`): a class-balanced
    # BCE on "an instance boundary lies between snippets j and j+1".
    boundary_head_weight: float = bounded(1.0, ge=0)
    # Multi-label models (model.labels: multi): a sigmoid focal loss per class (`gamma` above) whose
    # positives weigh focal_alpha and negatives 1 - focal_alpha, summed over classes and averaged
    # over foreground snippets (RetinaNet's form, as ActionFormer uses it).
    focal_alpha: float = bounded(0.25, ge=0, le=1)
    eps: float = bounded(1e-8, gt=0)

    def __post_init__(self) -> None:
        if self.erosion_kernel < 1 or self.erosion_kernel % 2 == 0:
            raise GsmtError("loss.erosion_kernel", f"must be a positive odd integer, got {self.erosion_kernel}")
        if not 0.0 <= self.lambda1 <= 1.0:
            raise GsmtError("loss.lambda1", f"must lie in [0, 1], got {self.lambda1}")
        if self.l2_norm not in ("length", "foreground"):
            raise GsmtError("loss.l2_norm", f"must be length or foreground, got {self.l2_norm!r}")


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A zero loss still connected to the graph, so backward() and DDP see every parameter."""
    return x.sum() * 0.0


def erode(x: torch.Tensor, k: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable erosion along the last axis: -maxpool_k(-x), stride 1.

    Positions outside the sequence and padded positions (valid False) count as +inf, so they never
    lower the minimum; the output is 0 at padded positions."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    neg = -flat
    if valid is not None:
        ok = valid.expand(shape).reshape(-1, 1, shape[-1])
        neg = torch.where(ok, neg, torch.full((), -math.inf, dtype=x.dtype, device=x.device))
    neg = F.pad(neg, (k // 2, k // 2), value=-math.inf)
    out = -F.max_pool1d(neg, k, stride=1).reshape(shape)
    if valid is not None:
        out = torch.where(valid.expand(shape), out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out


def boundary_band(x: torch.Tensor, k: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """B(x) = x - erode_k(x): the inner boundary band of a (soft) mask; 0 at padded positions."""
    band = x - erode(x, k, valid)
    if valid is not None:
        band = torch.where(valid.expand(x.shape), band, torch.zeros((), dtype=x.dtype, device=x.device))
    return band


def _mean(x: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    """Mean over the local items, or sum / normalizer (DDP: global count per rank)."""
    return x.mean() if normalizer is None else x.sum() / normalizer


def classification_loss(cls_logits: torch.Tensor, cls_target: torch.Tensor, cfg: LossConfig,
                        normalizer: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5 per snippet, averaged over snippets with target >= 0 (target -1 = ignored).

    `normalizer` replaces the local snippet count in the average (DDP: the global count per rank).

    With both terms on: lambda1 * focal + (1 - lambda1) * logistic; with one on, that term alone."""
    num_out = cls_logits.shape[1]
    K = num_out - 1
    logits = cls_logits.transpose(1, 2).reshape(-1, num_out)  # [B*T, K+1]
    target = cls_target.reshape(-1)
    keep = target >= 0
    if not bool(keep.any()) or not (cfg.focal or cfg.logistic):
        zero = _zero_like_graph(cls_logits)
        return zero, {"focal": zero.detach(), "logistic": zero.detach(), "cls": zero.detach()}
    z = logits[keep]
    y = target[keep][:, None]

    logp_y = F.log_softmax(z, dim=1).gather(1, y).squeeze(1)
    focal = -((1.0 - logp_y.exp()) ** cfg.gamma) * logp_y

    # r = sigmoid(z) is monotonic in z, so the hardest negatives are the largest logits k != y.
    n_hard = max(1, math.ceil(K / 10))
    neg_logits = z.scatter(1, y, -math.inf).topk(n_hard, dim=1).values
    logistic = -F.logsigmoid(z.gather(1, y).squeeze(1)) - cfg.alpha / n_hard * F.logsigmoid(-neg_logits).sum(1)

    return _eq5(focal, logistic, cfg, normalizer)


def _eq5(focal: torch.Tensor, logistic: torch.Tensor, cfg: LossConfig,
         normalizer: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5 from its per-snippet terms: lambda1 * focal + (1 - lambda1) * logistic (or the one term
    that is on), averaged over snippets (or / `normalizer`), with both terms' means for the logs."""
    if cfg.focal and cfg.logistic:
        per_snippet = cfg.lambda1 * focal + (1.0 - cfg.lambda1) * logistic
    else:
        per_snippet = focal if cfg.focal else logistic
    loss = _mean(per_snippet, normalizer)
    parts = {"focal": _mean(focal, normalizer).detach(), "logistic": _mean(logistic, normalizer).detach(),
             "cls": loss.detach()}
    return loss, parts


def mask_loss(mask_logits: torch.Tensor, mask_target: torch.Tensor, fg: torch.Tensor, valid: torch.Tensor,
              cfg: LossConfig, bg: torch.Tensor | None = None,
              normalizer: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 6 averaged over foreground columns: boundary term (soft band IoU, or the L2 fallback when
    the hard bands do not overlap) + lambda2 * dice. Column t of [B, T(i), T(t)] is one mask.

    `bg` [B, T] marks background columns, supervised towards all-zero with BCE when
    `cfg.background_mask` is on (added with weight 1)."""
    valid = valid.to(torch.bool)
    # Columns become rows: cols[b, t, i] = mask_logits[b, i, t].
    cols = mask_logits.transpose(1, 2)
    gcols = mask_target.transpose(1, 2).to(mask_logits.dtype)
    take = fg.to(torch.bool) & valid
    zero = _zero_like_graph(mask_logits)
    parts = {"boundary": zero.detach(), "dice": zero.detach(), "fallback_fraction": zero.detach()}
    loss = zero
    if bool(take.any()) and (cfg.boundary or cfg.dice):
        ok = valid[:, None, :].expand_as(cols)[take]  # [N, T]: valid positions of each column
        column_loss, column_parts = mask_columns_loss(cols[take], gcols[take], ok, cfg, normalizer)
        loss = loss + column_loss
        parts.update(column_parts)
    if cfg.background_mask and bg is not None:
        take_bg = bg.to(torch.bool) & valid
        if bool(take_bg.any()):
            ok = valid[:, None, :].expand_as(cols)[take_bg]
            bce = F.binary_cross_entropy_with_logits(cols[take_bg], torch.zeros_like(cols[take_bg]),
                                                     reduction="none")
            background = (bce * ok).sum() / ok.sum()
            loss = loss + background
            parts["background"] = background.detach()
    parts["mask"] = loss.detach()
    return loss, parts


def mask_columns_loss(logits: torch.Tensor, target: torch.Tensor, ok: torch.Tensor, cfg: LossConfig,
                      normalizer: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 6 of N masks given as rows: logits, targets and valid positions `ok`, all [N, T]; the
    boundary term (soft band IoU, or the L2 fallback when the hard bands do not overlap) plus
    lambda2 * dice, averaged over the N masks (or summed / `normalizer`)."""
    zeros = torch.zeros((), dtype=logits.dtype, device=logits.device)
    m = torch.where(ok, torch.sigmoid(logits), zeros)
    g = torch.where(ok, target.to(logits.dtype), zeros)
    k = cfg.erosion_kernel
    per_column = torch.zeros(m.shape[0], dtype=m.dtype, device=m.device)
    parts = {}
    if cfg.boundary:
        bm, bg_band = boundary_band(m, k, ok), boundary_band(g, k, ok)
        hard_overlap = (boundary_band((m > 0.5).to(m.dtype), k, ok) * bg_band).sum(1)
        fallback = hard_overlap == 0
        inter = (bm * bg_band).sum(1)
        union = (bm + bg_band - bm * bg_band).sum(1)
        c = (g.sum(1) if cfg.l2_norm == "foreground" else ok.sum(1)).clamp(min=1).to(m.dtype)
        l2 = ((m - g) ** 2).sum(1) / c
        boundary = torch.where(fallback, l2, 1.0 - inter / (union + cfg.eps))
        per_column = per_column + boundary
        parts["boundary"] = _mean(boundary, normalizer).detach()
        parts["fallback_fraction"] = _mean(fallback.to(m.dtype), normalizer).detach()
    if cfg.dice:
        dice = 1.0 - (m * g).sum(1) / ((m * m + g * g).sum(1) + cfg.eps)
        per_column = per_column + cfg.lambda2 * dice
        parts["dice"] = _mean(dice, normalizer).detach()
    return _mean(per_column, normalizer), parts


def multilabel_classification_loss(cls_logits: torch.Tensor, label_target: torch.Tensor, keep: torch.Tensor,
                                   cfg: LossConfig, normalizer: float | None = None
                                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sigmoid focal loss of cls_logits [B, K, T] against every label of each snippet
    (`label_target` [B, K, T] in {0, 1}) over the snippets `keep` [B, T] (valid, not ignored):
    summed over classes and snippets, divided by the foreground snippets (at least 1; or `normalizer`)."""
    z = cls_logits.transpose(1, 2)[keep]  # [N, K]
    y = label_target.transpose(1, 2)[keep].to(z.dtype)
    if z.numel() == 0:
        zero = _zero_like_graph(cls_logits)
        return zero, {"focal": zero.detach(), "cls": zero.detach()}
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = torch.where(y > 0, torch.sigmoid(z), torch.sigmoid(-z))
    alpha_t = torch.where(y > 0, cfg.focal_alpha, 1.0 - cfg.focal_alpha)
    focal = alpha_t * (1.0 - p_t) ** cfg.gamma * ce
    count = (y.sum(1) > 0).sum().clamp(min=1).to(z.dtype) if normalizer is None else normalizer
    loss = focal.sum() / count
    return loss, {"focal": loss.detach(), "cls": loss.detach()}


def label_set_classification_loss(cls_logits: torch.Tensor, label_target: torch.Tensor, keep: torch.Tensor,
                                  cfg: LossConfig, normalizer: float | None = None
                                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5 of a softmax over K classes + background (cls_logits [B, K+1, T]) against every label of
    each snippet (`label_target` [B, K, T] in {0, 1}; none: background) over the snippets `keep`
    [B, T]: the target is split evenly over a snippet's labels (focal: the labels' terms weighted
    1/n; logistic: their mean, against the hardest non-labels), averaged over snippets (or
    `normalizer`). With one label per snippet it is `classification_loss` itself."""
    num_out = cls_logits.shape[1]
    z = cls_logits.transpose(1, 2)[keep]  # [N, K+1]
    y = label_target.transpose(1, 2)[keep].to(z.dtype)
    if z.numel() == 0 or not (cfg.focal or cfg.logistic):
        zero = _zero_like_graph(cls_logits)
        return zero, {"focal": zero.detach(), "logistic": zero.detach(), "cls": zero.detach()}
    y = torch.cat([y, (y.sum(1, keepdim=True) == 0).to(z.dtype)], dim=1)  # background: no label
    q = y / y.sum(1, keepdim=True)
    logp = F.log_softmax(z, dim=1)
    focal = -(q * (1.0 - logp.exp()) ** cfg.gamma * logp).sum(1)
    n_hard = max(1, math.ceil((num_out - 1) / 10))
    neg_logits = z.masked_fill(y > 0, -math.inf).topk(n_hard, dim=1).values
    logistic = -(q * F.logsigmoid(z)).sum(1) - cfg.alpha / n_hard * F.logsigmoid(-neg_logits).sum(1)
    return _eq5(focal, logistic, cfg, normalizer)


def actionness_classification_loss(action_logits: torch.Tensor, cls_logits: torch.Tensor, label_target: torch.Tensor,
                                   keep: torch.Tensor, cfg: LossConfig, normalizers: dict[str, float] | None = None
                                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Classification loss of `model.label_scores: actionness`: Eq. 5 of action vs background
    (`action_logits` [B, 2, T], foreground row first) over the snippets `keep` [B, T] (normaliser
    `normalizers["action"]`), plus the sigmoid focal loss of every label (`cls_logits` [B, K, T]
    against `label_target` [B, K, T]) over the foreground snippets only (`normalizers["cls"]`)."""
    normalizers = normalizers or {}
    fg = keep & (label_target.sum(1) > 0)
    action_target = torch.where(keep, (~fg).to(torch.int64), torch.full_like(keep, -1, dtype=torch.int64))
    action, action_parts = classification_loss(action_logits, action_target, cfg, normalizers.get("action"))
    labels, label_parts = multilabel_classification_loss(cls_logits, label_target, fg, cfg, normalizers.get("cls"))
    parts = {"focal": action_parts["focal"], "logistic": action_parts["logistic"], "action": action.detach(),
             "label_focal": label_parts["focal"], "cls": (action + labels).detach()}
    return action + labels, parts


def mask_iou(mask_logits: torch.Tensor, mask_target: torch.Tensor, fg: torch.Tensor,
             valid: torch.Tensor) -> torch.Tensor:
    """IoU of each foreground column's mask thresholded at 0.5 with its target, over valid positions:
    [N] for the N foreground columns. A diagnostic of mask quality that, unlike the mask loss (whose
    L2 fallback makes an empty or constant mask cheap), rises only when masks fit their actions."""
    valid = valid.to(torch.bool)
    take = fg.to(torch.bool) & valid
    ok = valid[:, None, :].expand(-1, valid.shape[1], -1)[take]
    return rows_iou(mask_logits.transpose(1, 2)[take], mask_target.transpose(1, 2)[take], ok)


def pair_mask_iou(pair_mask_logits: torch.Tensor, pair_mask: torch.Tensor, pair_class: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
    """`mask_iou` of a multi-label model: [N] for the N (snippet, class) pairs (class >= 0)."""
    take = pair_class >= 0
    ok = valid.to(torch.bool)[:, None, :].expand_as(pair_mask_logits)[take]
    return rows_iou(pair_mask_logits[take], pair_mask[take], ok)


def rows_iou(logits: torch.Tensor, target: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """IoU over `ok` of each row of logits > 0 with target > 0.5 (all [N, T]) -> [N]."""
    pred = (logits > 0) & ok
    gold = (target > 0.5) & ok
    return (pred & gold).sum(1) / (pred | gold).sum(1).clamp(min=1)


def boundary_targets(cls_target: torch.Tensor, mask_target: torch.Tensor, valid: torch.Tensor,
                     num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(breaks, usable), both bool [B, T-1]: snippets j and j+1 belong to different instances (or one
    is background), and whether both are valid and not ignored."""
    usable = valid[:, 1:] & valid[:, :-1] & (cls_target[:, 1:] >= 0) & (cls_target[:, :-1] >= 0)
    fg = (cls_target >= 0) & (cls_target < num_classes)
    other_instance = (mask_target[:, :, 1:] != mask_target[:, :, :-1]).any(dim=1)
    breaks = (cls_target[:, 1:] != cls_target[:, :-1]) | (fg[:, 1:] & fg[:, :-1] & other_instance)
    return breaks & usable, usable


def boundary_head_loss(boundary_logits: torch.Tensor, breaks: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE: the mean over boundaries and the mean over non-boundaries, averaged."""
    bce = F.binary_cross_entropy_with_logits(boundary_logits.float(), breaks.float(), reduction="none")
    pos, neg = breaks & usable, ~breaks & usable
    loss = _zero_like_graph(boundary_logits)
    for part in (pos, neg):
        if bool(part.any()):
            loss = loss + 0.5 * bce[part].mean()
    return loss


def gsmt_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: LossConfig,
              normalizers: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total L = L_c + mask_weight * L_m; logs hold every term, plus `total`, as a detached 0-d
    tensor on the loss's device: turning them into floats here would wait for the device at every
    step, so callers sum them on the device and read them once (gsmt.engine.trainer.LossSums).

    `normalizers` {"cls": n, "mask": n} replace the local counts of snippets and foreground columns
    (DDP: global count / world size, so averaged rank gradients equal the one-process gradient)."""
    normalizers = normalizers or {}
    cls_logits = outputs["cls_logits"]
    cls_target = batch["cls_target"].to(cls_logits.device)
    valid = batch["valid"].to(device=cls_logits.device, dtype=torch.bool)
    # Padded snippets are ignored whatever their stored target.
    cls_target = torch.where(valid, cls_target, torch.full_like(cls_target, -1))
    if "label_target" in batch:
        return _multilabel_loss(outputs, batch, cls_target, valid, cfg, normalizers)
    K = cls_logits.shape[1] - 1
    total, parts = classification_loss(cls_logits, cls_target, cfg, normalizers.get("cls"))
    if "mask_logits" in outputs:
        fg = (cls_target >= 0) & (cls_target < K)
        bg = cls_target == K
        lm, mask_parts = mask_loss(outputs["mask_logits"], batch["mask_target"].to(cls_logits.device),
                                   fg, valid, cfg, bg=bg, normalizer=normalizers.get("mask"))
        total = total + cfg.mask_weight * lm
        parts.update(mask_parts)
    if "boundary_logits" in outputs:
        breaks, usable = boundary_targets(cls_target, batch["mask_target"].to(cls_logits.device), valid, K)
        lb = boundary_head_loss(outputs["boundary_logits"], breaks, usable)
        total = total + cfg.boundary_head_weight * lb
        parts["boundary_head"] = lb.detach()
    logs = dict(parts)
    logs["total"] = total.detach()
    return total, logs


def _multilabel_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cls_target: torch.Tensor,
                     valid: torch.Tensor, cfg: LossConfig, normalizers: dict[str, float]
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`gsmt_loss` of a multi-label model: the sigmoid focal loss of every label (or, with a background
    row, `label_set_classification_loss`), and Eq. 6 over the
    masks of every (snippet, class) pair (`pair_mask_logits` [B, P, T], padding: class -1)."""
    cls_logits = outputs["cls_logits"]
    device = cls_logits.device
    label_target = batch["label_target"].to(device)
    kept = cls_target >= 0
    if "action_logits" in outputs:  # `model.label_scores: actionness`
        total, parts = actionness_classification_loss(outputs["action_logits"], cls_logits, label_target, kept, cfg,
                                                      normalizers)
    else:
        # A background row (K+1 outputs): the softmax head of `model.label_scores: softmax`.
        scored = label_set_classification_loss if cls_logits.shape[1] == label_target.shape[1] + 1 \
            else multilabel_classification_loss
        total, parts = scored(cls_logits, label_target, kept, cfg, normalizers.get("cls"))
    if "pair_mask_logits" in outputs:
        logits = outputs["pair_mask_logits"]
        pair_class = batch["pair_class"].to(device)
        take = pair_class >= 0  # [B, P]
        zero = _zero_like_graph(logits)
        mask_parts = {"boundary": zero.detach(), "dice": zero.detach(), "fallback_fraction": zero.detach()}
        lm = zero
        if bool(take.any()) and (cfg.boundary or cfg.dice):
            ok = valid[:, None, :].expand(-1, logits.shape[1], -1)[take]
            lm, column_parts = mask_columns_loss(logits[take], batch["pair_mask"].to(device)[take], ok, cfg,
                                                 normalizers.get("mask"))
            mask_parts.update(column_parts)
        mask_parts["mask"] = lm.detach()
        total = total + cfg.mask_weight * lm
        parts.update(mask_parts)
    logs = dict(parts)
    logs["total"] = total.detach()
    return total, logs
