"""Measuring in a fresh process: a child prints one JSON line, the parent reads it back.

Each measurement runs in its own interpreter so that its peak resident memory is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any


def report(**fields: Any) -> None:
    """In the child: print ``fields`` and the process's peak resident memory as one JSON line."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({**fields, "peak_rss_gb": peak}))


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a new interpreter and return its last JSON line."""
    out = subprocess.run(
        [sys.executable, script, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
