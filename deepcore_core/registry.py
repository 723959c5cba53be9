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

    def get(self, name: str, unavailable: str = "") -> T:
        """Return the item ``name`` or raise a one-line :class:`DeepcoreError` with suggestions.

        :param unavailable: appended to the error: plugins that failed to load or are
            disabled, and so may provide the name.
        """
        key = self._key(name)
        if key in self._items:
            return self._items[key]
        msg = f"unknown {self.kind} '{name}'"
        close = difflib.get_close_matches(key, self.names(), n=3, cutoff=0.5)
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        msg += f" (valid: {', '.join(self.names()) or 'none installed'})"
        raise DeepcoreError(msg + unavailable)


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

    @property
    def pool(self) -> str:
        """The pool the method selects from unless ``balance`` is given."""
        return "per class" if self.cls.default_balance else "whole dataset"

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
            "pool": self.pool,
        }


class MethodRegistry(Registry[MethodInfo]):
    """Method name -> :class:`MethodInfo`, filled through the ``register_selectors`` hook.

    A name registered by two plugins is a *clash*: neither registration is used (no silent
    override), ``get`` of that name raises the error naming both, and everything else works.
    """

    def __init__(self) -> None:
        super().__init__("method")
        #: name -> the registrations that clash on it
        self.clashes: dict[str, list[MethodInfo]] = {}

    def add(self, item: MethodInfo) -> None:
        """Add a method; a second registration of its name becomes a clash (and raises)."""
        if item.name in self._items:
            self.clashes[item.name] = [self._items.pop(item.name)]
        if item.name in self.clashes:
            self.clashes[item.name].append(item)
            raise self.clash_error(item.name)
        self._items[item.name] = item

    def clash_error(self, name: str) -> PluginError:
        """The error naming every distribution that registered ``name``."""
        first, *rest = self.clashes[name]
        by = " and by ".join(f"{m.distribution} (plugin '{m.plugin}')" for m in [first, *rest])
        return PluginError(
            f"method '{name}' is registered twice: by {by}; "
            "uninstall or disable one of them (DEEPCORE_DISABLE_PLUGINS)"
        )

    def get(self, name: str, unavailable: str = "") -> MethodInfo:
        """The method ``name``; a clashing name raises the clash."""
        if name in self.clashes:
            raise self.clash_error(name)
        return super().get(name, unavailable)

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

    def __iter__(self) -> Iterator[MethodInfo]:
        return iter(sorted(self._items.values(), key=lambda m: (m.family, m.name)))


class SamplerRegistry(Registry[Any]):
    """Sampler name -> :class:`~deepcore_core.samplers.Sampler` subclass."""

    def __init__(self) -> None:
        super().__init__("sampler")

    def add(self, item: Any) -> None:
        """Validate a sampler class, then add it."""
        from deepcore_core.samplers import Sampler

        if not (isinstance(item, type) and issubclass(item, Sampler)):
            raise DeepcoreError(f"registered {item!r}, which is not a Sampler subclass")
        if not isinstance(item.name, str) or not _NAME.match(item.name):
            raise DeepcoreError(f"sampler {item!r} needs a lower-case name like 'my-sampler'")
        super().add(item)


class ScheduleRegistry(Registry[Any]):
    """Schedule name -> :class:`~deepcore_core.schedules.Schedule` subclass."""

    def __init__(self) -> None:
        super().__init__("schedule")

    def add(self, item: Any) -> None:
        """Check a schedule class (a class with ``plan`` and ``start``), then add it."""
        if not (
            isinstance(item, type)
            and all(callable(getattr(item, a, None)) for a in ("plan", "start"))
        ):
            raise DeepcoreError(f"registered {item!r}, which is not a Schedule subclass")
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise DeepcoreError(f"schedule {item!r} needs a lower-case name like 'my-schedule'")
        super().add(item)


class EncoderRegistry(Registry[Any]):
    """Encoder name -> :class:`~deepcore_core.encoders.Encoder` subclass."""

    def __init__(self) -> None:
        super().__init__("encoder")

    def add(self, item: Any) -> None:
        """Check an encoder class (a class with ``module`` and a ``name``), then add it."""
        if not (isinstance(item, type) and callable(getattr(item, "module", None))):
            raise DeepcoreError(f"registered {item!r}, which is not an Encoder subclass")
        name = getattr(item, "name", "")
        if not name or name == "supervised" or ":" in name:  # the selection model's name
            raise DeepcoreError(f"encoder class {item.__qualname__} needs a name of its own")
        super().add(item)
