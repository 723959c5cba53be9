"""Device choice and seeding."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from deepcore_core.engine.config import MACHINE_CPUS
from deepcore_core.errors import DeepcoreError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """Map ``auto|cpu|cuda`` (or ``cuda:N``) to a torch device; a clear error without a GPU.

    Under torchrun, ``cuda`` is the GPU of this process's ``LOCAL_RANK``."""
    from deepcore_core import distributed

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
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
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device(device)
    raise DeepcoreError(f"device must be one of auto, cpu, cuda, got '{device}'")


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
    if threads < 0:
        raise DeepcoreError(f"threads must be >= 0 (0: one per available CPU), got {threads}")
    if threads > MACHINE_CPUS:
        raise DeepcoreError(
            f"threads must be at most {MACHINE_CPUS} (the CPUs of this machine; 0: one per "
            f"available CPU), got {threads}"
        )
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
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
