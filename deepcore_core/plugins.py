"""The plugin host: loads built-in and entry-point plugins and builds the registries.

Environment variables:

* ``DEEPCORE_LOAD_PLUGINS``: unset loads every installed plugin; an empty string loads
  none; ``a,b`` loads only those (entry-point or distribution names).
* ``DEEPCORE_DISABLE_PLUGINS``: ``a,b`` blocks those plugins.
* ``DEEPCORE_STRICT_PLUGINS=1`` (or ``deepcore --strict-plugins``): a plugin that fails to
  load, or implements a hook that does not exist, raises instead of warning; use it in CI.
* ``DEEPCORE_TRACE_PLUGINS=1``: log every hook call (name, arguments, result) on stderr.

A plugin that fails to import or register logs one warning (logger ``deepcore``), is listed
with status ``error`` by ``deepcore plugins``, and everything else keeps working. Every hook,
the registration hooks included, is called through pluggy, so tracing sees all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata as md
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pluggy

from deepcore_core import hookspecs
from deepcore_core._version import __version__
from deepcore_core.errors import DeepcoreError, PluginError
from deepcore_core.log import show_on_stderr
from deepcore_core.options import parse_options
from deepcore_core.registry import (
    EncoderRegistry,
    MethodInfo,
    MethodRegistry,
    Registry,
    SamplerRegistry,
    ScheduleRegistry,
)
from deepcore_core.selector import Selector

log = logging.getLogger("deepcore")
trace_log = logging.getLogger("deepcore.trace")

CORE_DIST = "deepcore-core"
BUILTIN_PLUGINS = (
    "deepcore_core.builtin.uniform",
    "deepcore_core.builtin.stages",
    "deepcore_core.builtin.catalog",
)
R = TypeVar("R", bound=Registry[Any])


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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class PluginHost:
    """Owns the pluggy manager, the plugin records and the registries.

    :param load_entrypoints: load installed plugins (default: per ``DEEPCORE_LOAD_PLUGINS``).
    :param strict: raise on a broken plugin (default: per ``DEEPCORE_STRICT_PLUGINS``).
    :param trace: log every hook call (default: per ``DEEPCORE_TRACE_PLUGINS``).
    """

    def __init__(
        self,
        load_entrypoints: bool | None = None,
        strict: bool | None = None,
        trace: bool | None = None,
    ) -> None:
        self.strict = _env_flag("DEEPCORE_STRICT_PLUGINS") if strict is None else strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if _env_flag("DEEPCORE_TRACE_PLUGINS") if trace is None else trace:
            show_on_stderr(logging.INFO, trace_log.name)
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)
        self.records: dict[str, PluginRecord] = {}
        self._registries: dict[str, Any] = {}
        for modname in BUILTIN_PLUGINS:
            module = importlib.import_module(modname)
            self._add(module, PluginRecord(modname, CORE_DIST, __version__, module.__file__ or ""))
            self.records[modname].builtin = True
        if load_entrypoints is not False:
            only = _env_list("DEEPCORE_LOAD_PLUGINS") if load_entrypoints is None else None
            self._load_entrypoints(only)

    # -- loading -------------------------------------------------------------------------
    def _load_entrypoints(self, only: list[str] | None) -> None:
        disabled = set(_env_list("DEEPCORE_DISABLE_PLUGINS") or [])
        for ep in md.entry_points(group=hookspecs.PROJECT):
            if ep.name in self.records:
                continue  # the same distribution seen twice on sys.path
            dist = ep.dist
            dist_name = (dist.metadata["Name"] if dist is not None else None) or ep.name
            version = dist.version if dist is not None else "unknown"
            record = PluginRecord(ep.name, dist_name, version, ep.value)
            self.records[ep.name] = record
            wanted = only is None or ep.name in only or dist_name in only
            if not wanted or ep.name in disabled or dist_name in disabled:
                record.status = "disabled"
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the host down
                self._fail(record, f"failed to load: {type(exc).__name__}: {exc}", exc)
                continue
            record.location = getattr(plugin, "__file__", None) or ep.value
            self._add(plugin, record)

    def _add(self, plugin: object, record: PluginRecord) -> None:
        """Register ``plugin`` with pluggy, then check its hook names (``check_pending``)."""
        self.records[record.name] = record
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:
            self._fail(record, f"failed to register: {type(exc).__name__}: {exc}", exc)
            return
        self._registries.clear()
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        unknown = self._pending_hooks(plugin)
        if unknown:
            known = [
                n for n, f in vars(hookspecs).items() if hasattr(f, f"{hookspecs.PROJECT}_spec")
            ]
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            self._fail(record, f"implements unknown hook(s) {', '.join(hints)}", None)

    def _pending_hooks(self, plugin: object) -> list[str]:
        """Hook implementations of ``plugin`` with no spec (pluggy's ``check_pending``)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            pass
        else:
            return []
        return sorted(
            h.name
            for h in self.pm.get_hookcallers(plugin) or []
            if not h.has_spec() and not all(i.optionalhook for i in h.get_hookimpls())
        )

    def _fail(
        self,
        record: PluginRecord,
        message: str,
        exc: BaseException | None,
        prefix: bool = True,
    ) -> None:
        """Mark ``record`` broken: raise when strict, else warn once and go on."""
        record.status = "error"
        record.error = message
        text = f"plugin '{record.name}' ({record.distribution} {record.version}) {message}"
        text = text if prefix else message
        if self.strict:
            raise PluginError(text) from exc
        log.warning("%s (set DEEPCORE_STRICT_PLUGINS=1 to make this an error)", text)

    def register(
        self, plugin: object, name: str, distribution: str = "local", version: str = "0"
    ) -> None:
        """Register a plugin object directly (a notebook, a test), without an entry point."""
        self._add(plugin, PluginRecord(name, distribution, version, "(registered directly)"))

    # -- registries ----------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.select(selector=..., ctx=...)``)."""
        return self.pm.hook

    def _collect(
        self, hook: str, registry: R, register_for: Callable[[PluginRecord], Callable[..., None]]
    ) -> R:
        """Call ``hook`` once per plugin (through pluggy) with that plugin's ``register``."""
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook)
        plugins = [p for _, p in self.pm.list_name_plugin() if p is not None]
        for impl in caller.get_hookimpls():
            record = self.records[impl.plugin_name]
            others = [p for p in plugins if p is not impl.plugin]
            try:
                self.pm.subset_hook_caller(hook, others)(register=register_for(record))
            except PluginError as exc:  # it registered something invalid: named in the error
                self._fail(record, str(exc), exc, prefix=False)
            except DeepcoreError as exc:
                self._fail(record, f"failed in {hook}: {exc}", exc)
            except Exception as exc:
                self._fail(record, f"failed in {hook}: {type(exc).__name__}: {exc}", exc)
        return registry

    def _registry(self, hook: str, make: Callable[[], R], register_for: Any = None) -> R:
        if hook not in self._registries:
            registry = make()
            add = register_for or (lambda record: registry.add)
            self._registries[hook] = self._collect(hook, registry, add)
        return self._registries[hook]

    @property
    def registry(self) -> MethodRegistry:
        """The method registry, built on first use by calling each ``register_selectors``."""
        if "register_selectors" in self._registries:
            return self._registries["register_selectors"]
        registry = MethodRegistry()

        def register_for(record: PluginRecord) -> Callable[[type[Selector]], None]:
            record.methods = []

            def register(cls: type[Selector]) -> None:
                try:
                    registry.register(cls, record.name, record.distribution, record.version)
                except PluginError:
                    if getattr(cls, "name", None) not in registry.clashes:
                        raise
                    self._clash(registry, cls.name)  # both plugins keep working otherwise
                record.methods.append(cls.name)

            return register

        return self._registry("register_selectors", lambda: registry, register_for)

    def _clash(self, registry: MethodRegistry, method: str) -> None:
        """Mark every plugin that registered ``method`` with the clash (raise when strict)."""
        exc = registry.clash_error(method)
        if self.strict:
            raise exc
        log.warning("%s", exc)
        for info in registry.clashes[method]:
            record = self.records[info.plugin]
            record.status, record.error = "error", str(exc)

    @property
    def datasets(self) -> Any:
        """The dataset registry (built-in datasets plus those of plugins)."""
        from deepcore_core.data import DatasetRegistry

        return self._registry("register_datasets", DatasetRegistry)

    @property
    def networks(self) -> Any:
        """The network registry (built-in networks plus those of plugins)."""
        from deepcore_core.nets import NetworkRegistry

        return self._registry("register_networks", NetworkRegistry)

    @property
    def samplers(self) -> Registry[Any]:
        """The sampler registry (``top``, ``stratified``, ``beta``, ``band`` and plugins')."""
        return self._registry("register_samplers", SamplerRegistry)

    def create_sampler(self, name: str, options: Any = None) -> Any:
        """Instantiate the sampler ``name`` with ``options`` (a mapping)."""
        return self.samplers.get(name)(options)

    @property
    def schedules(self) -> Registry[Any]:
        """The schedule registry (``infobatch``, ``rs2``, ``adaptive`` and plugins')."""
        return self._registry("register_schedules", ScheduleRegistry)

    def create_schedule(self, name: str, options: Any = None) -> Any:
        """Instantiate the schedule ``name`` with ``options`` (a mapping)."""
        return self.schedules.get(name)(options)

    @property
    def encoders(self) -> Registry[Any]:
        """The encoder registry (``simclr``, ``torchvision``, ``module``, ``timm``, ``hf`` and
        plugins')."""
        return self._registry("register_encoders", EncoderRegistry)

    # -- queries -------------------------------------------------------------------------
    def failed_plugins(self) -> list[str]:
        """Names of plugins whose status is ``error``."""
        return [r.name for r in self.records.values() if r.status == "error"]

    def plugin_records(self) -> list[PluginRecord]:
        """All plugin records, with hooks and methods filled in."""
        _ = self.registry
        return list(self.records.values())

    def method(self, name: str) -> MethodInfo:
        """The method ``name``; the error for an unknown one names failed and disabled plugins."""
        return self.registry.get(name, self.unavailable())

    def unavailable(self) -> str:
        """A note on the plugins that failed to load or are disabled (empty if none)."""
        notes = []
        failed = self.failed_plugins()
        if failed:
            notes.append(f"plugin(s) {', '.join(failed)} failed to load and may provide it")
        off = [
            f"{r.name} ({r.distribution})" for r in self.records.values() if r.status == "disabled"
        ]
        if off:
            notes.append(
                f"plugin(s) {', '.join(off)} are disabled (DEEPCORE_DISABLE_PLUGINS or "
                "DEEPCORE_LOAD_PLUGINS) and may provide it"
            )
        return "".join(f"; {n}" for n in notes) + (" (see 'deepcore plugins')" if notes else "")

    def create_selector(
        self, method: str, options: Any = None, variant: str = "default"
    ) -> Selector:
        """Instantiate ``method`` with ``options`` (a mapping or the method's Options object).

        ``variant="original"`` starts every option that the original DeepCore code decides
        differently at the original's value (given options still win).
        """
        cls = self.method(method).cls
        if options is None or isinstance(options, dict):
            options = parse_options(cls.Options, options, cls.name, variant)
        selector = cls(options)
        selector.variant = variant
        selector.host = self
        return selector

    def versions(self) -> dict[str, str]:
        """Distribution -> version for the core and every loaded plugin."""
        out = {CORE_DIST: __version__}
        for r in self.records.values():
            if r.status == "ok":
                out[r.distribution] = r.version
        return out


def _trace_before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    names = ", ".join(i.plugin_name for i in impls)
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    trace_log.info("hook %s(%s) -> implementations: %s", hook_name, args, names)


def _trace_after(
    outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    exc = outcome.exception
    result = f"raised {type(exc).__name__}: {exc}" if exc else _short(outcome.get_result())
    trace_log.info("hook %s returned %s", hook_name, result)


def _short(value: Any) -> str:
    text = repr(value) if not hasattr(value, "shape") else f"<{type(value).__name__} {value.shape}>"
    return text if len(text) <= 80 else text[:77] + "..."


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
