"""Benchmarking the working tree against a git revision: a temporary worktree per run.

The core and every plugin of a tree are put first on ``PYTHONPATH`` (the installed entry
points are the same), so a child interpreter imports that tree's code.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pythonpath(tree: Path) -> str:
    """The core and every plugin's ``src`` folder of ``tree``."""
    parts = [str(tree), *(str(p) for p in sorted(tree.glob("plugins/*/src")))]
    parts += [str(p) for p in sorted(tree.glob("examples/*/src"))]
    return os.pathsep.join(parts)


@contextlib.contextmanager
def compared_trees(baseline: str | None) -> Iterator[dict[str, Path]]:
    """``{"now": ROOT}``, with ``"baseline"`` first when a revision is given: that revision
    checked out into a temporary worktree, removed on exit."""
    if not baseline:
        yield {"now": ROOT}
        return
    tmp = tempfile.mkdtemp(prefix="deepcore-baseline-")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, baseline],
        check=True,
        capture_output=True,
    )
    try:
        yield {"baseline": Path(tmp), "now": ROOT}
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], check=False)
