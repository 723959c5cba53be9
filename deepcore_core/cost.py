"""What each stage of a run cost: wall and CPU seconds and the samples it processed.

A run's stages are the selection model's training, embedding, scoring, picking, the coreset
model's training and its evaluation. A stage whose output came from a cache, or from an
earlier method of the same seed, is recorded with the cost it had when it was computed and
marked ``reused``: a report can then charge it to every method that uses it ("from
scratch") or only where it was paid ("marginal").
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any

#: the stages, in the order a run goes through them
STAGES = ("selection_model", "embedding", "scoring", "picking", "training", "evaluation")


@dataclasses.dataclass
class StageCost:
    """One stage's cost.

    :ivar seconds: wall time (on CUDA, with the device's work finished at both ends).
    :ivar cpu_seconds: this process's CPU time over the stage.
    :ivar samples: samples processed (a forward pass, and a backward pass when training).
    :ivar reused: the output was reused (a cache, an earlier method of the seed): these
        numbers are what it cost when it was computed, not paid again here.
    """

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    samples: int = 0
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``reused`` only where true)."""
        out: dict[str, Any] = {
            "seconds": round(self.seconds, 6),
            "cpu_seconds": round(self.cpu_seconds, 6),
            "samples": int(self.samples),
        }
        if self.reused:
            out["reused"] = True
        return out

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> StageCost:
        """Read the JSON form back."""
        return cls(
            float(data.get("seconds", 0.0)),
            float(data.get("cpu_seconds", 0.0)),
            int(data.get("samples", 0)),
            bool(data.get("reused", False)),
        )

    def plus(self, other: StageCost) -> StageCost:
        """Two costs of one stage together (reused only when both were)."""
        return StageCost(
            self.seconds + other.seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.samples + other.samples,
            self.reused and other.reused,
        )

    def as_reused(self) -> StageCost:
        """The same cost, marked as not paid again."""
        return dataclasses.replace(self, reused=True)


def _sync(device: Any) -> None:
    if device is not None and str(device).startswith("cuda"):
        import torch  # only where there is a device to wait for: the CLI stays torch-free

        torch.cuda.synchronize(torch.device(device))


@contextlib.contextmanager
def measure(device: Any = None, samples: int = 0) -> Iterator[StageCost]:
    """Time the ``with`` block into the yielded :class:`StageCost` (``samples`` may be set
    inside it)."""
    cost = StageCost(samples=samples)
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        _sync(device)
        cost.seconds = time.perf_counter() - wall
        cost.cpu_seconds = time.process_time() - cpu


def totals(stages: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``marginal`` (the seconds this run paid) and ``from_scratch`` (every stage it used,
    reused ones included) over a record's stages."""
    costs = [StageCost.of(c) for c in stages.values()]
    return {
        "marginal_seconds": sum(c.seconds for c in costs if not c.reused),
        "from_scratch_seconds": sum(c.seconds for c in costs),
    }
