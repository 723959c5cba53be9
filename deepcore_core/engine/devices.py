"""Device choice and seeding."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepcore_core.engine.config import THREADS
from deepcore_core.errors import DeepcoreError
from deepcore_core.rules import DEVICE, check_range

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> str:
    """The one device resolver: ``auto|cpu|cuda|cuda:N`` as a canonical torch device string
    (``cpu``, ``cuda:0``), with a clear error for a bad name or a missing GPU.

    Under torchrun, ``cuda`` is the GPU of this process's ``LOCAL_RANK``. ``cpu`` needs no
    torch import (array-only work stays fast to start).
    """
    from deepcore_core import distributed

    if not isinstance(device, str):
        raise DeepcoreError(f"device must be one of {DEVICE['allowed']}, got {device!r}")
    check_range("device", device, DEVICE)
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        device = "cuda"
    if not torch.cuda.is_available():
        raise DeepcoreError(
            f"device '{device}' was asked for but no CUDA GPU is available; "
            "use --device cpu or auto"
        )
    if distributed.launched():
        if device != "cuda":
            raise DeepcoreError(
                f"device '{device}': under torchrun each process uses the GPU of its "
                "LOCAL_RANK; use --device cuda"
            )
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    index = torch.cuda.current_device() if device == "cuda" else int(device.split(":")[1])
    if index >= torch.cuda.device_count():
        raise DeepcoreError(
            f"device '{device}': this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return f"cuda:{index}"


def available_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup (v2) CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_threads(jobs: int = 1) -> int:
    """Threads per process when ``jobs`` processes share the CPUs (and, under torchrun, the
    processes of this machine, ``LOCAL_WORLD_SIZE``): never more threads than CPUs in all
    (more threads than cores make small-network work many times slower)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, available_cpus() // max(1, jobs * local))


def setup_cpu(threads: int, jobs: int = 1) -> int:
    """Set this process up for CPU work, as every command does: the threads of torch and of
    the BLAS libraries numpy and scipy use (``threads``, or with 0 :func:`default_threads`;
    returns the number), and freed memory kept for reuse
    (:func:`~deepcore_core.engine.allocator.keep_freed_memory`)."""
    check_range("threads", threads, THREADS)
    import torch
    from threadpoolctl import threadpool_limits

    from deepcore_core.engine.allocator import keep_freed_memory

    keep_freed_memory()
    n = threads or default_threads(jobs)
    torch.set_num_threads(n)
    # the pools loaded now (numpy's); a BLAS loaded later (scipy's, on its first import)
    # reads its thread count from the environment when it loads
    threadpool_limits(n, user_api="blas")
    os.environ["OPENBLAS_NUM_THREADS"] = str(n)
    return n


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Run numpy's and scipy's BLAS on one thread inside the block (torch keeps its threads).

    For loops that alternate torch's work with small BLAS calls: two thread pools taking
    turns on the same cores make each call wait for the other pool's spinning workers (on
    two cores, a GradMatch step took 10x longer with both pools at two threads than with
    one). Call it after the BLAS library is loaded (imported), which it limits.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for data order and augmentation."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
