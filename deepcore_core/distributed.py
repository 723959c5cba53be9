"""Several processes under ``torchrun``: the process group, shards and gathers.

``torchrun --nproc-per-node N -m deepcore_core ...`` sets ``WORLD_SIZE``, ``RANK`` and the
rendezvous variables; :func:`start` joins the group (NCCL on CUDA, gloo on the CPU). Without
them (or with one process) every function here is a no-op and work runs as in one process.
Rank 0 writes every file; the others compute their share and take rank 0's results.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

import numpy as np

from deepcore_core.errors import DeepcoreError

#: seconds a rank waits for the others at a collective before the job fails
TIMEOUT_SECONDS = float(os.environ.get("DEEPCORE_DIST_TIMEOUT", "600"))


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or alike) with several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one process is running."""
    if not launched():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a group)."""
    if not launched():
        return 0
    import torch.distributed as dist

    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 without a group)."""
    if not launched():
        return 1
    import torch.distributed as dist

    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files and shows progress (rank 0, or no group)."""
    return rank() == 0


def start(device: str = "auto") -> None:
    """Join the process group ``torchrun`` describes, once; nothing without ``torchrun``.

    CUDA ranks use NCCL and the GPU of their ``LOCAL_RANK``; CPU ranks use gloo. Ranks
    other than 0 show no progress bars and print nothing on stdout (errors still show).
    """
    import torch
    import torch.distributed as dist

    if not launched() or dist.is_initialized():
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeepcoreError(f"--device {device}: CUDA is not available on this machine")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(
        "nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=TIMEOUT_SECONDS)
    )
    if dist.get_rank() != 0:
        import sys

        os.environ["DEEPCORE_PROGRESS"] = "0"
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)


def failure(exc: BaseException) -> str:
    """A one-line message for an error of a collective (a rank died, timed out, ...)."""
    import re

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # the library's source location
    return (
        f"rank {rank()}: stopped because another process of this torchrun job failed or "
        f"stopped ({first[:160]})"
    )


def stop() -> None:
    """Leave the process group, if joined: wait for the other ranks (at most a minute, so a
    rank whose peers died does not hang), then tear it down."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # a peer is gone: nothing left to wait for
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
            else:
                dist.barrier()
        dist.destroy_process_group()


def device_of_group() -> Any:
    """Where collective tensors live: this rank's GPU under NCCL, else the CPU."""
    import torch
    import torch.distributed as dist

    if active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(n: int) -> slice:
    """This rank's contiguous share of ``n`` rows (all of them without a group)."""
    size = -(-n // world_size())
    return slice(min(n, rank() * size), min(n, (rank() + 1) * size))


def owners(sizes: list[int]) -> list[int]:
    """The rank that works on each of several jobs of the given sizes: the largest first,
    each to the least loaded rank (all 0 without a group)."""
    load = [0] * world_size()
    out = [0] * len(sizes)
    for j in sorted(range(len(sizes)), key=lambda j: (-sizes[j], j)):
        r = min(range(len(load)), key=lambda r: (load[r], r))
        out[j] = r
        load[r] += sizes[j]
    return out


def gather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """Every rank's :func:`shard` of an ``n``-row array, concatenated in rank order, on every
    rank (``local`` itself without a group)."""
    if not active():
        return local
    import torch
    import torch.distributed as dist

    size = -(-n // world_size())
    arr = np.ascontiguousarray(local)
    if arr.dtype == bool:  # not every backend reduces booleans
        return gather_rows(arr.astype(np.uint8), n).astype(bool)
    padded = np.zeros((size, *arr.shape[1:]), dtype=arr.dtype)
    padded[: len(arr)] = arr
    dev = device_of_group()
    mine = torch.from_numpy(padded).to(dev)
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(parts, mine)
    return torch.cat(parts).cpu().numpy()[:n]


def sum_(tensor: Any) -> Any:
    """Sum ``tensor`` over the ranks in place (a no-op without a group); returns it."""
    if active():
        import torch.distributed as dist

        dev = device_of_group()
        moved = tensor.to(dev)
        dist.all_reduce(moved)
        if moved is not tensor:
            tensor.copy_(moved)
    return tensor


def share(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself without a group)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src, device=device_of_group())
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` without a group)."""
    if not active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (a no-op without a group)."""
    if active():
        import torch.distributed as dist

        dist.barrier()
