"""TAL heads (paper section 3.2): per-snippet classification and the global segmentation mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsmt.model.embedding import zero_padded


class ClassificationHead(nn.Module):
    """One 1-D conv C -> K+1 (paper Table 8: one layer is best); kernel 3 gives each snippet
    its neighbours as context at the cost of a few parameters."""

    def __init__(self, C: int, num_classes: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(C, num_classes + 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.conv(zero_padded(x, valid))


class MaskHead(nn.Module):
    """conv(k=3) C->C, ReLU, conv(k=3) C->C, ReLU, conv(k=1) C->T: output [B, T(i), T(t)], whose
    column t is the full-length mask logit predicted from snippet t (paper Eq. 4)."""

    def __init__(self, C: int, T: int):
        super().__init__()
        self.conv1 = nn.Conv1d(C, C, 3, padding=1)
        self.conv2 = nn.Conv1d(C, C, 3, padding=1)
        self.out = nn.Conv1d(C, T, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # Padded snippets are re-zeroed after each k=3 conv so that a valid snippet's mask does
        # not depend on whether its neighbour is padding or the sequence edge.
        h = zero_padded(F.relu(self.conv1(zero_padded(x, valid))), valid)
        h = zero_padded(F.relu(self.conv2(h)), valid)
        return self.out(h)
