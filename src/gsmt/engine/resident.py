"""Training samples held in device (or pinned host) memory for the whole run: one `index_select` a batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

# report_faults lives with the annotations, meta_tiou with the tIoU sets: `gsmt eval` needs them without torch
from gsmt.annotations.types import Annotations, Video  # noqa: F401
from gsmt.annotations.load import load_annotations, report_faults  # noqa: F401
from gsmt.evaluation.tiou import meta_tiou  # noqa: F401
from gsmt.data.dataset import TALDataset
from gsmt.errors import GsmtError


RESIDENT_KEYS = ("features", "valid", "cls_target", "mask_target")  # what the model and the loss read


@dataclass
class ResidentSamples:
    """Every training sample's tensors stacked once ([N, ...] per key, on `where`), so that a batch
    is one gather by index instead of a read, a resize and a target computation per sample per
    epoch (the samples and their targets are deterministic: nothing is redrawn per epoch)."""

    tensors: dict[str, torch.Tensor]
    where: torch.device
    empty_videos: set[str]

    def __len__(self) -> int:
        return int(self.tensors["valid"].shape[0])

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The samples `index` (in that order) as a collated batch on `device`."""
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
    first = dataset[0]
    per_sample = sum(first[k].numel() * first[k].element_size() for k in RESIDENT_KEYS)
    where = resident_place(per_sample * len(dataset), device, policy, fraction)
    if where is None:
        return None
    pin = where.type == "cpu" and device.type == "cuda"
    host = {k: torch.empty((len(dataset), *first[k].shape), dtype=first[k].dtype, pin_memory=pin)
            for k in RESIDENT_KEYS}
    for i in range(len(dataset)):  # in index order: consecutive windows of a video share one read
        item = first if i == 0 else dataset[i]
        for k in RESIDENT_KEYS:
            host[k][i] = item[k]
    tensors = {k: t.to(where) for k, t in host.items()}
    return ResidentSamples(tensors, where, set(dataset.empty_videos))
