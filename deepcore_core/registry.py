"""Registries: one generic name -> item map, and the method registry built on it."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from deepcore_core.errors import DeepcoreError, PluginError
from deepcore_core.selector import Need, Selector

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class Named(Protocol):
    """Anything registered under a name."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Name -> item, for selectors, datasets, networks and whatever plugins register.

    :param kind: what an item is, for messages (``"method"``, ``"dataset"``, ...).
    :param case_insensitive: look names up in lower case (network names).
    """

    def __init__(self, kind: str, case_insensitive: bool = False) -> None:
        self.kind = kind
        self._fold = case_insensitive
        self._items: dict[str, T] = {}

    def _key(self, name: str) -> str:
        return name.lower() if self._fold else name

    def add(self, item: T) -> None:
        """Add ``item`` under ``item.name``; a name used twice is an error."""
        key = self._key(item.name)
        if key in self._items:
            raise self._duplicate(self._items[key], item)
        self._items[key] = item

    def _duplicate(self, old: T, new: T) -> DeepcoreError:
        return DeepcoreError(f"{self.kind} '{new.name}' is registered twice")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[k] for k in self.names())

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """All names, sorted."""
        return sorted(self._items)

    def get(self, name: str, failed_plugins: list[str] | None = None) -> T:
        """Return the item ``name`` or raise a one-line :class:`DeepcoreError` with suggestions.

        :param failed_plugins: plugins that failed to load, named in the error as possible
            providers.
        """
        key = self._key(name)
        if key in self._items:
            return self._items[key]
        msg = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(key, self.names(), n=3, cutoff=0.5)
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        msg += f" (valid: {', '.join(self.names()) or 'none installed'})"
        if failed_plugins:
            msg += (
                f"; plugin(s) {', '.join(failed_plugins)} failed to load and may provide it"
                " (see 'deepcore plugins')"
            )
        raise DeepcoreError(msg)


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

    def options(self) -> list[dict[str, Any]]:
        """Every option of the method: name, type, default and doc."""
        from deepcore_core.options import option_table

        return option_table(self.cls.Options)

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


class MethodRegistry(Registry[MethodInfo]):
    """Method name -> :class:`MethodInfo`, filled through the ``register_selectors`` hook."""

    def __init__(self) -> None:
        super().__init__("method")

    def register(self, cls: object, plugin: str, distribution: str, version: str) -> None:
        """Validate a selector class and add it; raise :class:`PluginError` on a bad one."""
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
        self.add(MethodInfo(cls.name, cls, plugin, distribution, version))

    def _duplicate(self, old: MethodInfo, new: MethodInfo) -> DeepcoreError:
        return PluginError(
            f"method '{new.name}' is registered twice: by {old.distribution} "
            f"(plugin '{old.plugin}') and by {new.distribution} (plugin '{new.plugin}'); "
            "uninstall or disable one of them (DEEPCORE_DISABLE_PLUGINS)"
        )

    def __iter__(self) -> Iterator[MethodInfo]:
        return iter(sorted(self._items.values(), key=lambda m: (m.family, m.name)))
