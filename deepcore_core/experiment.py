"""Experiments: pretrain, select, train on the coreset and evaluate, over methods x fractions x
seeds x target networks, with the random baseline and the full-data model as references.

Each finished run is one JSON file in the output folder (written atomically), so running the
same command again skips finished runs and resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core._io import atomic_write
from deepcore_core.api import run_selection
from deepcore_core.context import SelectionContext
from deepcore_core.data.sources import DatasetSplits
from deepcore_core.engine.devices import resolve_device, seed_everything
from deepcore_core.engine.pretrain import PretrainSpec
from deepcore_core.engine.training import TrainConfig, train_model
from deepcore_core.errors import DeepcoreError, TrainingDiverged
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import ScoreSelector

FULL = "full"
BASELINE = "uniform"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines an experiment (the keys of ``deepcore run --config``)."""

    dataset: str = "digits"
    data_root: str | None = None
    methods: tuple[str, ...] = ()  # empty: every installed method
    method_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    fractions: tuple[float, ...] = (0.1,)
    balance: bool = True
    selection_network: str = "lenet"
    selection_epochs: int = 10
    selection_lr: float | None = None  # None: the coreset learning rate ``lr``
    pretrained: str | None = None
    networks: tuple[str, ...] = ()  # target networks; empty: the selection network
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    min_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    augment: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"
    output: str = "runs"
    cache_dir: str | None = None
    include_full: bool = True

    def train_config(self, seed: int) -> TrainConfig:
        """The training settings for coreset (and full-data) models."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            min_lr=min(self.min_lr, self.lr),
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            augment=self.augment,
            seed=seed,
        )

    def pretrain_spec(self) -> PretrainSpec:
        """How the selection model is trained (no augmentation, as in the paper)."""
        # the coreset optimiser settings; PretrainSpec.config_for sets epochs, seed, no augmentation
        base = dataclasses.replace(
            self.train_config(0), epochs=self.selection_epochs, augment=False
        )
        if self.selection_lr is not None:
            lr = self.selection_lr
            base = dataclasses.replace(base, lr=lr, min_lr=min(self.min_lr, lr))
        return PretrainSpec(
            self.selection_network,
            self.selection_epochs,
            base,
            self.pretrained,
            Path(self.cache_dir) if self.cache_dir else None,
        )

    def selection_lr_key(self) -> dict[str, float]:
        """The selection learning rate for run keys, only where it differs from ``lr``."""
        if self.selection_lr is None or self.selection_lr == self.lr:
            return {}
        return {"selection_lr": self.selection_lr}

    def targets(self) -> tuple[str, ...]:
        """The networks trained on each coreset."""
        return self.networks or (self.selection_network,)


FIELDS = {f.name for f in dataclasses.fields(ExperimentConfig)}


def make_config(values: dict[str, Any]) -> ExperimentConfig:
    """Build and check a config from a mapping (unknown keys and bad values are errors)."""
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise DeepcoreError(
            f"unknown experiment setting '{unknown[0]}' (valid: {', '.join(sorted(FIELDS))})"
        )
    v = dict(values)
    for key in ("methods", "networks"):
        if key in v and isinstance(v[key], str):
            v[key] = (v[key],)
    for key in ("fractions", "seeds"):
        if key in v and not isinstance(v[key], list | tuple):
            v[key] = (v[key],)
    for key in ("methods", "fractions", "networks", "seeds"):
        if key in v:
            v[key] = tuple(v[key])
    from deepcore_core.budget import check_fraction

    if "fractions" in v:
        v["fractions"] = tuple(check_fraction(f) for f in v["fractions"])
    if "seeds" in v:
        v["seeds"] = tuple(_as_int(s, "seed") for s in v["seeds"])
    for key in ("selection_epochs", "epochs", "batch_size"):
        if key in v:
            v[key] = _as_int(v[key], key)
            if v[key] < 1:
                raise DeepcoreError(f"{key} must be a positive integer, got {v[key]}")
    for key in ("balance", "nesterov", "augment", "include_full"):
        if key in v and not isinstance(v[key], bool):
            raise DeepcoreError(f"{key} must be true or false, got {v[key]!r}")
    floats = ("lr", "min_lr", "momentum", "weight_decay")
    for key in floats:
        if key in v:
            try:
                v[key] = float(v[key])
            except (TypeError, ValueError):
                raise DeepcoreError(f"{key} must be a number, got {v[key]!r}") from None
    if v.get("selection_lr") is not None:
        try:
            v["selection_lr"] = float(v["selection_lr"])
        except (TypeError, ValueError):
            raise DeepcoreError(
                f"selection_lr must be a number, got {v['selection_lr']!r}"
            ) from None
        if not v["selection_lr"] > 0:
            raise DeepcoreError(f"selection_lr must be > 0, got {v['selection_lr']}")
    if "method_options" in v and not isinstance(v["method_options"], dict):
        raise DeepcoreError("method_options must map method names to option mappings")
    cfg = ExperimentConfig(**v)
    if not cfg.seeds:
        raise DeepcoreError("give at least one seed")
    cfg.train_config(0)  # validates the training settings
    cfg.pretrain_spec().config_for(0)  # and the selection model's
    return cfg


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise DeepcoreError(f"{what} must be an integer, got {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DeepcoreError(f"{what} must be an integer, got {value!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise DeepcoreError(f"{what} must be an integer, got {value!r}")
    return out


@dataclasses.dataclass
class RunRecord:
    """One finished run: a method at a fraction, a seed and a target network."""

    key: dict[str, Any]
    accuracy: float
    best_accuracy: float
    selection_seconds: float
    train_seconds: float
    size: int
    history: list[dict[str, float]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dataclasses.asdict(self)

    @property
    def diverged(self) -> bool:
        """Whether training diverged (no accuracy, or a non-finite final training loss)."""
        last = self.history[-1].get("train_loss", 0.0) if self.history else 0.0
        return not np.isfinite(self.accuracy) or not np.isfinite(last)


def run_id(key: dict[str, Any]) -> str:
    """A stable short hash of a run key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


class Experiment:
    """Runs an :class:`ExperimentConfig` with one plugin host."""

    def __init__(
        self, config: ExperimentConfig, host: PluginHost, log: Callable[[str], None] = print
    ) -> None:
        self.config = config
        self.host = host
        self.log = log
        self.out = Path(config.output)
        self.device = resolve_device(config.device)
        methods = config.methods or tuple(host.registry.names())
        for m in methods:
            host.registry.get(m, host.failed_plugins())
            opts = config.method_options.get(m, {})
            host.create_selector(m, opts)  # validates options before any work
        for m in config.method_options:
            if m not in methods:
                raise DeepcoreError(f"method_options given for '{m}', which is not run")
        self.methods = tuple(dict.fromkeys((BASELINE, *methods)))
        for net in (*config.targets(), config.selection_network):
            host.networks.get(net)
        self.data: DatasetSplits = host.datasets.load(config.dataset, config.data_root)
        for net in (*config.targets(), config.selection_network):
            info = host.networks.get(net)
            if not info.min_size <= self.data.image_size <= info.max_size:
                raise DeepcoreError(
                    f"network '{net}' takes images of {info.min_size} to "
                    f"{info.max_size} pixels, not {self.data.image_size}"
                )
        self.fingerprint = dataset_fingerprint(
            self.data.train.labels, len(self.data.train), self.data.name
        )
        self._inputs: dict[int, dict[str, Any]] = {}

    # -- planning ------------------------------------------------------------------------
    def base_key(self, seed: int, network: str) -> dict[str, Any]:
        c = self.config
        return {
            "dataset": self.data.name,
            "fingerprint": self.fingerprint,
            "network": network,
            "seed": seed,
            "train": dataclasses.asdict(c.train_config(seed)),
        }

    def plan(self) -> list[dict[str, Any]]:
        """Every run of the experiment as a key (full-data runs first, per seed)."""
        c = self.config
        runs = []
        for seed in c.seeds:
            for net in c.targets():
                if c.include_full:
                    runs.append({**self.base_key(seed, net), "method": FULL, "fraction": 1.0})
                for method in self.methods:
                    for f in c.fractions:
                        runs.append(
                            {
                                **self.base_key(seed, net),
                                "method": method,
                                "fraction": f,
                                "balance": c.balance,
                                "options": c.method_options.get(method, {}),
                                "selection_network": c.selection_network,
                                "selection_epochs": c.selection_epochs,
                                "pretrained": c.pretrained,
                                **c.selection_lr_key(),
                            }
                        )
        return runs

    def checkpoint_for(self, key: dict[str, Any]) -> Path:
        """Where an unfinished run keeps its training state (removed when it finishes)."""
        return self.out / "checkpoints" / f"{run_id(key)}.pt"

    def path_for(self, key: dict[str, Any]) -> Path:
        f = f"f{key['fraction']:g}"
        return (
            self.out
            / "runs"
            / key["method"]
            / (f"{key['network']}-{f}-s{key['seed']}-{run_id(key)}.json")
        )

    # -- running -------------------------------------------------------------------------
    def run(self, jobs: int = 1) -> list[RunRecord]:
        """Run every planned run not already finished; return all records.

        Selections are made first, in this process, so each seed's selection model,
        embeddings and scores are computed once and shared by every method and fraction.
        Training runs then go to ``jobs`` worker processes (1: in this process). Each
        finished run is written to its own file and appended to ``results.jsonl``.
        """
        from deepcore_core.progress import Progress

        if jobs < 1:
            raise DeepcoreError(f"jobs must be >= 1, got {jobs}")
        plan = self.plan()
        self._restore_from_results(plan)
        todo = [k for k in plan if not self.path_for(k).is_file()]
        if len(todo) < len(plan):
            self.log(f"resuming: {len(plan) - len(todo)} of {len(plan)} runs already done")
        selections = sorted(
            {(k["method"], k["fraction"], k["seed"]) for k in todo if k["method"] != FULL},
            key=lambda t: (t[2], t[0], t[1]),
        )
        with Progress(len(selections), "selections") as bar:
            for method, fraction, seed in selections:
                self.select(method, fraction, seed)
                bar.update(1, f"{method} f={fraction:g} s{seed}")
        with Progress(len(plan), "training runs") as bar:
            bar.update(len(plan) - len(todo))
            for key, record in self._train_all(todo, jobs):
                self._finish(key, record)
                bar.update(1, f"{key['method']} f={key['fraction']:g} acc={record.accuracy:.4f}")
        records = [load_record(self.path_for(k)) for k in plan]
        write_summary(records, self.out)
        return records

    def _restore_from_results(self, plan: list[dict[str, Any]]) -> None:
        """Recreate missing run files from ``results.jsonl`` (e.g. a copied results file)."""
        path = self.out / "results.jsonl"
        if not path.is_file():
            return
        wanted = {run_id(k): k for k in plan if not self.path_for(k).is_file()}
        if not wanted:
            return
        for line in path.read_text().splitlines():
            try:
                record = RunRecord(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut short by an interruption
            key = wanted.pop(run_id(record.key), None)
            if key is not None:
                with atomic_write(self.path_for(key), "w") as fh:
                    json.dump(record.as_dict(), fh, indent=2)

    def _train_all(
        self, todo: list[dict[str, Any]], jobs: int
    ) -> Iterator[tuple[dict[str, Any], RunRecord]]:
        if jobs == 1 or len(todo) <= 1:
            for key in todo:
                yield key, self.run_one(key)
            return
        import concurrent.futures as cf
        import multiprocessing as mp
        import os

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with cf.ProcessPoolExecutor(
            jobs,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.config, threads),
        ) as pool:
            futures = {pool.submit(_worker_run, key): key for key in todo}
            for fut in cf.as_completed(futures):
                yield futures[fut], RunRecord(**fut.result())

    def _finish(self, key: dict[str, Any], record: RunRecord) -> None:
        with atomic_write(self.path_for(key), "w") as fh:
            json.dump(record.as_dict(), fh, indent=2)
        line = json.dumps(record.as_dict()) + "\n"
        results = self.out / "results.jsonl"
        if results.is_file() and results.stat().st_size:
            with open(results, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a line cut short by an interruption: start anew
                    line = "\n" + line
        with open(results, "a") as fh:  # one write per finished run
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.checkpoint_for(key).unlink(missing_ok=True)

    def selection_inputs(self, seed: int) -> dict[str, Any]:
        """Model, features, probabilities and dynamics for ``seed``, computed once."""
        if seed not in self._inputs:
            self._inputs[seed] = {}
        return self._inputs[seed]

    def select(self, method: str, fraction: float, seed: int) -> tuple[Selection, float]:
        """Select (or load the saved selection) for ``method`` at ``fraction`` and ``seed``."""
        c = self.config
        key = {
            "method": method,
            "fraction": fraction,
            "seed": seed,
            "balance": c.balance,
            "options": c.method_options.get(method, {}),
            "fingerprint": self.fingerprint,
            "selection_network": c.selection_network,
            "pretrained": c.pretrained,
            "selection_epochs": c.selection_epochs,
            "pretrain": dataclasses.asdict(c.pretrain_spec().config_for(seed)),
        }
        sel_path = self.out / "selections" / f"{method}-f{fraction:g}-s{seed}-{run_id(key)}.npz"
        if sel_path.is_file():
            sel = Selection.load(sel_path)
            return sel, float(sel.meta.get("seconds", 0.0))
        cache = self.selection_inputs(seed)
        scores = cache.get("scores", {}).get(method)
        ctx = SelectionContext(
            n=len(self.data.train),
            labels=self.data.train.labels,
            seed=seed,
            balance=c.balance,
            device=str(self.device),
            dataset=self.data,
            pretrain=c.pretrain_spec(),
            model=cache.get("model"),
            features=cache.get("features"),
            probs=cache.get("probs"),
            dynamics=cache.get("dynamics"),
            scores=scores,
            networks=self.host.networks,
            cache_folder=cache.get("cache_folder"),
        )
        selector = self.host.create_selector(method, c.method_options.get(method, {}))
        t0 = time.perf_counter()
        sel = run_selection(
            self.host, selector, ctx, fraction=fraction, dataset_name=self.data.name
        )
        seconds = time.perf_counter() - t0
        cache.update(
            model=ctx.model,
            features=ctx.features,
            probs=ctx.probs,
            dynamics=ctx.dynamics,
            cache_folder=ctx.cache_folder,
        )
        if isinstance(selector, ScoreSelector) and sel.scores is not None:
            cache.setdefault("scores", {})[method] = sel.scores  # reused at other fractions
        sel = Selection(sel.indices, sel.weights, sel.scores, {**sel.meta, "seconds": seconds})
        sel.save(sel_path)
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
        train = self.data.train.subset(indices)
        test = self.data.test
        if self.device.type == "cuda" and hasattr(train, "to"):
            train, test = train.to(self.device), test.to(self.device)
        try:
            result = train_model(
                net,
                train,
                self.config.train_config(seed),
                self.device,
                weights=weights,
                test=test,
                checkpoint=self.checkpoint_for(key),
                desc=f"{method} f={key['fraction']:g} {key['network']} s{seed}",
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


_WORKER: dict[str, Experiment] = {}


def _worker_init(config: ExperimentConfig, threads: int) -> None:
    import os

    import torch

    from deepcore_core.plugins import PluginHost

    os.environ["DEEPCORE_PROGRESS"] = "0"
    torch.set_num_threads(threads)
    _WORKER["exp"] = Experiment(config, PluginHost(), log=lambda m: None)


def _worker_run(key: dict[str, Any]) -> dict[str, Any]:
    return _WORKER["exp"].run_one(key).as_dict()


def load_record(path: Path) -> RunRecord:
    """Read one run file."""
    return RunRecord(**json.loads(path.read_text()))


def summarize(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Mean and std of final accuracy per (method, fraction, network)."""
    groups: dict[tuple[str, float, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.key["method"], r.key["fraction"], r.key["network"]), []).append(r)
    rows = []
    for (method, fraction, network), rs in sorted(groups.items(), key=_order):
        acc = np.array([r.accuracy if not r.diverged else np.nan for r in rs], dtype=float)
        ok = acc[np.isfinite(acc)]
        rows.append(
            {
                "method": method,
                "fraction": fraction,
                "network": network,
                "runs": len(rs),
                "diverged": int(len(acc) - len(ok)),
                "mean": float(ok.mean()) if ok.size else float("nan"),
                "std": float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
                "selection_seconds": float(np.mean([r.selection_seconds for r in rs])),
                "size": int(np.mean([r.size for r in rs])),
            }
        )
    return rows


def _order(item: tuple[tuple[str, float, str], Any]) -> tuple[int, str, float, str]:
    method, fraction, network = item[0]
    rank = 0 if method == FULL else 1 if method == BASELINE else 2
    return rank, method, fraction, network


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: rows methods, columns fractions (x networks), mean +- std in %."""
    nets = sorted({r["network"] for r in rows})
    fractions = sorted({r["fraction"] for r in rows if r["method"] != FULL})
    cols = [(f, n) for n in nets for f in fractions]
    by = {(r["method"], r["fraction"], r["network"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = ["method"] + [f"{f:g}" + (f" {n}" if len(nets) > 1 else "") for f, n in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = []
        for f, n in cols:
            r = by.get((m, 1.0, n)) if m == FULL else by.get((m, f, n))
            cells.append("-" if r is None else f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}")
        lines.append("| " + " | ".join([m, *cells]) + " |")
    return "\n".join(lines)


def write_summary(records: list[RunRecord], out: Path) -> list[dict[str, Any]]:
    """Write ``summary.csv`` and ``summary.md`` (atomically) and return the rows."""
    rows = summarize(records)
    with atomic_write(out / "summary.csv", "w") as fh:
        fh.write("method,fraction,network,runs,mean,std,size,selection_seconds\n")
        for r in rows:
            fh.write(
                f"{r['method']},{r['fraction']:g},{r['network']},{r['runs']},"
                f"{r['mean']:.6f},{r['std']:.6f},{r['size']},"
                f"{r['selection_seconds']:.3f}\n"
            )
    with atomic_write(out / "summary.md", "w") as fh:
        fh.write(format_summary(rows) + "\n")
    return rows
