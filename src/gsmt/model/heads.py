"""TAL heads (paper section 3.2): per-snippet classification and the global segmentation mask."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gsmt.model.embedding import zero_padded


class ClassificationHead(nn.Module):
    """One 1-D conv C -> K+1 (paper Table 8: one layer is best); kernel 3 gives each snippet
    its neighbours as context at the cost of a few parameters. `outputs=K` (multi-label: one
    sigmoid per class, no background row) for `labels="multi"`."""

    def __init__(self, C: int, num_classes: int, kernel_size: int = 3, outputs: int | None = None):
        super().__init__()
        self.conv = nn.Conv1d(C, num_classes + 1 if outputs is None else outputs, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.conv(zero_padded(x, valid))


def _two_convs(conv1: nn.Conv1d, conv2: nn.Conv1d, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """conv, ReLU, conv, ReLU; padded snippets are re-zeroed after each k=3 conv so that a valid
    snippet's features do not depend on whether its neighbour is padding or the sequence edge."""
    h = zero_padded(F.relu(conv1(zero_padded(x, valid))), valid)
    return zero_padded(F.relu(conv2(h)), valid)


class MaskHead(nn.Module):
    """conv(k=3) C->C, ReLU, conv(k=3) C->C, ReLU, conv(k=1) C->T: output [B, T(i), T(t)], whose
    column t is the full-length mask logit predicted from snippet t (paper Eq. 4)."""

    def __init__(self, C: int, T: int):
        super().__init__()
        self.conv1 = nn.Conv1d(C, C, 3, padding=1)
        self.conv2 = nn.Conv1d(C, C, 3, padding=1)
        self.out = nn.Conv1d(C, T, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.out(_two_convs(self.conv1, self.conv2, x, valid))


class PairwiseMaskHead(nn.Module):
    """The same two convs, then logit(i, t) = <query_i, key_t> / sqrt(d) + bias(i - t): whether
    position i belongs to the action of snippet t, as an affinity between the two snippets plus a
    learned function of their offset. Unlike the C->T readout it is translation-equivariant, so a
    column follows its action's extent instead of recalling absolute positions (BENCHMARKS.md)."""

    def __init__(self, C: int, T: int, dim: int = 64):
        super().__init__()
        self.T, self.dim = T, dim
        self.conv1 = nn.Conv1d(C, C, 3, padding=1)
        self.conv2 = nn.Conv1d(C, C, 3, padding=1)
        self.query = nn.Conv1d(C, dim, 1)
        self.key = nn.Conv1d(C, dim, 1)
        # bias(o) = offset_bias[o] - slope * |o| (one slope per direction, ALiBi-like). The table can
        # express any offset profile but each entry learns alone; the two shared slopes learn the
        # decay with distance within a few hundred steps, which is what keeps a column on its own
        # instance rather than on every instance of its class.
        self.offset_bias = nn.Parameter(torch.zeros(2 * T - 1))
        self.slopes = nn.Parameter(torch.zeros(2))  # [forward (i > t), backward (i < t)]
        index = torch.arange(T, device="cpu")  # not on the meta device: see RelativeBias
        offset = index[:, None] - index[None, :]
        self.register_buffer("offset_index", offset + T - 1, persistent=False)
        self.register_buffer("distance", torch.stack([offset.clamp(min=0), (-offset).clamp(min=0)]).float(),
                             persistent=False)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = _two_convs(self.conv1, self.conv2, x, valid)
        q, k = self.query(h), self.key(h)  # [B, d, T]
        affinity = torch.einsum("bdi,bdt->bit", q, k) / math.sqrt(self.dim)
        bias = self.offset_bias[self.offset_index] - torch.einsum("s,sit->it", self.slopes, self.distance)
        return affinity + bias.to(affinity.dtype)


class ClassPairwiseMaskHead(PairwiseMaskHead):
    """The pairwise head conditioned on a class: the mask of (snippet t, class c) scores position i
    as `<query_i, key_t + class_c> / sqrt(d) + bias(i - t)`. The class term `<query_i, class_c>`
    lets the columns of one snippet differ by class, so a snippet inside a long instance of one
    class and a short one of another draws each instance's own extent (issue 32). Columns are
    computed only for the (snippet, class) pairs asked for ([B, P] -> [B, P, T]): memory grows with
    the pairs, never with K x T x T. `num_classes=0`: no class term, the columns of one snippet
    are its one mask whatever the class."""

    def __init__(self, C: int, T: int, num_classes: int, dim: int = 64):
        super().__init__(C, T, dim)
        self.class_keys = None
        if num_classes == 0:
            return
        weight = torch.empty(num_classes, dim)
        self.class_keys = nn.Embedding(num_classes, dim, _weight=weight)
        if weight.device.type != "meta":  # a meta model (checkpoint checks) draws nothing: no dynamo import
            nn.init.normal_(weight)  # the draw nn.Embedding's own init makes, so later parameters keep theirs
            nn.init.normal_(weight, std=dim ** -0.5)

    def queries_keys(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, d, T] queries and keys of every snippet (the pairs' columns are built from these)."""
        h = _two_convs(self.conv1, self.conv2, x, valid)
        return self.query(h), self.key(h)

    def pair_logits(self, query: torch.Tensor, key: torch.Tensor, snippet: torch.Tensor,
                    cls: torch.Tensor) -> torch.Tensor:
        """Mask logits [B, P, T] of the pairs (snippet[b, p], cls[b, p]) (both int64 [B, P], in range)."""
        keys = torch.gather(key, 2, snippet[:, None, :].expand(-1, key.shape[1], -1))  # [B, d, P]
        if self.class_keys is not None:
            keys = keys + self.class_keys(cls).transpose(1, 2).to(keys.dtype)
        affinity = torch.einsum("bdp,bdi->bpi", keys, query) / math.sqrt(self.dim)
        offset = torch.arange(self.T, device=snippet.device)[None, None, :] - snippet[:, :, None]  # i - t
        bias = (self.offset_bias[offset + self.T - 1]
                - self.slopes[0] * offset.clamp(min=0) - self.slopes[1] * (-offset).clamp(min=0))
        return affinity + bias.to(affinity.dtype)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        raise TypeError("ClassPairwiseMaskHead: use queries_keys() and pair_logits()")


class BoundaryHead(nn.Module):
    """conv(k=3) C->C, ReLU, conv(k=2) C->1: logit that an instance boundary lies between snippets
    j and j+1 ([B, T-1]), from the two snippets and their neighbours."""

    def __init__(self, C: int):
        super().__init__()
        self.conv1 = nn.Conv1d(C, C, 3, padding=1)
        self.out = nn.Conv1d(C, 1, 2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = zero_padded(F.relu(self.conv1(zero_padded(x, valid))), valid)
        return self.out(h)[:, 0]


def gate_masks(mask_logits: torch.Tensor, boundary_logits: torch.Tensor) -> torch.Tensor:
    """Mask logits gated by boundaries: p(i, t) = sigmoid(mask(i, t)) * P(no boundary between t and i),
    the boundaries between consecutive snippets taken as independent, returned as logits.

    A column can then not reach across an instance's edge into a neighbouring instance of the same
    class, however alike the two look (the merging failure of the affinity head on THUMOS)."""
    log_keep = F.logsigmoid(-boundary_logits.float())  # log P(no boundary after snippet j), [B, T-1]
    cum = F.pad(torch.cumsum(log_keep, dim=1), (1, 0))  # [B, T]: sum of log_keep over j < k
    gate = -(cum[:, :, None] - cum[:, None, :]).abs()  # [B, T(i), T(t)], <= 0
    log_p = (F.logsigmoid(mask_logits.float()) + gate).clamp(max=-1e-6)
    return (log_p - torch.log(-torch.expm1(log_p))).to(mask_logits.dtype)
