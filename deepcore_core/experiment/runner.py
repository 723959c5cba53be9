"""The runner: selections (one selection model per seed, shared) and training runs.

Selections are made in this process, so each seed's selection model, embeddings and scores
are computed once and shared by every method and fraction. Training runs go to ``jobs``
worker processes (1: this process) as soon as their selection exists, so workers train
while later selections are made. Observers hear of every epoch, selection and finished run
through the ``on_*`` hooks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from deepcore_core import distributed
from deepcore_core._io import check_writable
from deepcore_core.api import run_selection
from deepcore_core.context import SelectionContext
from deepcore_core.data.sources import DatasetSplits, on_device
from deepcore_core.engine.devices import resolve_device, seed_everything
from deepcore_core.engine.training import train_model
from deepcore_core.errors import DeepcoreError, TrainingDiverged
from deepcore_core.experiment.plan import RunKey, expand, methods_of, selections_of
from deepcore_core.experiment.records import FULL, RunRecord, write_summary
from deepcore_core.experiment.store import Store
from deepcore_core.log import log
from deepcore_core.plugins import PluginHost
from deepcore_core.progress import Progress
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import ScoreSelector
from deepcore_core.settings import ExperimentConfig


class Experiment:
    """Runs an :class:`ExperimentConfig` with one plugin host.

    Everything is checked before any work: methods and their options, networks, the dataset.
    """

    def __init__(
        self, config: ExperimentConfig, host: PluginHost, log: Callable[[str], None] = print
    ) -> None:
        self.config, self.host, self.log = config, host, log
        if distributed.launched():  # under torchrun: every process runs the experiment
            distributed.start(config.device)
        self.device = resolve_device(config.device)
        self.methods = methods_of(config, host.registry.names())
        for m in self.methods:
            host.create_selector(m, config.method_options.get(m, {}), config.variant)  # validates
        if config.sampler:
            host.create_sampler(config.sampler, config.sampler_options)  # validates
        elif config.sampler_options:
            raise DeepcoreError("sampler_options need a sampler: set sampler")
        for m, opts in config.method_options.items():
            if m not in self.methods:  # left out (``--method`` narrowed a config): still checked
                try:
                    host.create_selector(m, opts, config.variant)
                except DeepcoreError as exc:
                    raise DeepcoreError(f"method_options: {exc}") from None
        for net in (*config.targets(), config.selection_network):
            host.networks.get(net)
        self.data: DatasetSplits = host.datasets.load(str(config.dataset), config.data_root)
        for net in (*config.targets(), config.selection_network):
            info = host.networks.get(net)
            if not info.min_size <= self.data.image_size <= info.max_size:
                raise DeepcoreError(
                    f"network '{net}' takes images of {info.min_size} to "
                    f"{info.max_size} pixels, not {self.data.image_size}"
                )
        fingerprint = dataset_fingerprint(
            self.data.train.labels, len(self.data.train), self.data.name
        )
        self.keys = RunKey(config, self.data.name, fingerprint)
        check_writable(config.out_dir(), folder=True)
        self.store = Store(config.out_dir())
        self.out = self.store.out
        self._inputs: dict[int, dict[str, Any]] = {}

    def plan(self) -> list[dict[str, Any]]:
        """Every run of the experiment as a key (full-data runs first, per seed)."""
        return expand(self.keys, self.methods)

    def run(self, jobs: int | None = None) -> list[RunRecord]:
        """Run every planned run not already finished; return all records."""
        jobs = self.config.jobs if jobs is None else jobs
        if jobs < 1:
            raise DeepcoreError(f"jobs must be >= 1, got {jobs}")
        if jobs > 1 and distributed.launched():
            raise DeepcoreError(
                f"jobs must be 1 under torchrun (got {jobs}): the processes share every run"
            )
        plan = self.plan()
        main = distributed.is_main()  # under torchrun rank 0 keeps the store
        with self.store.lock() if main else contextlib.nullcontext():
            todo = None
            if main:
                self.store.repair(plan)
                todo = [k for k in plan if not self.store.done(k)]
                if len(todo) < len(plan):
                    self.log(f"resuming: {len(plan) - len(todo)} of {len(plan)} runs already done")
            todo = distributed.share(todo)
            with Progress(len(todo), "training runs") as bar:
                for key, record in self._run_all(todo, jobs):
                    if main:
                        self.store.finish(key, record)
                        self.host.hook.on_run_end(record=record.as_dict())
                    bar.update(
                        1, f"{key['method']} f={key['fraction']:g} acc={record.accuracy:.4f}"
                    )
            records = None
            if main:
                records = [self.store.load(k) for k in plan]
                write_summary(records, self.out)
            records = distributed.share(records)
        return records

    def _run_all(
        self, todo: list[dict[str, Any]], jobs: int
    ) -> Iterator[tuple[dict[str, Any], RunRecord]]:
        """Select and train every run of ``todo``; yield each as it finishes.

        With one job, each run is selected (or its selection loaded) and trained in turn.
        With several, a thread of this process makes the selections in order and hands each
        selection's runs to the workers (full-data runs first), while this thread stores every
        finished run as soon as it arrives, even during a long selection.
        """
        from deepcore_core.engine.allocator import keep_freed_memory
        from deepcore_core.engine.devices import available_cpus, default_threads, setup_cpu

        selections = selections_of(todo)
        if jobs == 1 or len(todo) <= 1:
            setup_cpu(self.config.threads)
            for key in todo:
                yield key, self.run_one(key)
            return
        import concurrent.futures as cf
        import multiprocessing as mp
        import os
        import threading

        import torch

        waiting: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
        for key in todo:
            if key["method"] != FULL:
                waiting.setdefault((key["method"], key["fraction"], key["seed"]), []).append(key)
        threads = self.config.threads or default_threads(jobs)
        pool = cf.ProcessPoolExecutor(
            jobs,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.config, threads, os.getpid()),
        )
        # selections here share the cores with the workers: one thread, as more threads than
        # cores make torch many times slower
        keep_freed_memory()
        parent_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, available_cpus() - jobs * threads))
        futures: dict[cf.Future[Any], dict[str, Any]] = {}
        lock = threading.Lock()
        done = threading.Event()
        failure: list[BaseException] = []

        def submit(key: dict[str, Any]) -> None:
            with lock:
                futures[pool.submit(_worker_run, key)] = key

        def make_selections() -> None:
            try:
                with Progress(len(selections), "selections") as bar:
                    for method, fraction, seed in selections:
                        if failure:
                            return  # the main thread is stopping
                        self.select(method, fraction, seed)
                        bar.update(1, f"{method} f={fraction:g} s{seed}")
                        for key in waiting.pop((method, fraction, seed)):
                            submit(key)
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        selector = threading.Thread(target=make_selections, name="selections", daemon=True)
        try:
            for key in todo:
                if key["method"] == FULL:
                    submit(key)
            selector.start()
            while True:
                if failure:
                    raise failure[0]
                with lock:
                    pending = list(futures)
                if not pending:
                    if done.is_set():
                        break
                    done.wait(0.5)  # nothing to train until the next selection exists
                    continue
                finished, _ = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    with lock:
                        key = futures.pop(fut)
                    yield key, RunRecord(**fut.result())
        except BaseException as exc:  # Ctrl-C or a failed run: stop now, finished runs are stored
            failure.append(exc)  # the selection thread stops after its current selection
            pool.shutdown(wait=False, cancel_futures=True)
            for child in mp.active_children():  # the runs in flight resume from checkpoints
                child.terminate()
            raise
        finally:
            torch.set_num_threads(parent_threads)
        pool.shutdown()

    def select(self, method: str, fraction: float, seed: int) -> tuple[Selection, float]:
        """Select (or load the saved selection) for ``method`` at ``fraction`` and ``seed``."""
        path = self.store.selection_path(self.keys.selection(method, fraction, seed))
        saved = None  # under torchrun rank 0 reads the saved selection and shares it
        if distributed.is_main() and path.is_file():
            try:
                saved = Selection.load(path)
            except DeepcoreError as exc:  # damaged: made again, deterministically
                log.warning("%s; selecting again", exc)
        saved = distributed.share(saved)
        if saved is not None:
            return saved, float(saved.meta.get("seconds", 0.0))
        cache = self._inputs.setdefault(seed, {})
        ctx = SelectionContext(
            n=len(self.data.train),
            labels=self.data.train.labels,
            seed=seed,
            balance=self.config.balance,
            device=str(self.device),
            dataset=self.data,
            pretrain=self.config.pretrain_spec(),
            networks=self.host.networks,
            scores=cache.get("scores", {}).get(method),
        )
        for k in _SHARED:  # the seed's selection model and its outputs, when made already
            setattr(ctx, k, cache.get(k))
        selector = self.host.create_selector(
            method, self.config.method_options.get(method, {}), self.config.variant
        )
        sampler = None  # the run's sampler, for the methods that rank (others pick themselves)
        if self.config.sampler and isinstance(selector, ScoreSelector):
            sampler = self.host.create_sampler(self.config.sampler, self.config.sampler_options)
        t0 = time.perf_counter()
        sel = run_selection(
            self.host,
            selector,
            ctx,
            fraction=fraction,
            dataset_name=self.data.name,
            sampler=sampler,
        )
        seconds = time.perf_counter() - t0
        for k in _SHARED:
            cache[k] = getattr(ctx, k)
        if isinstance(selector, ScoreSelector) and sel.scores is not None:
            cache.setdefault("scores", {})[method] = sel.scores  # reused at other fractions
        sel = Selection(sel.indices, sel.weights, sel.scores, {**sel.meta, "seconds": seconds})
        if distributed.is_main():
            sel.save(path)
        return sel, seconds

    def run_one(self, key: dict[str, Any]) -> RunRecord:
        """Select (unless full) and train one target network; evaluate on the test split."""
        seed, method = key["seed"], key["method"]
        if method == FULL:
            indices, weights, sel_seconds = np.arange(len(self.data.train)), None, 0.0
        else:
            sel, sel_seconds = self.select(method, key["fraction"], seed)
            indices, weights = sel.indices, sel.weights
        seed_everything(seed)
        net = self.host.networks.build(
            key["network"], self.data.channels, self.data.num_classes, self.data.image_size
        )
        train, test = self.data.train.subset(indices), self.data.test
        train, test = on_device(train, self.device), on_device(test, self.device)
        run = {"kind": "coreset", **{k: key[k] for k in ("method", "fraction", "seed", "network")}}

        def observe(epoch: int, metrics: dict[str, float]) -> None:
            self.host.hook.on_train_epoch_end(run=run, epoch=epoch, metrics=metrics)

        try:
            result = train_model(
                net,
                train,
                self.config.train_config(seed),
                self.device,
                weights=weights,
                test=test,
                checkpoint=self.store.checkpoint_path(key),
                desc=f"{method} f={key['fraction']:g} {key['network']} s{seed}",
                callbacks=[observe],
            )
        except TrainingDiverged as exc:
            # A diverged run is a result too: recorded (accuracy NaN) and counted in reports.
            self.log(f"warning: {exc}")
            nan = float("nan")
            return RunRecord(key, nan, nan, sel_seconds, 0.0, len(indices), [])
        return RunRecord(
            key,
            float(result.final_accuracy or 0.0),
            float(result.best_accuracy or 0.0),
            sel_seconds,
            result.seconds,
            len(indices),
            result.history,
        )


#: context fields shared by every selection of one seed
_SHARED = ("model", "features", "probs", "logits", "dynamics", "cache_folder")

_WORKER: dict[str, Experiment] = {}


def _worker_init(config: ExperimentConfig, threads: int, parent: int) -> None:
    import os
    import signal
    import threading

    from deepcore_core.engine.devices import setup_cpu

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    os.environ["DEEPCORE_PROGRESS"] = "0"
    setup_cpu(threads)
    _WORKER["exp"] = Experiment(config, PluginHost(), log=lambda m: None)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker within ``every`` seconds of its parent's death (even by SIGKILL)."""
    import os

    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _worker_run(key: dict[str, Any]) -> dict[str, Any]:
    return _WORKER["exp"].run_one(key).as_dict()
