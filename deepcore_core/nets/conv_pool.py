"""A convolution followed by ReLU and 2 x 2 pooling, computed through its four phases.

Pooling keeps the largest of each 2 x 2 window, so the convolution's four phases (its
outputs at even or odd rows and even or odd columns) are all it needs: a stride-2
convolution whose kernel is one row and one column larger gives all four at once, phase
(r, c) in its own block of ``C`` output channels (the kernel shifted r rows down and c
columns right, zeros around it). Each output sums the same products in the same order as the
plain convolution (the extra row's and column's products are exact zeros), so the values
are the same; the first checked call compares them anyway, and a mismatch makes the stage
fall back to the plain modules for those weights. Pooling is then the maximum of four
contiguous channel blocks, and ReLU, which commutes with the maximum, runs on the pooled
quarter.

Why: a convolution with one to three input channels and few output channels (LeNet's first,
6 of them) fills few of a CPU's vector lanes, and its pooling reads short rows; four times
the channels at a quarter of the positions fill the lanes, and the pooling reads long
contiguous blocks. Measured by ``benchmarks/memory_and_batch.py``, part 3. Used on the CPU
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


class PhasedConvPool:
    """Runs ``conv -> [batch norm] -> ReLU -> 2 x 2 max pooling`` (``stage``, a network's own
    modules) in inference through the four phases.

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
        wide = w.new_zeros(2, 2, *w.shape[:2], w.shape[2] + 1, w.shape[3] + 1)
        for r in range(2):
            for c in range(2):  # phase (r, c): the kernel shifted r rows and c columns
                wide[r, c, ..., r : r + w.shape[2], c : c + w.shape[3]] = w
        self._weight = wide.flatten(0, 2)
        self._bias = conv.bias.detach().repeat(4) if conv.bias is not None else torch.empty(0)
        self._norm_stats = [  # batch norm's running statistics and affine, each channel's 4x
            [
                None if t is None else t.detach().repeat(4)
                for t in (m.running_mean, m.running_var, m.weight, m.bias)
            ]
            for m in self.norms
        ]
        self._seen = [t.detach().clone() for t in self._tensors()]

    def phased(self, x: torch.Tensor) -> torch.Tensor:
        """The stage's values through the four phases."""
        bias = self._bias if self._bias.numel() else None
        padding = cast(tuple[int, int], self.conv.padding)
        # stride 2 with the larger kernel gives floor(H_out / 2) x floor(W_out / 2) positions:
        # an odd last row or column of the plain output drops, as pooling drops it
        y = F.conv2d(x, self._weight, bias, stride=2, padding=padding)
        for norm, (mean, var, weight, shift) in zip(self.norms, self._norm_stats, strict=True):
            y = F.batch_norm(y, mean, var, weight, shift, False, 0.0, norm.eps)
        n, c4, h, w = y.shape
        return torch.relu_(y.view(n, 4, c4 // 4, h, w).amax(1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled activations of ``x``; the first call after the weights change also runs the
        plain modules and keeps the phases only if they give the same values."""
        if self._changed():
            self._rebuild()
            ref = self.plain(x)
            # exact equality, NaN equal to NaN (a batch with a NaN input keeps the phases on)
            self._same = torch.allclose(self.phased(x), ref, rtol=0.0, atol=0.0, equal_nan=True)
            return ref
        return self.phased(x) if self._same else self.plain(x)
