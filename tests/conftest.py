"""Shared fixtures: core tests run with entry-point loading off."""

from __future__ import annotations

import os

os.environ.setdefault("DEEPCORE_LOAD_PLUGINS", "")

pytest_plugins = ["deepcore_core.testing"]
