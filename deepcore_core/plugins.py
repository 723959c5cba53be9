"""The plugin host: loads built-in and entry-point plugins and builds the method registry.

Environment variables:

* ``DEEPCORE_LOAD_PLUGINS``: unset loads every installed plugin; an empty string loads
  none; ``a,b`` loads only those (entry-point or distribution names).
* ``DEEPCORE_DISABLE_PLUGINS``: ``a,b`` blocks those plugins.
* ``DEEPCORE_STRICT_PLUGINS=1`` (or ``deepcore --strict-plugins``): a plugin that fails to
  load raises instead of warning; use it in CI.

A plugin that fails to import or register prints one warning line on stderr, is listed with
status ``error`` by ``deepcore plugins``, and everything else keeps working.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import os
import sys
from typing import Any

import pluggy

from deepcore_core import hookspecs
from deepcore_core._version import __version__
from deepcore_core.errors import DeepcoreError, PluginError
from deepcore_core.registry import MethodRegistry
from deepcore_core.selector import Selector

CORE_DIST = "deepcore-core"
BUILTIN_PLUGINS = (
    "deepcore_core.builtin.uniform",
    "deepcore_core.builtin.stages",
    "deepcore_core.builtin.catalog",
)


@dataclasses.dataclass
class PluginRecord:
    """What ``deepcore plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    location: str = ""
    status: str = "ok"  # ok | error | disabled
    error: str = ""
    builtin: bool = False
    hooks: list[str] = dataclasses.field(default_factory=list)
    methods: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly description."""
        return dataclasses.asdict(self)


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


class PluginHost:
    """Owns the pluggy manager, the plugin records and the method registry.

    :param load_entrypoints: load installed plugins (default: per ``DEEPCORE_LOAD_PLUGINS``).
    :param strict: raise on a broken plugin (default: per ``DEEPCORE_STRICT_PLUGINS``).
    """

    def __init__(self, load_entrypoints: bool | None = None, strict: bool | None = None) -> None:
        self.strict = (
            os.environ.get("DEEPCORE_STRICT_PLUGINS", "") not in ("", "0")
            if strict is None
            else strict
        )
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._registry: MethodRegistry | None = None
        self._datasets: Any = None
        self._networks: Any = None
        self._load_builtins()
        if load_entrypoints is not False:
            only = _env_list("DEEPCORE_LOAD_PLUGINS") if load_entrypoints is None else None
            self._load_entrypoints(only)

    # -- loading -------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        import importlib

        for modname in BUILTIN_PLUGINS:
            module = importlib.import_module(modname)
            self.pm.register(module, name=modname)
            self.records[modname] = PluginRecord(
                modname, CORE_DIST, __version__, module.__file__ or "", builtin=True
            )

    def _load_entrypoints(self, only: list[str] | None) -> None:
        disabled = set(_env_list("DEEPCORE_DISABLE_PLUGINS") or [])
        seen: set[str] = set()
        for ep in md.entry_points(group=hookspecs.PROJECT):
            dist = ep.dist
            dist_name = (dist.metadata["Name"] if dist is not None else None) or ep.name
            version = dist.version if dist is not None else "unknown"
            if ep.name in seen or ep.name in self.records:
                continue  # the same distribution seen twice on sys.path
            seen.add(ep.name)
            record = PluginRecord(ep.name, dist_name, version, ep.value)
            self.records[ep.name] = record
            if ep.name in disabled or dist_name in disabled:
                record.status = "disabled"
                continue
            if only is not None and ep.name not in only and dist_name not in only:
                record.status = "disabled"
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
                record.location = getattr(plugin, "__file__", None) or ep.value
            except Exception as exc:  # a broken plugin must not take the host down
                self._fail(record, f"failed to load: {type(exc).__name__}: {exc}", exc)

    def _fail(self, record: PluginRecord, message: str, exc: BaseException | None) -> None:
        record.status = "error"
        record.error = message
        text = f"plugin '{record.name}' ({record.distribution} {record.version}) {message}"
        if self.strict:
            raise PluginError(text) from exc
        print(
            f"deepcore: warning: {text} (set DEEPCORE_STRICT_PLUGINS=1 to make this an error)",
            file=sys.stderr,
        )

    def register(
        self, plugin: object, name: str, distribution: str = "local", version: str = "0"
    ) -> None:
        """Register a plugin object directly (a notebook, a test), without an entry point."""
        self.pm.register(plugin, name=name)
        self.records[name] = PluginRecord(name, distribution, version, "(registered directly)")
        self._registry = self._datasets = self._networks = None

    # -- queries -------------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.select(selector=..., ctx=...)``)."""
        return self.pm.hook

    @property
    def registry(self) -> MethodRegistry:
        """The method registry, built on first use by calling each ``register_selectors``."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> MethodRegistry:
        registry = MethodRegistry()
        for impl in self.pm.hook.register_selectors.get_hookimpls():
            record = self.records[impl.plugin_name]
            added: list[str] = []

            def register(
                cls: type[Selector], _record: PluginRecord = record, _added: list[str] = added
            ) -> None:
                registry.add(cls, _record.name, _record.distribution, _record.version)
                _added.append(cls.name)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                self._fail(
                    record, f"failed to register its methods: {type(exc).__name__}: {exc}", exc
                )
            record.methods = added
        for name, plugin in self.pm.list_name_plugin():
            if name in self.records and plugin is not None:
                self.records[name].hooks = sorted(
                    h.name for h in self.pm.get_hookcallers(plugin) or []
                )
        return registry

    @property
    def datasets(self) -> Any:
        """The dataset registry (built-in datasets plus those of plugins)."""
        if self._datasets is None:
            from deepcore_core.data import DatasetRegistry

            self._datasets = self._collect("register_datasets", DatasetRegistry())
        return self._datasets

    @property
    def networks(self) -> Any:
        """The network registry (built-in networks plus those of plugins)."""
        if self._networks is None:
            from deepcore_core.nets import NetworkRegistry

            self._networks = self._collect("register_networks", NetworkRegistry())
        return self._networks

    def _collect(self, hook: str, registry: Any) -> Any:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            record = self.records[impl.plugin_name]
            try:
                impl.function(register=registry.add)
            except DeepcoreError as exc:
                raise PluginError(
                    f"plugin '{record.name}' ({record.distribution}): {exc}"
                ) from None
            except Exception as exc:
                self._fail(record, f"failed in {hook}: {type(exc).__name__}: {exc}", exc)
        return registry

    def failed_plugins(self) -> list[str]:
        """Names of plugins whose status is ``error``."""
        return [r.name for r in self.records.values() if r.status == "error"]

    def plugin_records(self) -> list[PluginRecord]:
        """All plugin records, with hooks and methods filled in."""
        _ = self.registry
        return list(self.records.values())

    def create_selector(self, method: str, options: Any = None) -> Selector:
        """Instantiate ``method`` with ``options`` (a mapping or the method's Options object)."""
        info = self.registry.get(method, self.failed_plugins())
        return info.cls(options)

    def versions(self) -> dict[str, str]:
        """Distribution -> version for the core and every loaded plugin."""
        out = {CORE_DIST: __version__}
        for r in self.records.values():
            if r.status == "ok":
                out[r.distribution] = r.version
        return out


_default_host: PluginHost | None = None


def get_host() -> PluginHost:
    """Return the process-wide default host, created on first use."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
    return _default_host


def reset_host(host: PluginHost | None = None) -> None:
    """Replace (or drop, with None) the default host; for tests and embedding."""
    global _default_host
    _default_host = host
