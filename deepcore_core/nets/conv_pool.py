"""A convolution followed by ReLU and 2 x 2 pooling, computed through column phases.

Pooling keeps the larger of each pair of neighbouring columns, so the two column phases of
the convolution (its outputs at even and at odd columns) are all it needs: a stride-(1, 2)
convolution whose kernel is one column wider gives both at once, the even phase in the
first ``C`` output channels (the kernel in its first ``k`` columns) and the odd phase in the
next ``C`` (the kernel shifted one column right). Each output sums the same products in the
same order as the plain convolution (the extra column's products are exact zeros), so the
values are the same; the first checked call compares them anyway, and a mismatch makes the
stage fall back to the plain modules for those weights. ReLU commutes with the maximum, so
it runs on the pooled quarter.

Why: a convolution with one to three input channels and few output channels (LeNet's first,
6 of them) fills few of a CPU's vector lanes; doubling the channels halves the positions.
A LeNet embedding pass over Fashion-MNIST's 60,000 images runs 1.29x faster, one over
3 x 32 x 32 images 1.20x (``benchmarks/memory_and_batch.py``, part 3). Used on the CPU only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


class PhasedConvPool:
    """Runs ``conv -> [batch norm] -> ReLU -> 2 x 2 max pooling`` (``stage``, a network's own
    modules) in inference through the two column phases.

    Owns no parameters: it reads the stage's modules and rebuilds its widened kernel whenever
    their tensors' values change (compared with a copy on every call: a few hundred numbers).
    """

    def __init__(self, stage: Sequence[nn.Module]) -> None:
        if not self.applies(stage):
            raise ValueError(f"not a convolution, ReLU and 2 x 2 pooling: {list(stage)}")
        self.stage = list(stage)
        self.conv = cast(nn.Conv2d, stage[0])
        self.norms = [cast(nn.BatchNorm2d, m) for m in stage[1:-2]]
        self._seen: list[torch.Tensor] = []
        self._weight = self._bias = torch.empty(0)
        self._norm_stats: list[list[torch.Tensor | None]] = []
        self._same = False

    @staticmethod
    def applies(stage: Sequence[nn.Module]) -> bool:
        """Whether ``stage`` is a stride-1 convolution, optionally batch norm with running
        statistics, ReLU and 2 x 2 pooling that drops an odd last row or column."""
        conv, *mid, relu, pool = stage
        return (
            isinstance(conv, nn.Conv2d)
            and conv.stride == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple)
            and len(mid) <= 1
            and all(isinstance(m, nn.BatchNorm2d) and m.track_running_stats for m in mid)
            and isinstance(relu, nn.ReLU)
            and isinstance(pool, nn.MaxPool2d)
            and pool.kernel_size in (2, (2, 2))
            and pool.stride in (2, (2, 2))
            and pool.padding in (0, (0, 0))
            and pool.dilation in (1, (1, 1))
            and not pool.ceil_mode
        )

    def plain(self, x: torch.Tensor) -> torch.Tensor:
        """The stage's modules, in order (the reference)."""
        for m in self.stage:
            x = m(x)
        return x

    def _tensors(self) -> list[torch.Tensor]:
        mods = self.stage[:-2]
        return [t for m in mods for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]

    def _changed(self) -> bool:
        now = self._tensors()
        return len(now) != len(self._seen) or not all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
            for a, b in zip(now, self._seen, strict=True)
        )

    def _rebuild(self) -> None:
        conv = self.conv
        w = conv.weight.detach()
        wide = w.new_zeros(2, *w.shape[:3], w.shape[3] + 1)
        wide[0, ..., :-1] = w
        wide[1, ..., 1:] = w
        self._weight = wide.flatten(0, 1)
        self._bias = conv.bias.detach().repeat(2) if conv.bias is not None else torch.empty(0)
        self._norm_stats = [  # batch norm's running statistics and affine, each channel's twice
            [
                None if t is None else t.detach().repeat(2)
                for t in (m.running_mean, m.running_var, m.weight, m.bias)
            ]
            for m in self.norms
        ]
        self._seen = [t.detach().clone() for t in self._tensors()]

    def phased(self, x: torch.Tensor) -> torch.Tensor:
        """The stage's values through the two column phases."""
        bias = self._bias if self._bias.numel() else None
        padding = cast(tuple[int, int], self.conv.padding)
        y = F.conv2d(x, self._weight, bias, stride=(1, 2), padding=padding)
        for norm, (mean, var, weight, shift) in zip(self.norms, self._norm_stats, strict=True):
            y = F.batch_norm(y, mean, var, weight, shift, False, 0.0, norm.eps)
        n, c2, h, w = y.shape
        halves = y.view(n, 2, c2 // 2, h, w)
        cols = torch.maximum(halves[:, 0], halves[:, 1])[:, :, : h - h % 2]
        pairs = cols.reshape(n, c2 // 2, h // 2, 2, w)
        return torch.relu_(torch.maximum(pairs[:, :, :, 0], pairs[:, :, :, 1]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled activations of ``x``; the first call after the weights change also runs the
        plain modules and keeps the phases only if they give the same values."""
        if self._changed():
            self._rebuild()
            ref = self.plain(x)
            self._same = torch.equal(self.phased(x), ref)
            return ref
        return self.phased(x) if self._same else self.plain(x)
