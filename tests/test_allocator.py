"""Freed memory kept in the process: blocks freed by one batch serve the next without page
faults, unless the user opts out or sets glibc's allocator themselves."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the setting is glibc's",
)

# in a fresh interpreter (the setting is the process's): setup_cpu as every command calls
# it, then a 40 MiB tensor (above glibc's largest dynamic mmap threshold, 32 MiB)
# allocated, written and freed ten times; prints whether memory is kept and the page faults
# of the last nine rounds
CHILD = """
import json, resource, torch
from deepcore_core.engine.devices import setup_cpu
from deepcore_core.engine.allocator import keep_freed_memory
setup_cpu(1)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(10 * 2**20).sum()
start = 0
for i in range(10):
    if i == 1:
        start = faults()
    torch.ones(10 * 2**20).sum()
print(json.dumps({"kept": keep_freed_memory(), "faults": faults() - start}))
"""


def run_child(**env: str) -> dict:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k != "DEEPCORE_KEEP_FREED_MEMORY" and not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def huge_pages_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            return "[always]" in fh.read()
    except OSError:
        return False


def test_kept_memory_serves_the_next_block_without_page_faults():
    kept, default = run_child(), run_child(DEEPCORE_KEEP_FREED_MEMORY="0")
    assert kept["kept"] and not default["kept"]
    pages = 40 * 2**20 // 4096  # 10,240 faults a round where each block is fresh
    assert kept["faults"] < pages // 10
    if not huge_pages_always():  # else the kernel backs fresh blocks with 2 MiB pages
        assert default["faults"] >= 9 * pages * 0.9


def test_the_users_own_glibc_setting_stands():
    assert not run_child(MALLOC_TRIM_THRESHOLD_="1000000")["kept"]
