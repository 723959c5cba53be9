"""A small progress bar on stderr (only when stderr is a terminal; DEEPCORE_PROGRESS=0 hides it)."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType


def _enabled() -> bool:
    flag = os.environ.get("DEEPCORE_PROGRESS")
    if flag is not None:
        return flag not in ("0", "")
    return sys.stderr.isatty()


class Progress:
    """``with Progress(total, "training") as bar: bar.update(1, "loss 0.3")``."""

    def __init__(self, total: int, desc: str, enabled: bool | None = None) -> None:
        self.total, self.desc = max(1, total), desc
        self.done = 0
        self.enabled = _enabled() if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._draw("")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._draw(self._note if hasattr(self, "_note") else "", force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n`` steps, with an optional note (e.g. the current loss)."""
        self.done = min(self.total, self.done + n)
        self._note = note
        self._draw(note)

    def _draw(self, note: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        sys.stderr.write(
            f"\r{self.desc} [{bar}] {self.done}/{self.total} "
            f"{_fmt(elapsed)}<{_fmt(eta)} {note}\x1b[K"
        )
        sys.stderr.flush()


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
