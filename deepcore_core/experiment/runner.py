"""The runner: selections (one selection model per seed, shared) and training runs.

Selections are made in this process, so each seed's selection model, embeddings and scores
are computed once and shared by every method and fraction. Training runs go to ``jobs``
worker processes (1: this process) as soon as their selection exists, so workers train
while later selections are made. Observers hear of every epoch, selection and finished run
through the ``on_*`` hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from deepcore_core import distributed
from deepcore_core._io import check_writable
from deepcore_core.cost import STAGES, StageCost, totals
from deepcore_core.data.sources import DatasetSplits
from deepcore_core.engine.devices import resolve_device
from deepcore_core.errors import DeepcoreError, TrainingDiverged
from deepcore_core.experiment.plan import RunKey, expand, methods_of
from deepcore_core.experiment.records import BASELINE, FULL, RunRecord, write_summary
from deepcore_core.experiment.schedule import run_parallel
from deepcore_core.experiment.store import Store
from deepcore_core.log import log
from deepcore_core.plugins import PluginHost
from deepcore_core.progress import Progress
from deepcore_core.provenance import provenance
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import ScoreSelector
from deepcore_core.settings import RunSettings
from deepcore_core.workflow import (
    StageOutputs,
    context_for_dataset,
    label_needs,
    make_schedule,
    make_selection,
    refuse_label_needs,
    sampler_for,
    train_network,
)


class Experiment:
    """Runs a :class:`RunSettings` with one plugin host.

    Everything is checked before any work: methods and their options, networks, the dataset.
    """

    def __init__(
        self, config: RunSettings, host: PluginHost, log: Callable[[str], None] = print
    ) -> None:
        self.config, self.host, self.log = config, host, log
        if distributed.launched():  # under torchrun: every process runs the experiment
            distributed.start(config.device)
        self.device = resolve_device(config.device)
        self.methods = methods_of(config, host.registry.names())
        made = {
            m: host.create_selector(m, config.method_options.get(m, {}), config.variant)
            for m in self.methods
        }  # validates
        if config.no_labels:  # every method named must run without labels; the default: all that do
            if config.methods:
                for selector in made.values():
                    refuse_label_needs(selector)
            self.methods = tuple(m for m, s in made.items() if not label_needs(s))
        sampler_for(host, None, config.sampler, config.sampler_options)  # validates
        for m, opts in config.method_options.items():
            if m not in self.methods:  # left out (``--method`` narrowed a config): still checked
                try:
                    host.create_selector(m, opts, config.variant)
                except DeepcoreError as exc:
                    raise DeepcoreError(f"method_options: {exc}") from None
        for net in (*config.targets(), config.selection_network):
            host.networks.get(net)
        self.data: DatasetSplits = host.datasets.load(str(config.dataset), config.data_root)
        self._check_schedule()
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
        classes = {m: host.registry.get(m).cls for m in self.methods}
        self.keys = RunKey(config, self.data.name, fingerprint, classes, len(self.data.train))
        check_writable(config.out_dir(), folder=True)
        self.store = Store(config.out_dir())
        self.out = self.store.out
        self._outputs: dict[int, StageOutputs] = {}  # per seed: its selection model's
        self._scores: dict[tuple[int, str], np.ndarray] = {}  # reused at other fractions

    def protocol_line(self) -> str:
        """How long each model trains, in words."""
        c, config = self.config, self.keys.train_config(0)
        if c.protocol == "epochs":
            return f"each model trains {c.epochs} epochs of its own data (protocol epochs)"
        how = "" if c.iterations else f", the full-data model's {c.epochs} epochs"
        return f"each model trains {config.iterations} steps{how} (protocol iterations)"

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
        """Select and train every run of ``todo``; yield each as it finishes: in turn with
        one job, else with :func:`~deepcore_core.experiment.schedule.run_parallel`."""
        from deepcore_core.engine.devices import setup_cpu

        if jobs > 1 and len(todo) > 1:
            yield from run_parallel(self, todo, jobs)
            return
        setup_cpu(self.config.threads)
        for key in todo:
            yield key, self.run_one(key)

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
        if saved is not None:  # its stages keep the cost they had when it was made
            return saved, float(saved.meta.get("seconds", 0.0))
        ctx = context_for_dataset(
            self.host, self.data, self.config, seed, self.device,
            outputs=self._outputs.get(seed), scores=self._scores.get((seed, method)),
        )  # fmt: skip
        selector = self.host.create_selector(
            method, self.config.method_options.get(method, {}), self.config.variant
        )
        sampler = sampler_for(  # a grid's sampler applies to the methods that rank
            self.host, selector, self.config.sampler, self.config.sampler_options,
            rankers_only=True,
        )  # fmt: skip
        run = make_selection(
            self.host, selector, ctx, fraction=fraction, dataset_name=self.data.name,
            sampler=sampler,
        )  # fmt: skip
        self._outputs[seed] = run.outputs
        sel = run.selection
        if isinstance(selector, ScoreSelector) and sel.scores is not None:
            self._scores[(seed, method)] = sel.scores
        cost = {k: run.costs[k].as_dict() for k in STAGES if k in run.costs}
        meta = {**sel.meta, "seconds": run.seconds, "cost": cost}
        sel = Selection(sel.indices, sel.weights, sel.scores, meta)
        if distributed.is_main():
            sel.save(path)
        return sel, run.seconds

    def run_one(self, key: dict[str, Any]) -> RunRecord:
        """Select (unless full) and train one target network; evaluate on the test split."""
        seed, method = key["seed"], key["method"]
        selection, sel_seconds = None, 0.0
        if method != FULL:
            selection, sel_seconds = self.select(method, key["fraction"], seed)
        size = len(self.data.train) if selection is None else len(selection)
        schedule = None
        if method != FULL:  # the full-data model stays the plain reference
            schedule = make_schedule(
                self.host, self.config.schedule, self.config.schedule_options, self.data,
                self.device, seed, selection=None if self._whole(selection) else selection,
            )  # fmt: skip
            if schedule is not None and self._whole(selection):
                selection = None  # a schedule on all of the data (uniform at fraction 1)
        try:
            result = train_network(
                self.host, key["network"], self.data, self.keys.train_config(seed),
                self.device, selection=selection, test=self.data.test,
                run={k: key[k] for k in ("method", "fraction", "seed", "network")},
                checkpoint=self.store.checkpoint_path(key),
                desc=f"{method} f={key['fraction']:g} {key['network']} s{seed}",
                schedule=schedule,
            )  # fmt: skip
        except TrainingDiverged as exc:
            # A diverged run is a result too: recorded (accuracy NaN) and counted in reports.
            self.log(f"warning: {exc}")
            nan = float("nan")
            cost = self.cost(selection, {})
            made = self.provenance(seed, selection)
            return RunRecord(key, nan, nan, sel_seconds, 0.0, size, [], made, cost)
        return RunRecord(
            key,
            float(result.final_accuracy or 0.0),
            float(result.best_accuracy or 0.0),
            sel_seconds,
            result.seconds,
            size,
            result.history,
            self.provenance(seed, selection),
            self.cost(selection, result.costs),
        )

    def _check_schedule(self) -> None:
        """The schedule and its options, before any work; one that selects from the model
        being trained (adaptive) only on the whole set (uniform at fraction 1)."""
        c = self.config
        schedule = make_schedule(
            self.host, c.schedule, c.schedule_options, self.data, self.device, 0
        )
        coresets = set(self.methods) != {BASELINE} or any(f < 1 for f in c.fractions)
        if schedule is not None and schedule.uses_model and coresets:
            raise DeepcoreError(
                f"schedule '{c.schedule}' selects from the whole training set: run it with "
                "--method uniform --fraction 1"
            )

    def _whole(self, selection: Selection | None) -> bool:
        """Whether ``selection`` is the whole training set, unweighted."""
        n = len(self.data.train)
        return selection is None or (len(selection) == n and selection.weights is None)

    def cost(self, selection: Selection | None, training: dict[str, StageCost]) -> dict[str, Any]:
        """A run's cost: its selection's stages (as recorded with the selection), its
        training and evaluation, the totals, and whether parallel jobs shared the cores."""
        stages = dict(selection.meta.get("cost", {})) if selection is not None else {}
        stages.update({k: c.as_dict() for k, c in training.items()})
        return {
            "stages": stages,
            **totals(stages),
            "shared_cores": self.config.jobs > 1 and str(self.device).startswith("cpu"),
        }

    def provenance(self, seed: int, selection: Selection | None = None) -> dict[str, Any]:
        """This run's code, libraries, device, threads and applied augmentation, and the
        encoder its selection's features came from (with its k-NN figure, where known)."""
        augment = self.config.train_config(seed).augment
        kind = getattr(self.data.train, "augment", "unknown") if augment else "none"
        made = provenance(self.host.versions(), self.device, kind)
        encoder = None if selection is None else selection.meta.get("encoder")
        if encoder:
            made["encoder"] = {k: encoder.get(k) for k in ("name", "knn_accuracy", "dim")}
        return made
