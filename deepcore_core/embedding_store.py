"""The embedding store: an encoder's embeddings of N samples, written once, read memory-mapped.

An entry (``<cache>/embeddings/<key>/``) is keyed by the encoder (its name, options and a
checksum of its weights), the dataset's fingerprint, the input transform and the dtype
(float16 or float32). It is filled in shards of :data:`SHARD_ROWS` rows, each written
atomically and checksummed (:class:`~deepcore_core.cache.CacheEntry`), so a killed fill
resumes at the first missing shard and memory while embedding stays bounded by one shard.
When every shard is there they are joined, shard by shard, into one ``embeddings.npy`` that
every method reads memory-mapped.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepcore_core.cache import CacheEntry
from deepcore_core.errors import DeepcoreError
from deepcore_core.progress import Progress

#: rows per shard (a 65,536 x 2,048 float32 shard is 512 MiB)
SHARD_ROWS = 65536
DTYPES = ("float32", "float16")
FILE = "embeddings.npy"


def store_key(parts: Mapping[str, Any]) -> str:
    """A short hash of what determines the embeddings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


class EmbeddingStore:
    """One store entry: ``n`` embeddings of ``dtype`` under ``folder``.

    :param folder: the entry's folder (``<cache>/embeddings/<key>``).
    :param key: the entry's key (:func:`store_key`).
    """

    def __init__(
        self, folder: Path, key: str, n: int, dtype: str = "float32", shard_rows: int = SHARD_ROWS
    ) -> None:
        if dtype not in DTYPES:
            raise DeepcoreError(
                f"embedding dtype must be one of {', '.join(DTYPES)}, got {dtype!r}"
            )
        self.entry = CacheEntry(folder, key)
        self.n, self.dtype, self.shard_rows = n, np.dtype(dtype), max(1, shard_rows)

    @property
    def folder(self) -> Path:
        """The entry's folder."""
        return self.entry.folder

    def shards(self) -> list[tuple[int, int]]:
        """``(first row, end row)`` of every shard."""
        return [(lo, min(lo + self.shard_rows, self.n)) for lo in range(0, self.n, self.shard_rows)]

    def _name(self, lo: int) -> str:
        return f"shard-{lo // self.shard_rows:06d}.npy"

    def load(self) -> np.ndarray | None:
        """The stored N x D embeddings, memory-mapped; None when the entry is not complete."""
        if not self.entry.usable(FILE, what="embedding store entry"):
            return None
        arr = np.load(self.folder / FILE, mmap_mode="r")
        return arr if arr.shape[0] == self.n and arr.dtype == self.dtype else None

    def fill(self, encode: Callable[[int, int], np.ndarray], desc: str = "embedding") -> np.ndarray:
        """The embeddings: loaded, or computed with ``encode(lo, hi)`` (rows ``lo:hi`` as a
        ``(hi - lo) x D`` array) for each missing shard, then joined; returns them
        memory-mapped."""
        done = self.load()
        if done is not None:
            return done
        recorded = self.entry.manifest().get("files", {})
        width: int | None = None
        with Progress(self.n, desc, unit="samples") as bar:
            for lo, hi in self.shards():
                name = self._name(lo)
                if name in recorded and self.entry.usable(name, what="embedding shard"):
                    shard = np.load(self.folder / name, mmap_mode="r")
                else:
                    rows = np.asarray(encode(lo, hi))
                    if rows.ndim != 2 or rows.shape[0] != hi - lo:
                        raise DeepcoreError(
                            f"the encoder gave an array of shape {rows.shape} for {hi - lo} "
                            "samples; it must give one row per sample (N x D after pooling)"
                        )
                    if not np.isfinite(rows).all():
                        bad = lo + int(np.flatnonzero(~np.isfinite(rows).all(1))[0])
                        raise DeepcoreError(
                            f"the encoder's embedding of sample {bad} is NaN or inf"
                        )
                    shard = rows.astype(self.dtype)
                    self.entry.write(name, functools.partial(_save, shard))
                if width is not None and shard.shape[1] != width:
                    raise DeepcoreError(
                        f"embedding shards disagree on the width: {width} and {shard.shape[1]}"
                    )
                width = int(shard.shape[1])
                bar.update(hi - lo, counted=hi - lo)
        self._join(width or 0)
        out = self.load()
        assert out is not None
        return out

    def _join(self, width: int) -> None:
        """Write ``embeddings.npy`` from the shards (one shard in memory at a time), then
        drop the shards."""

        def write(fh: IO[bytes]) -> None:
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": (self.n, width)}  # fmt: skip
            np.lib.format.write_array_header_2_0(fh, header)
            for lo, _ in self.shards():
                fh.write(np.ascontiguousarray(np.load(self.folder / self._name(lo))).tobytes())

        self.entry.write(FILE, write, arrays={"embeddings": [[self.n, width], str(self.dtype)]})
        names = [self._name(lo) for lo, _ in self.shards()]
        self.entry.forget(names)
        for name in names:
            (self.folder / name).unlink(missing_ok=True)


def _save(arr: np.ndarray, fh: IO[bytes]) -> None:
    np.save(fh, arr)
