"""Training samples held in device (or pinned host) memory for the whole run: one `index_select` a batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gsmt.data.dataset import PAIR_PADDING, TALDataset, pad_pairs
from gsmt.errors import GsmtError


RESIDENT_KEYS = ("features", "valid", "cls_target", "mask_target")  # what the model and the loss read
# ... with multi-label targets (issue 32): the pairs are padded to the dataset's largest count
MULTILABEL_KEYS = ("features", "valid", "cls_target", "label_target", "pair_snippet", "pair_class", "pair_mask")


@dataclass
class ResidentSamples:
    """Every training sample's tensors stacked once ([N, ...] per key, on `where`), so that a batch
    is one gather by index instead of a read, a resize and a target computation per sample per
    epoch (the samples and their targets are deterministic: nothing is redrawn per epoch)."""

    tensors: dict[str, torch.Tensor]
    where: torch.device
    empty_videos: set[str]
    # Multi-label: each sample's number of (snippet, class) pairs (host memory), so that a batch is
    # cut to its own largest count, the shape the DataLoader's `collate` gives it (the same shapes
    # give the same bits: a padded pair changes the order of the sums over pairs).
    pair_counts: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.tensors["valid"].shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The samples `index` (in that order) as a collated batch on `device`."""
        size = max(1, int(self.pair_counts[index.cpu()].max())) if self.pair_counts is not None else None
        if self.where.type == "cuda" and index.device.type == "cpu":
            # From page-locked memory the copy is queued without the host waiting for the GPU to
            # finish its work (a copy from pageable memory waits: one sync per step).
            index = index.pin_memory().to(self.where, non_blocking=True)
        else:
            index = index.to(self.where)
        pin = self.where.type == "cpu" and device.type == "cuda"
        out = {}
        for key, t in self.tensors.items():
            if pin:  # gathered into page-locked memory, so the copy to the GPU runs asynchronously
                part = torch.empty((len(index), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
                torch.index_select(t, 0, index, out=part)
            else:
                part = t.index_select(0, index)
            if size is not None and key in PAIR_PADDING:
                part = part[:, :size]
            out[key] = part.to(device, non_blocking=True)
        return out


def host_memory_bytes() -> int:
    """Physical memory of this machine (0 when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def resident_place(nbytes: int, device: torch.device, policy: str, fraction: float) -> torch.device | None:
    """Where `nbytes` of training samples live under `train.resident` = `policy`: the training
    device when they fit in `fraction` of its memory (CUDA), else host memory (pinned for CUDA) when
    they fit in `fraction` of it; `always` takes host memory whatever the size; None: the DataLoader."""
    if policy == "never":
        return None
    if device.type == "cuda" and nbytes <= fraction * torch.cuda.get_device_properties(device).total_memory:
        return device
    if policy == "always" or nbytes <= fraction * host_memory_bytes():
        return torch.device("cpu")
    return None


def load_resident(dataset: TALDataset, device: torch.device, policy: str, fraction: float) -> ResidentSamples | None:
    """The samples of `dataset` read once into contiguous tensors, or None when `policy` and their
    size (estimated from the first sample) leave them to the DataLoader."""
    if policy == "never" or len(dataset) == 0:
        return None
    if dataset.redrawn_each_epoch:
        if policy == "always":
            raise GsmtError("train.resident", "'always' cannot hold samples redrawn every epoch "
                                              "(data.window_jitter > 0): use auto or never")
        return None
    keys = MULTILABEL_KEYS if dataset.multilabel else RESIDENT_KEYS
    first = dataset[0]
    per_sample = sum(first[k].numel() * first[k].element_size() for k in keys)
    where = resident_place(per_sample * len(dataset), device, policy, fraction)
    if where is None:
        return None
    pin = where.type == "cpu" and device.type == "cuda"
    counts = None
    if dataset.multilabel:
        # Pair lists differ in length: read once, then padded to the longest (an estimate above,
        # from the first sample; the padded size is known only here).
        items = [first] + [dataset[i] for i in range(1, len(dataset))]
        counts = torch.tensor([len(it["pair_class"]) for it in items], dtype=torch.int64)
        host = {k: (pad_pairs([it[k] for it in items], k) if k in PAIR_PADDING
                    else torch.stack([it[k] for it in items])) for k in keys}
        if pin:
            host = {k: v.pin_memory() for k, v in host.items()}
    else:
        host = {k: torch.empty((len(dataset), *first[k].shape), dtype=first[k].dtype, pin_memory=pin)
                for k in keys}
        for i in range(len(dataset)):  # in index order: consecutive windows of a video share one read
            item = first if i == 0 else dataset[i]
            for k in keys:
                host[k][i] = item[k]
    tensors = {k: t.to(where) for k, t in host.items()}
    return ResidentSamples(tensors, where, set(dataset.empty_videos), counts)
