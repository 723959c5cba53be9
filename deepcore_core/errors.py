"""Errors that the CLI turns into one ``Error:`` line, and the exit-code rule.

Exit codes: **2** for bad input or usage (an unknown method, a bad value, a path that cannot
be read or written: nothing was done), **1** for a failure while running (training
diverged, the disk filled up), **0** for success. Each error class carries its code.
"""

from __future__ import annotations

import errno
import os


class DeepcoreError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""

    exit_code = 2


class OptionError(DeepcoreError):
    """A method option is unknown, ill-typed or out of range."""


class PluginError(DeepcoreError):
    """A plugin failed to load or registered something invalid."""


class MissingInputError(DeepcoreError):
    """A method needs an input (labels, a trained model, ...) that was not given."""


class RunError(DeepcoreError):
    """A failure while running (not the input's fault): exit code 1."""

    exit_code = 1


class TrainingDiverged(RunError):
    """The training loss stopped being finite."""


#: OS errors that are the machine's failure while running, not a bad path given by the user
_RUNTIME_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT, errno.ENOMEM}


def file_error(
    exc: OSError, path: str | os.PathLike[str] | None = None, verb: str = "write"
) -> DeepcoreError:
    """One-line error for an OS error on ``path``: exit 1 for a full disk and the like, else 2."""
    where = path if path is not None else exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = (
        f"cannot {verb} '{where}': {reason}" if where is not None else f"cannot {verb}: {reason}"
    )
    cls = RunError if exc.errno in _RUNTIME_ERRNOS else DeepcoreError
    return cls(message)
