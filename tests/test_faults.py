"""Kill -9 a real ``deepcore run`` / ``benchmark --jobs 2`` at random points and resume:
exactly the rows of a clean run, no orphan processes, no temporary files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GRID = ["--method", "uniform", "--fraction", "0.1", "--fraction", "0.3", "--seed", "0",
        "--seed", "1", "--epochs", "3"]  # fmt: skip


def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DEEPCORE_LOAD_PLUGINS": "",
        "DEEPCORE_CACHE": str(tmp_path / "cache"),
        "DEEPCORE_PROGRESS": "0",
    }


def interruptible() -> None:
    """In the child before exec: Ctrl-C's default action, as in a terminal's foreground job
    (a test run started in the background inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(tmp_path: Path, out: Path, *extra: str, command: str = "run") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deepcore_core", command, *GRID, *extra, "--output", str(out)],
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def rows(out: Path) -> list[tuple[str, float, float]]:
    """(method, fraction, seed, accuracy) of every line of results.jsonl, sorted."""
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return sorted(
        (r["key"]["method"], r["key"]["fraction"], r["key"]["seed"], r["accuracy"]) for r in recs
    )


def leftovers(out: Path) -> list[str]:
    """Temporary files and unfinished checkpoints left in ``out``."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or p.suffix == ".pt" or ".tmp." in p.name)
    )


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_workers(p: subprocess.Popen, count: int = 2) -> list[int]:
    """The live children of ``p`` once ``count`` of them run (fails after two minutes)."""
    deadline = time.time() + 120
    workers: list[int] = []
    while time.time() < deadline and len(workers) < count and p.poll() is None:
        time.sleep(0.2)
        workers = [c for c in children(p.pid) if alive(c)]
    assert len(workers) >= count, (
        f"the workers never started: {p.stderr.read() if p.stderr else ''}"
    )
    return workers


def finish(tmp_path: Path, out: Path, *extra: str, command: str = "run") -> None:
    p = start(tmp_path, out, *extra, command=command)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err


def test_kill_9_at_random_points_then_resume_gives_the_clean_rows(tmp_path):
    clean = tmp_path / "clean"
    finish(tmp_path, clean)
    expected = rows(clean)
    assert len(expected) == 2 * 3  # seeds x (full + two fractions)
    rng = random.Random(0)
    out = tmp_path / "killed"
    for _ in range(4):
        p = start(tmp_path, out)
        time.sleep(rng.uniform(0.5, 4.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
    finish(tmp_path, out)
    assert rows(out) == expected
    assert len((out / "results.jsonl").read_text().splitlines()) == len(expected)
    assert leftovers(out) == []


def test_kill_9_of_benchmark_jobs_2_leaves_no_orphan_workers(tmp_path):
    out = tmp_path / "bench"
    p = start(tmp_path, out, "--jobs", "2", command="benchmark")
    workers = wait_for_workers(p)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # a worker notices within half a second once its watchdog runs; one still importing
    # (a loaded machine) exits when its watchdog starts, or at EOF on its parent's pipe
    deadline = time.time() + 60
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)], "workers outlived their parent"
    finish(tmp_path, out, "--jobs", "2", command="benchmark")
    clean = tmp_path / "clean"
    finish(tmp_path, clean)
    assert rows(out) == rows(clean)
    assert leftovers(out) == []


def test_ctrl_c_stops_everything_and_leaves_a_resumable_state(tmp_path):
    out = tmp_path / "bench"
    longer = ("--epochs", "30")  # runs still in flight a second after the workers start
    p = start(tmp_path, out, "--jobs", "2", *longer, command="benchmark")
    workers = wait_for_workers(p)
    time.sleep(1.0)
    assert p.poll() is None, "the benchmark ended before Ctrl-C could interrupt it"
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr.read()
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)], "workers outlived Ctrl-C"
    finish(tmp_path, out, "--jobs", "2", *longer, command="benchmark")
    clean = tmp_path / "clean"
    finish(tmp_path, clean, "--jobs", "2", *longer, command="benchmark")  # same threads
    assert rows(out) == rows(clean)
    assert leftovers(out) == []
