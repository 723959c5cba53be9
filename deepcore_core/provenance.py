"""Where a result came from: the code (versions, and the commit when run from a checkout),
the libraries, the machine's settings that move accuracy (device, threads) and the
augmentation actually applied. Every run record carries it; reports check it."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the code identity of records made before runs recorded their provenance
UNRECORDED = "unrecorded"


@functools.cache
def checkout() -> dict[str, Any] | None:
    """The git commit of the checkout this package runs from, and whether its tracked Python
    or TOML files had changes (None when installed from a wheel or git is missing)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                timeout=20,
            ).stdout.strip()  # fmt: skip

        commit = git("rev-parse", "HEAD")
        # changes to code only: a docs edit while a benchmark runs does not split its runs
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "*.py", "*.toml"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def provenance(
    versions: Mapping[str, str], device: str, augmentation: str, threads: int | None = None
) -> dict[str, Any]:
    """The provenance of a run made now.

    :param versions: distribution -> version of the core and the loaded plugins.
    :param augmentation: the training augmentation applied (``none`` when off or when the
        dataset has none).
    :param threads: the CPU threads torch used (default: torch's current setting).
    """
    import numpy as np
    import torch

    return {
        "versions": dict(sorted(versions.items())),
        "checkout": checkout(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "cpus": os.cpu_count(),
        "augmentation": augmentation,
    }


def code_identity(prov: Mapping[str, Any] | None) -> str:
    """One string naming the code that made a record: the core's version, the commit (with
    ``+changes`` for a changed tree) where known; :data:`UNRECORDED` for older records."""
    if not prov:
        return UNRECORDED
    core = dict(prov.get("versions") or {}).get("deepcore-core", "?")
    co = prov.get("checkout")
    if not co:
        return f"deepcore-core {core}"
    return f"deepcore-core {core} at {str(co['commit'])[:10]}{'+changes' if co['dirty'] else ''}"
