"""The store of an experiment's output folder: run files, ``results.jsonl``, resume, lock.

Layout: ``runs/<method>/<network>-f<fraction>-s<seed>-<id>.json`` (one per finished run),
``results.jsonl`` (one line per finished run, appended), ``selections/`` (the coresets),
``checkpoints/`` (unfinished training), ``summary.csv``/``summary.md``. Every file is written
atomically; a run counts as done when its run file exists.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepcore_core._io import atomic_write
from deepcore_core.errors import DeepcoreError
from deepcore_core.experiment.plan import run_id
from deepcore_core.experiment.records import RunRecord, load_record


class Store:
    """Files of one output folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.results = out / "results.jsonl"

    def run_path(self, key: dict[str, Any]) -> Path:
        """The file of a finished run."""
        name = f"{key['network']}-f{key['fraction']:g}-s{key['seed']}-{run_id(key)}.json"
        return self.out / "runs" / key["method"] / name

    def selection_path(self, key: dict[str, Any]) -> Path:
        """The file of a selection, by its selection key."""
        name = f"{key['method']}-f{key['fraction']:g}-s{key['seed']}-{run_id(key)}.npz"
        return self.out / "selections" / name

    def checkpoint_path(self, key: dict[str, Any]) -> Path:
        """Where an unfinished run keeps its training state (removed when it finishes)."""
        return self.out / "checkpoints" / f"{run_id(key)}.pt"

    def done(self, key: dict[str, Any]) -> bool:
        """Whether the run has finished."""
        return self.run_path(key).is_file()

    def load(self, key: dict[str, Any]) -> RunRecord:
        """The record of a finished run."""
        return load_record(self.run_path(key))

    def repair(self, plan: list[dict[str, Any]]) -> None:
        """Bring the folder to one truth before a run starts (results.jsonl read once).

        Planned runs whose file is missing but whose line is in ``results.jsonl`` (a copied
        results file) get their run file back; then ``results.jsonl`` is rewritten, atomically,
        to hold every finished run exactly once: valid lines in order, duplicates and torn
        lines dropped, runs whose line was lost (a kill between run file and append) added.
        """
        lines: dict[str, RunRecord] = {}
        if self.results.is_file():
            for line in self.results.read_text().splitlines():
                try:
                    record = RunRecord(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    continue  # a line cut short by an interruption
                lines.setdefault(run_id(record.key), record)
        for key in plan:
            copied = lines.get(run_id(key))
            if copied is not None and not self.done(key):
                with atomic_write(self.run_path(key), "w") as fh:
                    json.dump(copied.as_dict(), fh, indent=2)
        for path in sorted((self.out / "runs").rglob("*.json")):
            try:
                record = load_record(path)
            except (json.JSONDecodeError, TypeError, OSError):
                continue
            lines.setdefault(run_id(record.key), record)
        if lines or self.results.is_file():
            with atomic_write(self.results, "w") as fh:
                fh.write("".join(json.dumps(r.as_dict()) + "\n" for r in lines.values()))

    def finish(self, key: dict[str, Any], record: RunRecord) -> None:
        """Store a finished run: its file, one line in ``results.jsonl``, no checkpoint."""
        with atomic_write(self.run_path(key), "w") as fh:
            json.dump(record.as_dict(), fh, indent=2)
        line = json.dumps(record.as_dict()) + "\n"
        with open(self.results, "a") as fh:  # one write per finished run; repair() mends
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.checkpoint_path(key).unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process; a second run on it stops with a clear error."""
        import fcntl

        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / ".lock"
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                pid = fh.read().strip() or "unknown"
                raise DeepcoreError(
                    f"output folder '{self.out}' is in use by another deepcore run (pid {pid}); "
                    "wait for it or use another --output"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
