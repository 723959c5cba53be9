"""Value rules written once: each range is declared as data and its message made from it.

A rule is a mapping of bounds (``min``, ``max``, ``above``, ``below``) or an allowed
``pattern``; the settings model, the engine's configs and the budget all check their values
with :func:`check_range`, so a bound and its wording live in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deepcore_core.errors import DeepcoreError

#: seeds are integers in [0, MAX_SEED]: what numpy, torch and int64 record fields all take
MAX_SEED = 2**63 - 1
#: how bounds are written in messages where their digits say less than a formula
_SPELLED = {MAX_SEED: "2**63 - 1"}

FRACTION: dict[str, Any] = {"above": 0, "max": 1}
SEED: dict[str, Any] = {"min": 0, "max": MAX_SEED}
#: a device setting: auto, cpu, cuda (this process's GPU) or cuda:N
DEVICE: dict[str, Any] = {
    "pattern": r"auto|cpu|cuda(:\d+)?",
    "allowed": "auto, cpu, cuda or cuda:N",
}


def check_range(key: str, value: Any, rule: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`DeepcoreError` if ``value`` breaks ``rule``.

    Numbers are checked against the bounds; strings against ``pattern`` (the message lists
    ``allowed``). Other values (None, booleans, mappings) pass.
    """
    pattern = rule.get("pattern")
    if pattern is not None and isinstance(value, str):
        if not re.fullmatch(pattern, value):
            raise DeepcoreError(f"{key} must be one of {rule['allowed']}, got {value!r}")
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    lo, hi, above, below = (rule.get(k) for k in ("min", "max", "above", "below"))
    bad_low = (above is not None and not value > above) or (lo is not None and value < lo)
    bad_high = (below is not None and not value < below) or (hi is not None and value > hi)
    if bad_low or bad_high:
        raise DeepcoreError(f"{key} must be {describe(rule)}, got {value!r}")


def describe(rule: Mapping[str, Any]) -> str:
    """The allowed values of a range rule in words: ``>= 1``, ``in (0, 1]``."""
    lo, hi, above, below = (_bound(rule.get(k)) for k in ("min", "max", "above", "below"))
    low = f"({above}" if above is not None else f"[{lo}" if lo is not None else None
    high = f"{below})" if below is not None else f"{hi}]" if hi is not None else None
    if high is None:
        return f"> {above}" if above is not None else f">= {lo}"
    return f"in {low or '(-inf'}, {high}"


def _bound(value: float | None) -> str | None:
    """A range bound as written: integers in full, other numbers short (``1e-06``)."""
    if value is None:
        return None
    if isinstance(value, int):
        return _SPELLED.get(value, str(value))
    return f"{value:g}"
