"""Which device a job runs on, and its place in a `torchrun` process group."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from gsmt.errors import GsmtError
from gsmt.schema import DEVICE, satisfies


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """This process's rank and the world size under `torchrun` (its WORLD_SIZE, RANK, MASTER_ADDR
    variables); one process without them. NCCL on CUDA, gloo elsewhere."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    if device.type == "cuda":
        # NCCL's object collectives (broadcast_object_list, all_gather_object) use the current
        # device: without this every rank would stage them on cuda:0.
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def leave_group() -> None:
    """Destroy this job's process group (call it in a `finally`). Every rank first meets at a
    barrier, so none tears the group down while another is still leaving the last collective (a
    gloo abort at exit, seen in CI), unless the exception in flight was raised by this rank alone
    (not `shared`): the others would never come."""
    failure = sys.exc_info()[1]
    if failure is None or getattr(failure, "shared", False):
        dist.barrier()
    dist.destroy_process_group()


def pick_device(name: str | torch.device, where: str = "train.device") -> torch.device:
    """A torch device by name (auto | cpu | cuda | cuda:N | mps) or a `torch.device` of those types;
    one that is absent, or of a type gsmt does not run on (`meta`, `xla`, ...), is a GsmtError."""
    if isinstance(name, torch.device):
        if name.type not in ("cpu", "cuda", "mps"):
            raise GsmtError(where, f"gsmt runs on a cpu, cuda or mps device, not {str(name)!r}")
        name = str(name) if name.type == "cuda" or name.index is None else name.type
    if not satisfies(name, str, DEVICE):
        raise GsmtError(where, f"must be {DEVICE.pattern_text}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GsmtError(where, "CUDA was asked for but is not available")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise GsmtError(where, f"no {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise GsmtError(where, "MPS was asked for but is not available")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return torch.device(name)


# How long a rank waits at a collective for the others. Ranks finish their shares at different
# times (an hour-long video against a short one, minutes apart on a CPU), and torch's default of 30
# minutes would end a healthy run; a rank that dies is torchrun's to notice (it stops the others).
GROUP_TIMEOUT = timedelta(days=7)


def gloo_group() -> tuple[int, int, bool]:
    """(rank, world_size, whether this call made the process group) under torchrun; (0, 1, False)
    otherwise. gloo even for CUDA backbones: the group only exchanges small Python objects."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    made = not dist.is_initialized()
    if made:
        dist.init_process_group(backend="gloo", timeout=GROUP_TIMEOUT)
    return dist.get_rank(), dist.get_world_size(), made


def settle(world: int, failure: Exception | None, share=None, *, who: str = "gsmt") -> list:
    """End one step of the job on every rank together: each rank's failure (None when it went well)
    and `share` are exchanged, then either every rank goes on with the shares of all ranks (rank
    order), or, when any rank failed, every rank raises. A GsmtError is raised as the lowest failing
    rank's one-line error on all ranks (same line, exit 2 everywhere); any other exception is
    re-raised with its traceback on its own rank and named on the others. Each step ends here before
    any rank waits for another, so no rank is ever left waiting for one that stopped."""
    if world == 1:
        if failure is not None:
            raise failure
        return [share]
    error = None
    if isinstance(failure, GsmtError):
        error = (failure.where, failure.problem)
    elif failure is not None:
        error = (f"{who} (rank {dist.get_rank()})",
                 f"stopped: {type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}")
    parts: list = [None] * world
    dist.all_gather_object(parts, {"error": error, "share": share if failure is None else None})
    if failure is not None and not isinstance(failure, GsmtError):
        failure.shared = True  # the other ranks raise together with it (leave_group)
        raise failure
    first = next((part["error"] for part in parts if part["error"] is not None), None)
    if first is not None:
        raise GsmtError(*first, shared=True)
    return [part["share"] for part in parts]
