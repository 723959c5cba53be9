"""Atomic file writes and checked array loading."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from deepcore_core.errors import DeepcoreError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it over ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_array(path: str | os.PathLike[str], what: str) -> np.ndarray:
    """Load a ``.npy`` (or single-array ``.npz``/text) file, with a clear error on failure."""
    p = Path(path)
    if not p.exists():
        raise DeepcoreError(f"{what} file '{p}' does not exist")
    if not p.is_file():
        raise DeepcoreError(f"{what} path '{p}' is not a file")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                if len(keys) != 1:
                    raise DeepcoreError(
                        f"{what} file '{p}' holds {len(keys)} arrays {keys}; expected exactly one"
                    )
                return np.asarray(z[keys[0]])
        if p.suffix in {".txt", ".csv"}:
            return np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None)
        return np.load(p, allow_pickle=False)
    except DeepcoreError:
        raise
    except PermissionError:
        raise DeepcoreError(f"{what} file '{p}' is not readable (permission denied)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DeepcoreError(f"{what} file '{p}' is not a valid array file: {exc}") from None
