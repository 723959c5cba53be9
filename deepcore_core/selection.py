"""The :class:`Selection` result: indices, optional weights and scores, and metadata."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core._io import atomic_write, load_array, numpy_load_problem
from deepcore_core.errors import DeepcoreError

FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Selection:
    """A selected coreset.

    :ivar indices: unique int64 dataset indices, pool by pool (class order when balanced),
        in the order the method ranked or picked them.
    :ivar weights: per-selected-sample weights aligned with ``indices`` (weighted methods), or None.
    :ivar scores: the method's score for every sample of the dataset (length N), or None.
    :ivar meta: method, options, fraction, budget, seed, balance, dataset fingerprint, versions.
    """

    indices: np.ndarray
    weights: np.ndarray | None = None
    scores: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        idx = np.asarray(self.indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError("indices must be a 1-D integer array")
        idx = idx.astype(np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError("indices must be unique")
        object.__setattr__(self, "indices", idx)
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != idx.shape:
                raise ValueError("weights must align with indices")
            object.__setattr__(self, "weights", w)
        if self.scores is not None:
            object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.indices.size)

    def check_fits(self, n: int, fingerprint: str | None = None, name: str | None = None) -> None:
        """The one rule for "does this selection fit this dataset": raise unless it was made
        on ``n`` samples (when it says) and indexes only them, and, when ``fingerprint`` (see
        :func:`dataset_fingerprint`) is given and the selection records one, on that dataset
        (``name``, for the message)."""
        made = self.meta.get("dataset_fingerprint")
        if fingerprint is not None and made is not None and made != fingerprint:
            raise DeepcoreError(
                f"the selection was made on another dataset ({self.meta.get('dataset')}, "
                f"fingerprint {made}) than '{name}' ({fingerprint})"
            )
        made_on = self.meta.get("n")
        if made_on is not None and made_on != n:
            raise DeepcoreError(f"the selection was made on {made_on} samples, not {n}")
        if self.indices.size and int(self.indices.max()) >= n:
            raise DeepcoreError(f"the selection has indices beyond a dataset of {n} samples")

    def subset(self, dataset: Any) -> Any:
        """The selected samples of ``dataset`` as a ``torch.utils.data.Subset`` (in order)."""
        from torch.utils.data import Subset

        self.check_fits(len(dataset))
        return Subset(dataset, self.indices.tolist())

    def weighted(self, dataset: Any) -> WeightedSubset:
        """The selected samples of ``dataset`` with their weights: ``(x, y, w)`` for tuple
        rows, the row with a ``weight`` key for mapping rows (Hugging Face); ``w`` is 1.0 when
        the method gives none. Train with the per-batch loss ``(w * loss).sum() / w.sum()``,
        the engine's rule.
        """
        self.check_fits(len(dataset))
        w = self.weights if self.weights is not None else np.ones(len(self))
        return WeightedSubset(dataset, self.indices, w)

    def mask(self, n: int) -> np.ndarray:
        """A boolean mask over a dataset of ``n`` samples: True for the selected ones."""
        self.check_fits(n)
        out = np.zeros(n, dtype=bool)
        out[self.indices] = True
        return out

    def sampler(self, weighted: bool = False, seed: int = 0, replacement: bool = True) -> Any:
        """A ``torch.utils.data.Sampler`` over the full dataset that draws the selected
        indices: shuffled each epoch (seeded, a fresh order per epoch), or with
        ``weighted=True`` drawn in proportion to the weights (``len(self)`` draws per epoch,
        ``replacement`` as in torch's ``WeightedRandomSampler``)."""
        import torch
        from torch.utils.data import SubsetRandomSampler, WeightedRandomSampler

        gen = torch.Generator().manual_seed(seed)
        if not weighted:
            return SubsetRandomSampler(self.indices.tolist(), generator=gen)
        if self.weights is None:
            raise DeepcoreError(
                f"method '{self.meta.get('method')}' gave no weights: use weighted=False"
            )
        full = np.zeros(int(self.meta.get("n") or self.indices.max() + 1))
        full[self.indices] = self.weights
        return WeightedRandomSampler(full.tolist(), len(self), replacement, generator=gen)

    def save_indices(self, path: str | os.PathLike[str]) -> Path:
        """Write the selected indices, sorted, as an int64 ``.npy`` file (atomically)."""
        out = Path(path)
        if out.suffix != ".npy":
            raise DeepcoreError(f"an index file must end in .npy, got '{out}'")
        with atomic_write(out) as fh:
            np.save(fh, np.sort(self.indices))
        return out

    def save_scores(self, path: str | os.PathLike[str]) -> Path:
        """Write a CSV of every sample (atomically): ``index``, ``score``, ``kept`` (0/1) and
        ``weight`` (empty for a sample not kept, or a method without weights)."""
        if self.scores is None:
            raise DeepcoreError(
                f"method '{self.meta.get('method')}' gave no per-sample scores to export"
            )
        out = Path(path)
        if out.suffix != ".csv":
            raise DeepcoreError(f"a scores file must end in .csv, got '{out}'")
        weight = np.full(self.scores.size, np.nan)
        weight[self.indices] = 1.0 if self.weights is None else self.weights
        kept = np.zeros(self.scores.size, dtype=bool)
        kept[self.indices] = True
        with atomic_write(out, "w") as fh:
            fh.write("index,score,kept,weight\n")
            for i, (s, k, w) in enumerate(zip(self.scores, kept, weight, strict=True)):
                shown = "" if not k or self.weights is None else repr(float(w))
                fh.write(f"{i},{float(s)!r},{int(k)},{shown}\n")
        return out

    def to_hf(self, dataset: Any, weight: str | None = "weight", score: str | None = None) -> Any:
        """The kept rows of a Hugging Face ``datasets.Dataset``, in selection order, with a
        ``weight`` column (when the method gives weights) and a ``score`` column (when asked
        for and the method scores); ``None`` leaves a column out."""
        if not hasattr(dataset, "select") or not hasattr(dataset, "add_column"):
            raise DeepcoreError(
                f"to_hf needs a Hugging Face datasets.Dataset, got {type(dataset).__name__}"
            )
        self.check_fits(len(dataset))
        out = dataset.select(self.indices.tolist())
        if weight is not None and self.weights is not None:
            out = out.add_column(weight, self.weights.tolist())
        if score is not None:
            if self.scores is None:
                raise DeepcoreError(f"method '{self.meta.get('method')}' gave no scores")
            out = out.add_column(score, self.scores[self.indices].tolist())
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (``.npz``) and a human-readable ``.json`` sidecar, each atomically.

        The ``.npz`` (self-contained) is written first and removed again if the sidecar
        cannot be written, so a sidecar never claims a selection that is not there.
        """
        target = Path(path)
        if target.suffix != ".npz":
            raise DeepcoreError(f"selection file must end in .npz, got '{target}'")
        meta = {"format_version": FORMAT_VERSION, **self.meta}
        meta_json = json.dumps(meta, indent=2, sort_keys=True, default=_json_default)
        arrays: dict[str, Any] = {
            "indices": self.indices,
            "meta": np.array(meta_json),
        }
        if self.weights is not None:
            arrays["weights"] = self.weights
        if self.scores is not None:
            arrays["scores"] = self.scores
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        sidecar = {"size": len(self), **json.loads(meta_json)}
        if target.is_dir() or target.with_suffix(".json").is_dir():
            raise DeepcoreError(f"cannot write '{target}': a folder is in the way")
        check_sidecar(target.with_suffix(".json"))
        with atomic_write(target) as fh:
            fh.write(buf.getvalue())
        try:
            with atomic_write(target.with_suffix(".json"), "w") as fh:
                json.dump(sidecar, fh, indent=2, sort_keys=True)
                fh.write("\n")
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Selection:
        """Read a selection written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise DeepcoreError(f"selection file '{p}' does not exist")
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return cls(
                    indices=z["indices"],
                    weights=z.get("weights"),
                    scores=z.get("scores"),
                    meta=meta,
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DeepcoreError(
                f"'{p}' is not a deepcore selection file: "
                f"{numpy_load_problem(exc, 'deepcore select writes them')}"
            ) from None


def load_indices(path: str | os.PathLike[str], n: int, what: str) -> np.ndarray:
    """Dataset indices in [0, n), sorted and unique, from a selection ``.npz`` or an array
    file (``.npy``, ``.txt``, ``.csv``); a bad file is a one-line error naming ``what``."""
    p = Path(path)
    if p.suffix == ".npz" and p.is_file():
        idx = Selection.load(p).indices
    else:
        idx = np.asarray(load_array(p, what))
        if p.suffix in {".txt", ".csv"}:  # whole numbers read as floats; one is a 0-d array
            idx = np.atleast_1d(idx)
            if np.isfinite(idx).all() and (idx == idx.round()).all():
                idx = idx.astype(np.int64)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DeepcoreError(
            f"{what} '{p}' must be a 1-D array of sample indices, got shape {idx.shape} "
            f"of {idx.dtype}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DeepcoreError(f"{what} '{p}' has indices outside [0, {n})")
    return np.unique(idx.astype(np.int64))


class WeightedSubset:
    """A map-style dataset of the selected items with their weights: ``(x, y, w)`` for tuple
    rows, the row with a ``weight`` key added for mapping rows."""

    def __init__(self, dataset: Any, indices: np.ndarray, weights: np.ndarray) -> None:
        self.dataset, self.indices = dataset, indices
        self.weights = np.asarray(weights, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> Any:
        row = self.dataset[int(self.indices[i])]
        if isinstance(row, Mapping):
            return {**row, "weight": float(self.weights[i])}
        x, y = row[:2]
        return x, y, float(self.weights[i])


def dataset_fingerprint(labels: np.ndarray | None, n: int, name: str | None = None) -> str:
    """Return a short hash identifying a dataset by its name, size and labels."""
    h = hashlib.sha256()
    h.update(f"{name or ''}|{n}|".encode())
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in selection metadata")


def check_sidecar(path: Path) -> None:
    """Refuse to replace a ``.json`` file that is not an earlier selection's sidecar."""
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
        ours = isinstance(old, dict) and "format_version" in old and "size" in old
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        ours = False
    if not ours:
        raise DeepcoreError(
            f"'{path}' exists and is not a selection's sidecar; the selection writes its "
            "metadata there: move that file or choose another output name"
        )
