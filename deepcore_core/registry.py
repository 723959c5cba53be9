"""The method registry: every selector with the plugin and distribution it came from."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re

from deepcore_core.errors import DeepcoreError, PluginError
from deepcore_core.selector import Need, Selector

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclasses.dataclass(frozen=True)
class MethodInfo:
    """One registered method."""

    name: str
    cls: type[Selector]
    plugin: str
    distribution: str
    version: str

    @property
    def family(self) -> str:
        """The method family (e.g. ``uncertainty``)."""
        return self.cls.family

    @property
    def needs(self) -> list[str]:
        """What the method needs, in a fixed order."""
        return [n.value for n in Need if n in self.cls.needs]

    @property
    def summary(self) -> str:
        """The one-line summary from the class docstring."""
        return self.cls.summary()

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly description."""
        return {
            "name": self.name,
            "family": self.family,
            "needs": self.needs,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "summary": self.summary,
        }


class MethodRegistry:
    """Name -> :class:`MethodInfo`, filled through the ``register_selectors`` hook."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodInfo] = {}

    def add(self, cls: object, plugin: str, distribution: str, version: str) -> None:
        """Validate and add a selector class; raise :class:`PluginError` on a bad one."""
        where = f"plugin '{plugin}' ({distribution} {version})"
        if not (isinstance(cls, type) and issubclass(cls, Selector)):
            raise PluginError(f"{where} registered {cls!r}, which is not a Selector subclass")
        if not isinstance(cls.name, str) or not _NAME.match(cls.name):
            raise PluginError(
                f"{where} registered {cls.__name__} with invalid name {cls.name!r}; "
                "names are lower-case words joined by '-'"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise PluginError(
                f"{where} registered {cls.__name__}, which does not implement {missing}"
            )
        if not dataclasses.is_dataclass(cls.Options):
            raise PluginError(f"{where}: {cls.__name__}.Options must be a dataclass")
        bad = [n for n in cls.needs if not isinstance(n, Need)]
        if bad:
            raise PluginError(f"{where}: {cls.__name__}.needs has unknown entries {bad}")
        if cls.name in self._methods:
            other = self._methods[cls.name]
            raise PluginError(
                f"method '{cls.name}' is registered twice: by {other.distribution} "
                f"(plugin '{other.plugin}') and by {distribution} (plugin '{plugin}'); "
                "uninstall or disable one of them (DEEPCORE_DISABLE_PLUGINS)"
            )
        self._methods[cls.name] = MethodInfo(cls.name, cls, plugin, distribution, version)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self):
        return iter(sorted(self._methods.values(), key=lambda m: (m.family, m.name)))

    def __len__(self) -> int:
        return len(self._methods)

    def names(self) -> list[str]:
        """All method names, sorted."""
        return sorted(self._methods)

    def get(self, name: str, failed_plugins: list[str] | None = None) -> MethodInfo:
        """Return the method ``name`` or raise a :class:`DeepcoreError` with suggestions."""
        try:
            return self._methods[name]
        except KeyError:
            pass
        msg = f"unknown method '{name}'"
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        msg += f" (installed: {', '.join(self.names()) or 'none'})"
        if failed_plugins:
            msg += (
                f"; plugin(s) {', '.join(failed_plugins)} failed to load and may provide it"
                " (see 'deepcore plugins')"
            )
        raise DeepcoreError(msg)
