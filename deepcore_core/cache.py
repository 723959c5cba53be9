"""Verified cache entries: every file is recorded with its checksum, size and the entry's key.

An entry is a folder with a ``manifest.json``: ``{"key": ..., "files": {name: {"sha256",
"size", "arrays"?}}}``. :meth:`CacheEntry.check` re-reads a file and compares it with its
record; anything missing, truncated or replaced (even by other numbers of the same shape)
fails the check, so the caller warns once and recomputes instead of using it. Files are
written atomically and the manifest is updated under a lock, so two processes filling the
same entry never corrupt it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from deepcore_core._io import atomic_write
from deepcore_core.log import log

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CacheEntry:
    """One cache folder, its key and the records of its files.

    :param folder: the entry's folder (created on the first write).
    :param key: what the entry holds (a cache key); a manifest with another key fails.
    """

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = folder, key

    def manifest(self) -> dict[str, Any]:
        """The entry's manifest (empty when missing or unreadable)."""
        try:
            data = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
            return {}  # valid JSON of another shape: as good as none
        return data

    def problem(self, name: str) -> str | None:
        """Why file ``name`` may not be used, or None when it matches its record."""
        manifest = self.manifest()
        if manifest.get("key") != self.key:
            return "no manifest for this key" if not manifest else "the manifest's key differs"
        record = manifest.get("files", {}).get(name)
        path = self.folder / name
        if not isinstance(record, dict):
            return f"{name} is not recorded"
        try:  # another process may replace the entry while it is read
            size = path.stat().st_size
            if size != record.get("size"):
                return f"{name} has {size} bytes, not {record.get('size')}"
            if sha256(path) != record.get("sha256"):
                return f"{name} does not match its checksum"
        except FileNotFoundError:
            return f"{name} is missing"
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        return None

    def usable(self, *names: str, what: str = "cache entry") -> bool:
        """Whether every file in ``names`` checks out.

        A file that was never written is simply not usable; one that exists or is recorded
        but fails its check is warned about once, naming the entry, before recomputing.
        """
        recorded = self.manifest().get("files", {})
        for name in names:
            problem = self.problem(name)
            if problem is not None:
                if name in recorded or (self.folder / name).exists():
                    log.warning(
                        "%s '%s' is not usable (%s); recomputing", what, self.folder, problem
                    )
                return False
        return True

    def write(self, name: str, writer: Callable[[IO[bytes]], None], **extra: Any) -> Path:
        """Write file ``name`` atomically with ``writer`` and record it in the manifest.

        :param extra: more fields for the file's record (shapes, dtypes, what it derives from).
        """
        path = self.folder / name
        with atomic_write(path) as fh:
            writer(fh)
        record = {"sha256": sha256(path), "size": path.stat().st_size, **extra}
        with self._locked():
            manifest = self.manifest()
            if manifest.get("key") != self.key:
                manifest = {"key": self.key, "files": {}}
            manifest["files"][name] = record
            with atomic_write(self.folder / MANIFEST, "w") as out:
                json.dump(manifest, out, indent=2, sort_keys=True)
        return path

    def forget(self, names: list[str]) -> None:
        """Drop the records of ``names`` from the manifest (before deleting the files)."""
        with self._locked():
            manifest = self.manifest()
            files = manifest.get("files", {})
            if manifest.get("key") != self.key or not any(n in files for n in names):
                return
            for name in names:
                files.pop(name, None)
            with atomic_write(self.folder / MANIFEST, "w") as out:
                json.dump(manifest, out, indent=2, sort_keys=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
