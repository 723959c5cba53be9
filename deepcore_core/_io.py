"""Atomic file writes and checked array loading."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepcore_core.errors import DeepcoreError, RunError, file_error

_UMASK = os.umask(0)  # read once, at import (setting it is the only way to read it)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it over ``path`` only on success.

    An OS error (no such folder, permission denied, disk full) becomes a one-line
    :class:`DeepcoreError` naming ``path``; the temporary file never stays behind.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual mode
    except OSError as exc:
        raise file_error(exc, target) from None
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise file_error(exc, target) from None
        raise


def save_torch(obj: Any, target: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, target)``, where a failed write (a full disk, a file-size limit, an
    I/O error: torch reports them as a ``RuntimeError`` from its zip writer) becomes one
    :class:`RunError` naming ``path``."""
    import torch

    try:
        torch.save(obj, target)
    except RuntimeError as exc:
        text = str(exc)
        if not any(s in text for s in ("unexpected pos", "PytorchStreamWriter", "write")):
            raise
        raise RunError(
            f"cannot write '{path}': the write failed (no space left on the device, or a "
            "file-size limit)"
        ) from None
    except OSError as exc:
        raise file_error(exc, path) from None


def owner_tag() -> str:
    """``<host>-<pid>``: names a temporary entry by the process writing it, so that a later
    run can tell a dead process's leftovers (swept) from a live one's (left alone)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def sweep_stale(folder: Path, prefix: str = ".tmp-") -> int:
    """Remove the temporary entries ``<prefix><host>-<pid>-*`` under ``folder`` that this
    host's dead processes left (killed while writing); returns how many. Entries of live
    processes, and of other hosts (which this one cannot see), stay."""
    import shutil

    host, removed = socket.gethostname(), 0
    try:
        entries = list(folder.glob(f"{prefix}{host}-*"))
    except OSError:
        return 0
    for entry in entries:
        pid_text = entry.name[len(prefix) + len(host) + 1 :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def check_writable(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Fail now, with a one-line error, if ``path`` (a file, or a ``folder``) could not be
    written later. Creates nothing: probes the nearest existing folder with a temporary file.
    """
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        what = "a folder" if target.is_dir() else "a file"
        raise DeepcoreError(f"cannot write '{target}': it is {what}")
    parent = target if folder else target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DeepcoreError(f"cannot write '{target}': '{parent}' is not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise file_error(exc, target) from None


def load_array(path: str | os.PathLike[str], what: str, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` (or single-array ``.npz``/text) file, with a clear error on failure.

    With ``mmap``, a ``.npy`` file is memory-mapped read-only instead of read: pages come in
    as blockwise code touches them, and the file is never copied into a private array.
    """
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
        return np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except DeepcoreError:
        raise
    except PermissionError:
        raise DeepcoreError(f"{what} file '{p}' is not readable (permission denied)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DeepcoreError(
            f"{what} file '{p}' is not a valid array file: {numpy_load_problem(exc)}"
        ) from None


def numpy_load_problem(exc: BaseException, fix: str = "write it with numpy.save") -> str:
    """Why ``np.load(..., allow_pickle=False)`` failed, with ``fix`` when numpy's own
    message would mislead (for a file without a header it suggests unpickling it)."""
    reason = str(exc)
    if "Python objects" in reason or "Object arrays" in reason:  # dtype=object
        return f"it holds Python objects, not numbers; {fix}"
    if "pickled" in reason:  # no .npy/.npz header: numpy would fall back to unpickling
        return f"it has no .npy or .npz header; {fix}"
    return reason
