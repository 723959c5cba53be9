"""Logging: the library logs to the ``deepcore`` logger; the CLI shows it on stderr.

A library never configures logging for its user; without a handler, Python shows warnings
and errors on stderr anyway. The CLI (and ``DEEPCORE_TRACE_PLUGINS=1``) attach one handler
that writes ``deepcore: <level>: <message>`` lines to the current ``sys.stderr``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

log = logging.getLogger("deepcore")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, notebooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("deepcore: %(levelname)s: %(message)s"))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def show_on_stderr(level: int = logging.WARNING, name: str = "deepcore") -> None:
    """Show records of logger ``name`` at ``level`` and above on stderr (once per logger)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.propagate = False
    logger.setLevel(level)
