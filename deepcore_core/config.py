"""Reading YAML config files, with one-line errors (the keys are checked by ``settings``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deepcore_core.errors import DeepcoreError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing, unreadable or bad file."""
    p = Path(path)
    if not p.is_file():
        raise DeepcoreError(f"config file '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except PermissionError:
        raise DeepcoreError(f"config file '{p}' is not readable (permission denied)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise DeepcoreError(f"config file '{p}' is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise DeepcoreError(f"config file '{p}' is not a text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeepcoreError(
            f"config file '{p}' must hold a mapping of keys, not {type(data).__name__}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}
