"""Snippet embedding (paper section 3.1): pre-LN transformer encoder or the dilated 1-D CNN of Table 4."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def zero_padded(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Set padded snippets of `x` [B, C, T] to 0 (`where`, so NaN/Inf there cannot leak)."""
    return torch.where(valid[:, None, :], x, torch.zeros((), dtype=x.dtype, device=x.device))


def sinusoidal_encoding(T: int, C: int) -> torch.Tensor:
    """Fixed sine/cosine positional encoding (Vaswani et al. 2017), shape [C, T] (on the CPU, see RelativeBias)."""
    pos = torch.arange(T, dtype=torch.float64, device="cpu")[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, C, 2, dtype=torch.float64, device="cpu") / C)
    enc = torch.zeros(T, C, dtype=torch.float64, device="cpu")
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[: C // 2])
    return enc.T.float()


class PositionalEncoding(nn.Module):
    """Adds nothing (`none`, the paper's default, Table 13; also `relative`, which acts inside
    attention: `RelativeBias`), a `learned` table or a `fixed` sinusoid."""

    def __init__(self, kind: str, C: int, T: int):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(1, C, T) * 0.02)
        elif kind == "fixed":
            self.register_buffer("table", sinusoidal_encoding(T, C)[None], persistent=False)
        else:
            self.table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return x
        return x + self.table[:, :, : x.shape[-1]]


class RelativeBias(nn.Module):
    """Per-head attention bias b_h(j - i) = table_h[j - i] - slope_h,dir * |j - i| for query i and key j.

    Attention without it sees a bag of snippets: "sitting down" and "standing up" pass through the
    same poses in opposite order and are the same bag. With a bias per direction, one head can look
    back and another ahead, so the layer sees order and distance the way a convolution does, while
    keeping global reach (no absolute positions: windows start anywhere in a video). The slopes let
    the decay with distance be learned in a few hundred steps; the table refines it per offset.
    Both start at 0: training begins from the paper's position-free attention."""

    def __init__(self, n_heads: int, T: int):
        super().__init__()
        self.T = T
        self.table = nn.Parameter(torch.zeros(n_heads, 2 * T - 1))
        self.slopes = nn.Parameter(torch.zeros(n_heads, 2))  # [head, (ahead j > i, behind j < i)]
        # On the CPU even under `torch.device("meta")` (checkpoint checks): arithmetic on meta
        # tensors imports torch._dynamo, seconds per `gsmt predict`.
        index = torch.arange(T, device="cpu")
        offset = index[None, :] - index[:, None]  # [i, j] = j - i
        self.register_buffer("index", offset + T - 1, persistent=False)
        self.register_buffer("distance", torch.stack([offset.clamp(min=0), (-offset).clamp(min=0)]).float(),
                             persistent=False)

    def forward(self, T: int) -> torch.Tensor:
        """Bias [n_heads, T, T] for a sequence of T <= self.T snippets."""
        index, distance = self.index[:T, :T], self.distance[:, :T, :T]
        return self.table[:, index] - torch.einsum("hs,sij->hij", self.slopes, distance)


class SelfAttention(nn.Module):
    """Multi-head self-attention; q/k/v live in n_heads*head_dim, which need not equal C.
    With `relative_T`, a learned relative position bias (`RelativeBias`) over up to that many snippets."""

    def __init__(self, C: int, n_heads: int, head_dim: int, dropout: float, relative_T: int = 0):
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = n_heads, head_dim, dropout
        inner = n_heads * head_dim
        self.qkv = nn.Linear(C, 3 * inner)
        self.out = nn.Linear(inner, C)
        self.relative = RelativeBias(n_heads, relative_T) if relative_T else None

    def forward(self, x: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """x [B, T, C]; key_ok [B, T] bool, True for snippets that may be attended to."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn_mask = key_ok[:, None, None, :]  # [B, 1, 1, T]: True = take part
        if self.relative is not None:
            blocked = torch.full((), float("-inf"), dtype=q.dtype, device=q.device)
            bias = self.relative(T).to(q.dtype)[None]  # [1, H, T, T]
            attn_mask = torch.where(attn_mask, bias, blocked)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, C: int, n_heads: int, head_dim: int, mlp_ratio: float, dropout: float,
                 relative_T: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(C)
        self.attn = SelfAttention(C, n_heads, head_dim, dropout, relative_T)
        self.norm2 = nn.LayerNorm(C)
        hidden = int(round(C * mlp_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(C, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, C)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_ok))
        return x + self.drop(self.mlp(self.norm2(x)))


class TransformerEmbedding(nn.Module):
    """`num_layers` pre-LN encoder layers and a final LayerNorm; [B, C, T] in and out. With
    `relative_T`, each layer's attention has its own relative position bias (`RelativeBias`)."""

    def __init__(self, C: int, num_layers: int, n_heads: int, head_dim: int, mlp_ratio: float,
                 dropout: float, relative_T: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(C, n_heads, head_dim, mlp_ratio, dropout, relative_T) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(C)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # A sample with no valid snippet would softmax over nothing (NaN); let it attend to
        # everything instead: its outputs are zeroed by the caller anyway.
        key_ok = valid | ~valid.any(dim=1, keepdim=True)
        h = x.transpose(1, 2)
        for layer in self.layers:
            h = layer(h, key_ok)
        return self.norm(h).transpose(1, 2)


class CNNEmbedding(nn.Module):
    """Residual 1-D CNN, dilations 1, 3, 5 with two k=3 layers each (paper Table 4)."""

    def __init__(self, C: int, dropout: float, dilations: tuple[int, ...] = (1, 1, 3, 3, 5, 5)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(C, C, 3, padding=d, dilation=d) for d in dilations)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            # Re-zero padded snippets before every conv so their values never reach valid ones.
            x = zero_padded(x + self.drop(F.relu(conv(x))), valid)
        return x


class ConvStem(nn.Module):
    """`layers` residual blocks of conv(k=3) C->C + norm + ReLU before the snippet embedding:
    each snippet sees its neighbours in order, which attention without positional encoding cannot
    (it is permutation-equivariant), so an action told by its local temporal pattern becomes visible.
    Block l is dilated by `dilation ** l`: with 2, five blocks see 63 snippets in order (an action's
    whole extent on THUMOS14 grids) for the cost of five k=3 convs. `norm="group"`: GroupNorm with one
    group (statistics over the whole sequence); `"layer"`: LayerNorm over the channels of each snippet
    (a snippet's output then does not depend on snippets outside its receptive field)."""

    def __init__(self, C: int, layers: int, dilation: int = 1, norm: str = "group"):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(C, C, 3, padding=dilation**l, dilation=dilation**l) for l in range(layers)
        )
        self.per_snippet = norm == "layer"
        self.norms = nn.ModuleList((nn.LayerNorm(C) if self.per_snippet else nn.GroupNorm(1, C))
                                   for _ in range(layers))

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return norm(x.transpose(1, 2)).transpose(1, 2) if self.per_snippet else norm(x)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            # Padded snippets are zero before each conv, so a valid snippet's output does not depend on padding.
            x = zero_padded(x + F.relu(self._norm(norm, conv(zero_padded(x, valid)))), valid)
        return x
