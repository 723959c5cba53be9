"""Scheduling a grid on several processes: selections here, training runs in workers.

Selections are made one after another in a daemon thread of this process (each seed's
selection model and outputs are shared by its methods); each finished selection hands its
training runs to a pool of worker processes, full-data runs first. Everything is a
``concurrent.futures`` future, so the main thread waits on one set and yields every run as it
finishes, even while a long selection is still being made. The shutdown path is one place:
on a failure or Ctrl-C the selection thread stops after its current selection, queued runs
are cancelled and running workers are terminated (they resume from their checkpoints).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from deepcore_core.experiment.plan import selections_of
from deepcore_core.experiment.records import FULL, RunRecord
from deepcore_core.progress import Progress

if TYPE_CHECKING:
    from deepcore_core.experiment.runner import Experiment
    from deepcore_core.settings import RunSettings

Key = dict[str, Any]


def in_order(jobs: list[Callable[[], Any]], stop: threading.Event) -> list[cf.Future[Any]]:
    """Run ``jobs`` one after another in a daemon thread; one future per job.

    Jobs left when ``stop`` is set are cancelled. A daemon thread, unlike an executor's, does
    not hold the process open after Ctrl-C.
    """
    futures: list[cf.Future[Any]] = [cf.Future() for _ in jobs]

    def work() -> None:
        for job, fut in zip(jobs, futures, strict=True):
            if stop.is_set():
                fut.cancel()
                continue
            fut.set_running_or_notify_cancel()
            try:
                fut.set_result(job())
            except BaseException as exc:
                fut.set_exception(exc)

    threading.Thread(target=work, name="selections", daemon=True).start()
    return futures


def run_parallel(exp: Experiment, todo: list[Key], jobs: int) -> Iterator[tuple[Key, RunRecord]]:
    """Select and train every run of ``todo`` with ``jobs`` worker processes; yield each run
    as it finishes."""
    import torch

    from deepcore_core.engine.allocator import keep_freed_memory
    from deepcore_core.engine.devices import available_cpus, default_threads

    threads = exp.config.threads or default_threads(jobs)
    pool = cf.ProcessPoolExecutor(
        jobs,
        mp_context=mp.get_context("spawn"),
        initializer=_worker_init,
        initargs=(type(exp), exp.config, threads, os.getpid()),
    )
    # selections here share the cores with the workers: the threads the workers leave free,
    # as more threads than cores make torch many times slower
    keep_freed_memory()
    parent_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, available_cpus() - jobs * threads))
    waiting: dict[tuple[str, float, int], list[Key]] = {}
    for key in todo:
        if key["method"] != FULL:
            waiting.setdefault((key["method"], key["fraction"], key["seed"]), []).append(key)
    order = selections_of(todo)
    stop = threading.Event()
    selecting = dict(
        zip(in_order([functools.partial(exp.select, *s) for s in order], stop), order, strict=True)
    )
    training = {pool.submit(_worker_run, k): k for k in todo if k["method"] == FULL}
    try:
        with Progress(len(order), "selections") as bar:
            while selecting or training:
                done, _ = cf.wait([*selecting, *training], return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    if fut in selecting:
                        method, fraction, seed = selecting.pop(fut)
                        fut.result()  # a failed selection stops the grid
                        bar.update(1, f"{method} f={fraction:g} s{seed}")
                        for key in waiting.pop((method, fraction, seed)):
                            training[pool.submit(_worker_run, key)] = key
                    else:
                        yield training.pop(fut), RunRecord(**fut.result())
    except BaseException:  # Ctrl-C or a failed run: stop now, finished runs are stored
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for child in mp.active_children():  # the runs in flight resume from checkpoints
            child.terminate()
        raise
    finally:
        torch.set_num_threads(parent_threads)
    pool.shutdown()


# -- the worker processes ------------------------------------------------------------------

_WORKER: dict[str, Experiment] = {}


def _worker_init(
    experiment: type[Experiment], config: RunSettings, threads: int, parent: int
) -> None:
    import signal

    from deepcore_core.engine.devices import setup_cpu
    from deepcore_core.plugins import PluginHost

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    os.environ["DEEPCORE_PROGRESS"] = "0"
    setup_cpu(threads)
    _WORKER["exp"] = experiment(config, PluginHost(), log=lambda m: None)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker within ``every`` seconds of its parent's death (even by SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _worker_run(key: Key) -> dict[str, Any]:
    return _WORKER["exp"].run_one(key).as_dict()
