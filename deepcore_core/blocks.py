"""Row blocks of large arrays: checks and per-sample scores in O(block) extra memory.

A memory-mapped input (``deepcore select --probs file.npy``) is then read once, in order,
and never copied whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

CELLS = 1 << 22  # entries per block (16 MB of float32)


def row_blocks(arr: np.ndarray, cells: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` blocks of about ``cells`` (default :data:`CELLS`) entries each."""
    step = max(1, (cells or CELLS) // max(1, int(np.prod(arr.shape[1:]))))
    for lo in range(0, len(arr), step):
        yield lo, arr[lo : lo + step]


def map_rows(
    fn: Callable[[np.ndarray], np.ndarray], arr: np.ndarray, dtype: type = np.float64
) -> np.ndarray:
    """``fn`` applied to row blocks of ``arr`` (each block as ``dtype``), results joined:
    ``fn`` maps a B x ... block to B values."""
    out = np.empty(len(arr), dtype=np.float64)
    for lo, block in row_blocks(arr):
        out[lo : lo + len(block)] = fn(np.asarray(block, dtype=dtype))
    return out
