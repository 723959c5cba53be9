"""Recording per-sample training dynamics while a model trains, on the training device.

:class:`Recorder` keeps its state in one dict of tensors (checkpointed and restored as is):
the full epochs x N history, or, with a :class:`~deepcore_core.dynamics.RunningSpec`, the
current epoch's values folded into running statistics at the end of every epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from deepcore_core import distributed
from deepcore_core.dynamics import Dynamics, RunningDynamics, RunningSpec
from deepcore_core.errors import DeepcoreError

#: the per-epoch values recorded from every forward pass
_FLOATS = ("loss", "margin", "max_other", "sum_sq", "change")


class Recorder:
    """Collect dynamics for ``n`` samples over ``epochs`` epochs on ``device``."""

    def __init__(
        self, epochs: int, n: int, device: torch.device, running: RunningSpec | None = None
    ) -> None:
        self.epochs, self.n, self.running = epochs, n, running
        rows = 1 if running else epochs  # running: only the current epoch's row
        floats = _FLOATS if running is None else ("loss", "margin", "max_other", "change")
        s = {k: torch.zeros(rows, n, device=device) for k in floats}
        s["correct"] = torch.zeros(rows, n, device=device, dtype=torch.bool)
        s["_prev"] = torch.zeros(0, device=device)  # last epoch's probabilities, N x C
        if running is not None:
            sizes = running.sizes(epochs)
            for k in ("margin_sum", "prob_margin_sum", "unc_sum", "dual_sum", "early_sum", "tdds"):
                s[k] = torch.zeros(n, device=device, dtype=torch.float64)
            s["forgetting"] = torch.zeros(n, device=device, dtype=torch.int32)
            s["ever_correct"] = torch.zeros(n, device=device, dtype=torch.bool)
            s["last_correct"] = torch.zeros(n, device=device, dtype=torch.bool)
            s["loss_ring"] = torch.zeros(sizes["unc"], n, device=device)
            s["change_ring"] = torch.zeros(max(sizes["tdds"], 0), n, device=device)
        self.state = s
        #: under torchrun: the samples this rank recorded in the current epoch
        self.seen = (
            torch.zeros(n, device=device, dtype=torch.bool) if distributed.active() else None
        )

    def record(
        self, epoch: int, idx: torch.Tensor, out: torch.Tensor, y: torch.Tensor, per: torch.Tensor
    ) -> None:
        """Record one mini-batch: logits ``out``, labels ``y``, per-sample losses ``per``."""
        s, row = self.state, 0 if self.running else epoch
        true = out.gather(1, y[:, None]).squeeze(1)
        other = out.scatter(1, y[:, None], float("-inf")).max(1).values
        s["loss"][row, idx] = per
        s["correct"][row, idx] = out.argmax(1) == y
        s["margin"][row, idx] = true - other
        logp = torch.log_softmax(out, 1)
        p = logp.exp()
        s["max_other"][row, idx] = p.scatter(1, y[:, None], 0.0).max(1).values
        if "sum_sq" in s:
            s["sum_sq"][row, idx] = (p * p).sum(1)
        if s["_prev"].numel() == 0:  # the first batch: now the class count is known
            s["_prev"] = torch.zeros(self.n, p.shape[1], device=p.device)
        if epoch > 0:
            prev = s["_prev"][idx].clamp_min(1e-12).log()
            s["change"][row, idx] = (p * (logp - prev)).abs().sum(1)
        s["_prev"][idx] = p
        if self.seen is not None:
            self.seen[idx] = True

    def merge(self, epoch: int) -> None:
        """Under torchrun: every rank's samples of the finished epoch on every rank. Each
        sample was recorded by exactly one rank; the others hold zeros there."""
        s, row = self.state, 0 if self.running else epoch
        for k in _FLOATS:
            if k in s:
                distributed.sum_(s[k][row])
        correct = s["correct"][row].int()
        s["correct"][row] = distributed.sum_(correct) > 0
        assert self.seen is not None
        s["_prev"] *= self.seen[:, None]
        distributed.sum_(s["_prev"])
        self.seen.zero_()

    def end_epoch(self, epoch: int) -> None:
        """Fold the finished epoch (0-based) into the running statistics, if running (under
        torchrun, after merging the ranks' records)."""
        if self.seen is not None:
            self.merge(epoch)
        if self.running is None:
            return
        s, sizes = self.state, self.running.sizes(self.epochs)
        loss, correct = s["loss"][0], s["correct"][0]
        p = torch.exp(-loss.double())
        s["margin_sum"] += s["margin"][0].double()
        s["prob_margin_sum"] += p - s["max_other"][0].double()
        if epoch > 0:
            s["forgetting"] += (s["last_correct"] & ~correct).int()
        s["ever_correct"] |= correct
        s["last_correct"] = correct.clone()
        ring = s["loss_ring"]
        ring[epoch % len(ring)] = loss
        if epoch >= sizes["unc"] - 1:  # the ring holds exactly the last window
            s["unc_sum"] += torch.exp(-ring.double()).std(0, correction=0)
        if epoch < sizes["early"]:
            s["early_sum"] += p
            if epoch >= sizes["dual"] - 1:
                rows = [(epoch - j) % len(ring) for j in range(sizes["dual"])]
                w = torch.exp(-ring[rows].double())
                s["dual_sum"] += w.std(0, correction=0) * (1.0 - w.mean(0))
            if epoch >= 1 and sizes["tdds"] > 0:  # changes of epochs 1 .. early - 1
                changes = s["change_ring"]
                changes[(epoch - 1) % len(changes)] = s["change"][0]
                if epoch >= sizes["tdds"]:
                    w = changes.double()
                    dev = (w - w.mean(0)).square().sum(0).sqrt()
                    decay = self.running.decay
                    s["tdds"].mul_(1.0 - decay).add_(dev, alpha=decay)
        for k in ("loss", "margin", "max_other", "change"):
            s[k].zero_()
        s["correct"].zero_()

    def result(self) -> Dynamics | RunningDynamics:
        """The recorded dynamics as NumPy arrays."""
        s = {k: v.cpu().numpy() for k, v in self.state.items() if not k.startswith("_")}
        if self.running is None:
            return Dynamics(**s)
        sizes, e = self.running.sizes(self.epochs), self.epochs
        return RunningDynamics(
            epochs=e,
            spec=self.running,
            aum=s["margin_sum"] / e,
            aum_probability=s["prob_margin_sum"] / e,
            forgetting=s["forgetting"],
            ever_correct=s["ever_correct"],
            dyn_unc=s["unc_sum"] / (e - sizes["unc"] + 1),
            dual=s["dual_sum"] / (sizes["early"] - sizes["dual"] + 1),
            tdds=s["tdds"],
            early_p_true=s["early_sum"] / sizes["early"],
        )


def summarize(dynamics: Dynamics, spec: RunningSpec) -> RunningDynamics:
    """The running statistics of a full history, as recording with ``spec`` would give them."""
    if dynamics.max_other is None or dynamics.change is None:
        raise DeepcoreError("summarising dynamics needs their 'max_other' and 'change' arrays")
    epochs, n = dynamics.correct.shape
    recorder = Recorder(epochs, n, torch.device("cpu"), spec)
    s = recorder.state
    for epoch in range(epochs):
        for k in ("loss", "margin", "max_other", "change", "correct"):
            s[k][0] = torch.from_numpy(np.asarray(getattr(dynamics, k)[epoch]))
        recorder.end_epoch(epoch)
    result = recorder.result()
    assert isinstance(result, RunningDynamics)
    return result
