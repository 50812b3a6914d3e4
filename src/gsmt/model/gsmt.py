"""The GSMT model: input projection, snippet embedding, class and mask branches."""

from __future__ import annotations

import torch
from torch import nn

from gsmt.errors import GsmtError
from gsmt.model.embedding import CNNEmbedding, ConvStem, PositionalEncoding, TransformerEmbedding, zero_padded
from gsmt.model.heads import (BoundaryHead, ClassificationHead, ClassPairwiseMaskHead, MaskHead, PairwiseMaskHead,
                              gate_masks)

POS_ENCODINGS = ("none", "learned", "fixed", "relative")
EMBEDDINGS = ("transformer", "cnn")
MASK_HEADS = ("conv", "pairwise")
STEM_NORMS = ("group", "layer")
LABELS = ("single", "multi")
LABEL_SCORES = ("sigmoid", "softmax", "actionness")


class GSMT(nn.Module):
    """Proposal-free TAL model; `forward(features [B, D, T], valid [B, T])` returns logits:
    `cls_logits` [B, K+1, T] and (with the mask branch) `mask_logits` [B, T, T] with
    `mask_logits[b, i, t]` = logit of position i in the mask predicted from snippet t. With
    `boundary_gate`, also `boundary_logits` [B, T-1] (a boundary between snippets j and j+1), and the
    mask logits are gated by them (`gate_masks`).

    `labels="multi"` (issue 32): `cls_logits` [B, K, T] are per-class sigmoid logits (every class
    a snippet belongs to), and masks are conditional on the class: `forward(..., pair_snippet,
    pair_class)` ([B, P] int64, -1 = padding) returns `pair_mask_logits` [B, P, T], the mask of
    each (snippet, class) pair, and always `mask_query` / `mask_key` [B, d, T], from which
    `pair_mask_logits(outputs, snippet, cls)` computes the columns of any pairs afterwards.
    `class_masks=False`: the pairs of one snippet share its mask (no class term).
    `label_scores="softmax"`: the multi-label model scores classes with the paper's softmax over K
    classes + background (`cls_logits` [B, K+1, T]; a snippet's target is split evenly over its
    labels) instead of a sigmoid per class. `label_scores="actionness"`: a class's score is the
    probability that the snippet is an action (`action_logits` [B, 2, T], foreground then
    background: the paper's softmax and Eq. 5 on action vs background) times its sigmoid
    (`cls_logits` [B, K, T], trained on foreground snippets only: every label of a snippet can reach
    1, yet background is one decision shared by all classes). `class_probs(outputs)` gives the K
    classes' probabilities [B, K, T] of any head.

    Features are standardised first by the buffers `feature_mean` / `feature_std` [D]
    (`set_feature_stats`; the identity until set)."""

    def __init__(self, feature_dim: int, num_classes: int, T: int, *, hidden_dim: int = 256,
                 num_layers: int = 2, n_heads: int = 4, head_dim: int | None = None,
                 mlp_ratio: float = 4, dropout: float = 0.1, pos_encoding: str = "none",
                 embedding: str = "transformer", mask_branch: bool = True, mask_head: str = "conv",
                 boundary_gate: bool = False, conv_stem: int = 0, stem_dilation: int = 1,
                 stem_norm: str = "group", labels: str = "single", class_masks: bool = True,
                 label_scores: str = "sigmoid"):
        super().__init__()
        if labels not in LABELS:
            raise GsmtError("model.labels", f"unknown value {labels!r}, choose from {LABELS}")
        if label_scores not in LABEL_SCORES:
            raise GsmtError("model.label_scores", f"unknown value {label_scores!r}, choose from {LABEL_SCORES}")
        if labels == "single" and (not class_masks or label_scores != "sigmoid"):
            raise GsmtError("model.labels", f"class_masks: false and label_scores: {label_scores} need labels: multi")
        if labels == "multi" and (not mask_branch or mask_head != "pairwise" or boundary_gate):
            raise GsmtError("model.labels", "multi needs the pairwise mask head (model.mask_head: pairwise, "
                                            "model.mask_branch: true, model.boundary_gate: false)")
        if pos_encoding not in POS_ENCODINGS:
            raise GsmtError("model.pos_encoding", f"unknown value {pos_encoding!r}, choose from {POS_ENCODINGS}")
        if embedding not in EMBEDDINGS:
            raise GsmtError("model.embedding", f"unknown value {embedding!r}, choose from {EMBEDDINGS}")
        if mask_head not in MASK_HEADS:
            raise GsmtError("model.mask_head", f"unknown value {mask_head!r}, choose from {MASK_HEADS}")
        if stem_norm not in STEM_NORMS:
            raise GsmtError("model.stem_norm", f"unknown value {stem_norm!r}, choose from {STEM_NORMS}")
        for name, value in (("feature_dim", feature_dim), ("num_classes", num_classes), ("T", T),
                            ("hidden_dim", hidden_dim), ("n_heads", n_heads)):
            if int(value) < 1:
                raise GsmtError(f"model.{name}", f"must be a positive integer, got {value}")
        if stem_dilation < 1:
            raise GsmtError("model.stem_dilation", f"must be a positive integer, got {stem_dilation}")
        if conv_stem > 1 and stem_dilation ** (conv_stem - 1) >= 4 * T:
            raise GsmtError("model.stem_dilation", f"{stem_dilation} ** {conv_stem - 1} dilates the conv stem past "
                                                   f"the {T}-snippet sequence; use fewer layers or a smaller base")
        if num_layers < 0:
            raise GsmtError("model.num_layers", f"must be >= 0, got {num_layers}")
        head_dim = max(1, hidden_dim // n_heads) if head_dim is None else head_dim
        if head_dim < 1:
            raise GsmtError("model.head_dim", f"must be a positive integer, got {head_dim}")
        self.feature_dim, self.num_classes, self.T = feature_dim, num_classes, T
        self.mask_branch = mask_branch
        self.labels = labels
        self.label_scores = label_scores
        # Input standardisation (issue 34): set from the training features by the trainer, saved
        # with the weights; zeros and ones (the identity) for a run without it or an older file.
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.proj = nn.Conv1d(feature_dim, hidden_dim, 1)
        self.pos = PositionalEncoding(pos_encoding, hidden_dim, T)
        self.stem = ConvStem(hidden_dim, conv_stem, stem_dilation, stem_norm) if conv_stem > 0 else None
        if embedding == "transformer":
            relative_T = T if pos_encoding == "relative" else 0
            self.embed = TransformerEmbedding(hidden_dim, num_layers, n_heads, head_dim, mlp_ratio, dropout,
                                              relative_T)
        else:
            self.embed = CNNEmbedding(hidden_dim, dropout)
        if labels == "multi":
            softmax = label_scores == "softmax"
            self.cls_head = ClassificationHead(hidden_dim, num_classes, outputs=None if softmax else num_classes)
            # [foreground, background]: ClassificationHead's K + 1 rows with K = 1
            self.action_head = ClassificationHead(hidden_dim, 1) if label_scores == "actionness" else None
            self.mask_head = ClassPairwiseMaskHead(hidden_dim, T, num_classes if class_masks else 0)
        else:
            self.cls_head = ClassificationHead(hidden_dim, num_classes)
            self.action_head = None
            head = MaskHead if mask_head == "conv" else PairwiseMaskHead
            self.mask_head = head(hidden_dim, T) if mask_branch else None
        self.boundary_head = BoundaryHead(hidden_dim) if (boundary_gate and mask_branch) else None

    def forward(self, features: torch.Tensor, valid: torch.Tensor | None = None,
                pair_snippet: torch.Tensor | None = None,
                pair_class: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        B, D, T = features.shape
        if D != self.feature_dim:
            raise GsmtError("features", f"feature dimension {D} differs from the model's {self.feature_dim}")
        if T != self.T:
            raise GsmtError("features", f"sequence length {T} differs from the model's T={self.T}")
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=features.device)
        valid = valid.to(torch.bool)
        features = (features - self.feature_mean[:, None]) / self.feature_std[:, None]
        # The k=1 projection keeps padded snippets (even NaN ones) in their own positions, so
        # zeroing its output suffices and avoids a pass over the wide input.
        x = zero_padded(self.pos(self.proj(features)), valid)
        if self.stem is not None:
            x = self.stem(x, valid)
        x = zero_padded(self.embed(x, valid), valid)
        out = {"cls_logits": self.cls_head(x, valid)}
        if self.labels == "multi":
            if self.action_head is not None:
                out["action_logits"] = self.action_head(x, valid)
            out["mask_query"], out["mask_key"] = self.mask_head.queries_keys(x, valid)
            if pair_snippet is not None:
                out["pair_mask_logits"] = self.pair_mask_logits(out, pair_snippet, pair_class)
            return out
        if self.mask_head is not None:
            out["mask_logits"] = self.mask_head(x, valid)
        if self.boundary_head is not None:
            out["boundary_logits"] = self.boundary_head(x, valid)
            out["mask_logits"] = gate_masks(out["mask_logits"], out["boundary_logits"])
        return out

    def class_probs(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Probabilities [B, K, T] of the K classes from `forward`'s outputs (a softmax's background
        row dropped; with `label_scores="actionness"`, P(action) times each class's sigmoid)."""
        cls_logits = outputs["cls_logits"].float()
        if self.labels == "single" or self.label_scores == "softmax":
            return torch.softmax(cls_logits, dim=1)[:, :-1]
        probs = torch.sigmoid(cls_logits)
        if self.label_scores == "actionness":
            probs = probs * torch.softmax(outputs["action_logits"].float(), dim=1)[:, :1]
        return probs

    @torch.no_grad()
    def set_feature_stats(self, mean, std) -> None:
        """Standardise inputs by these per-dimension statistics from now on (`gsmt.data.standardize`)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(torch.as_tensor(std, dtype=self.feature_std.dtype))

    def pair_mask_logits(self, outputs: dict[str, torch.Tensor], snippet: torch.Tensor,
                         cls: torch.Tensor) -> torch.Tensor:
        """Mask logits [B, P, T] of (snippet, class) pairs [B, P] from `forward`'s outputs (padding: any
        negative entry, computed as pair (0, 0) and to be ignored)."""
        return self.mask_head.pair_logits(outputs["mask_query"], outputs["mask_key"], snippet.clamp(min=0),
                                          cls.clamp(min=0))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
