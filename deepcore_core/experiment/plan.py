"""The plan of an experiment: the grid expanded into runs, and the one place keys are made.

A *run key* identifies one trained-and-evaluated model (method, fraction, seed, network and
every setting that changes its result); a *selection key* identifies one coreset, shared by
every network trained on it. Both are JSON-able dicts hashed by :func:`run_id`; their
contents are part of the results format, so old results keep resuming.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from deepcore_core.engine.config import TrainConfig
from deepcore_core.experiment.records import BASELINE, FULL
from deepcore_core.settings import RunSettings


def run_id(key: dict[str, Any]) -> str:
    """A stable short hash of a run or selection key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class RunKey:
    """Makes every key of an experiment on one dataset (name and fingerprint)."""

    config: RunSettings
    dataset: str
    fingerprint: str
    #: method name -> its selector class, for each method's default pool and rule revision
    selectors: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: the full training set's size, for protocol ``iterations``'s step count
    train_size: int | None = None

    def method_rules(self, method: str) -> dict[str, Any]:
        """The pool that runs (the settings', else the method's default) and the method's
        rule revision where it is not 0 (so keys made before revisions stay valid)."""
        cls = self.selectors.get(method)
        balance = self.config.balance
        if balance is None:
            balance = True if cls is None else bool(cls.default_balance)
        revision = 0 if cls is None else int(cls.revision)
        return {"balance": balance, **({"revision": revision} if revision else {})}

    def train_config(self, seed: int) -> TrainConfig:
        """How every model of ``seed`` trains (the same steps for each under protocol
        iterations)."""
        return self.config.train_config(seed, self.train_size)

    def run(self, method: str, fraction: float, seed: int, network: str) -> dict[str, Any]:
        """The key of one run (``method`` ``full`` is the full-data model at fraction 1)."""
        c = self.config
        key: dict[str, Any] = {
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "network": network,
            "seed": seed,
            "train": self.train_config(seed).key(),
            "method": method,
            "fraction": fraction,
        }
        if method == FULL:
            return key
        if c.schedule:  # coreset models only: the full-data model stays the reference
            key["schedule"] = {"name": c.schedule, "options": dict(c.schedule_options)}
        return {
            **key,
            **self.method_rules(method),
            "options": c.method_options.get(method, {}),
            "selection_network": c.selection_network,
            "selection_epochs": c.selection_epochs,
            "pretrained": c.pretrained,
            **c.selection_lr_key(),
            **c.rules_key(),
        }

    def selection(self, method: str, fraction: float, seed: int) -> dict[str, Any]:
        """The key of one selection (the same for every network trained on it)."""
        c = self.config
        return {
            "method": method,
            "fraction": fraction,
            "seed": seed,
            **self.method_rules(method),
            "options": c.method_options.get(method, {}),
            "fingerprint": self.fingerprint,
            "selection_network": c.selection_network,
            "pretrained": c.pretrained,
            "selection_epochs": c.selection_epochs,
            "pretrain": c.pretrain_spec().config_for(seed).key(),
            **c.rules_key(),
        }


def expand(keys: RunKey, methods: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every run of the grid: per seed and network, the full-data model first."""
    c = keys.config
    runs = []
    for seed in c.seeds:
        for net in c.targets():
            if c.include_full:
                runs.append(keys.run(FULL, 1.0, seed, net))
            runs += [keys.run(m, f, seed, net) for m in methods for f in c.fractions]
    return runs


def methods_of(config: RunSettings, installed: list[str]) -> tuple[str, ...]:
    """The methods run: the configured ones (default: all installed), the baseline first."""
    return tuple(dict.fromkeys((BASELINE, *(config.methods or installed))))


def selections_of(todo: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """The distinct (method, fraction, seed) selections the runs in ``todo`` need."""
    return sorted(
        {(k["method"], k["fraction"], k["seed"]) for k in todo if k["method"] != FULL},
        key=lambda t: (t[2], t[0], t[1]),
    )
