"""Progress of long work on stderr: live rich bars, or plain periodic lines, or nothing.

* a terminal or a Jupyter notebook: live bars (rich, which typer already depends on);
  bars opened inside another one share its display;
* anything else (a log file, CI): one plain line at most every 30 seconds per stage
  (``DEEPCORE_PROGRESS_INTERVAL``), so short stages print nothing;
* ``DEEPCORE_PROGRESS=0`` or ``deepcore -q``: nothing. ``DEEPCORE_PROGRESS=1`` forces bars.

A stage with nothing to do (total 0) shows nothing.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any

_live: Any = None  # the rich Progress shared by nested bars


def mode() -> str:
    """``"rich"``, ``"plain"`` or ``"off"`` for this process, from the environment."""
    flag = os.environ.get("DEEPCORE_PROGRESS")
    if flag is not None and flag in ("0", ""):
        return "off"
    if flag is not None:
        return "rich"
    if sys.stderr.isatty():
        return "rich"
    return "rich" if _in_jupyter() else "plain"


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """``with Progress(total, "training") as bar: bar.update(1, "loss 0.3")``.

    :param unit: what is counted for the rate shown beside the bar (``samples``: ``1,234
        samples/s``); None shows no rate. ``update`` takes fractions of a step too, so a bar
        over epochs moves with every batch.
    """

    def __init__(
        self, total: int, desc: str, enabled: bool | None = None, unit: str | None = None
    ) -> None:
        self.total, self.desc, self.done = max(0, total), desc, 0.0
        self.unit, self.counted = unit, 0
        self.mode = mode() if enabled is None else ("rich" if enabled else "off")
        if self.total == 0:
            self.mode = "off"
        self.start = self._last = time.monotonic()
        self.interval = float(os.environ.get("DEEPCORE_PROGRESS_INTERVAL", "30"))
        self._task: Any = None
        self._owner = False
        self._printed = False
        self.note = self._note = ""

    def __enter__(self) -> Progress:
        global _live
        if self.mode == "rich":
            if _live is None:
                _live = _make_live()
                _live.start()
                self._owner = True
            self._task = _live.add_task(self.desc, total=self.total, note="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _live
        if self.mode == "rich" and _live is not None:
            if self._owner:
                _live.stop()
                _live = None
            else:
                _live.remove_task(self._task)
        elif self.mode == "plain" and self._printed:
            self._line()

    def update(self, n: float = 1, note: str | None = "", counted: int = 0) -> None:
        """Advance by ``n`` steps, with a note (e.g. the current loss; None keeps the last)
        and the ``counted`` units (samples) these steps processed, for the rate."""
        self.done = min(float(self.total), self.done + n)
        self.counted += counted
        if note is not None:
            self._note = note
        note = self._note
        if self.unit is not None and self.counted:
            elapsed = max(time.monotonic() - self.start, 1e-9)
            note = f"{note} {self.counted / elapsed:,.0f} {self.unit}/s".strip()
        self.note = note
        if self.mode == "rich" and _live is not None:
            _live.update(self._task, advance=n, note=note)
        elif self.mode == "plain" and time.monotonic() - self._last >= self.interval:
            self._line()

    def _line(self) -> None:
        self._last = now = time.monotonic()
        self._printed = True
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        sys.stderr.write(
            f"{self.desc}: {self.done:g}/{self.total} after {_fmt(elapsed)}, "
            f"{_fmt(eta)} left {self.note}".rstrip()
            + "\n"
        )
        sys.stderr.flush()


def _make_live() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(stderr=True),
    )


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
