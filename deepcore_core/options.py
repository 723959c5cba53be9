"""Typed method options: frozen dataclasses validated with clear messages.

A selector declares ``Options`` as a frozen dataclass whose fields have defaults and simple
types (``int``, ``float``, ``bool``, ``str``, ``Literal[...]`` and ``X | None`` of these).
:func:`parse_options` builds one from a mapping, rejecting unknown keys and ill-typed
values; string values (from ``--option key=value``) are parsed as YAML scalars first.
Range checks belong in the dataclass's ``__post_init__``, raising ``ValueError``.

A field declared with :func:`original_rule` records the value that reproduces the original
DeepCore code's rule where it differs from the method's paper; the ``original`` variant
(``--variant original``) starts from those values, and options given explicitly still win.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from deepcore_core.errors import OptionError

#: the rule sets a method can start from: its paper's (``default``) or the original code's
VARIANTS = ("default", "original")


def original_rule(default: Any, original: Any, why: str) -> Any:
    """An options field whose value ``original`` reproduces the original DeepCore code.

    :param why: one line on what the original does differently (shown by
        ``list-methods --options`` and in ``docs/methods.md``).
    """
    return dataclasses.field(default=default, metadata={"original": original, "why": why})


def original_values(cls: type) -> dict[str, Any]:
    """Option name -> the original code's value, for every field declared with it."""
    return {
        f.name: f.metadata["original"] for f in dataclasses.fields(cls) if "original" in f.metadata
    }


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is known; raise :class:`OptionError` naming the allowed ones."""
    if variant not in VARIANTS:
        raise OptionError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


@dataclasses.dataclass(frozen=True)
class LossBatchOptions:
    """The option of the methods that use per-sample gradients: the original code's gradients
    were those of a batch-mean loss, each scaled by 1 / (its loader batch's size)."""

    loss_batch: int | None = original_rule(
        None,
        256,
        "gradients of a batch-mean loss: each carries 1/(its batch's size), a pool's "
        "last partial batch weighs more",
    )  #: gradients of a batch-mean loss over batches of this many, in pool order (None: per sample)

    def __post_init__(self) -> None:
        if self.loss_batch is not None and self.loss_batch < 1:
            raise ValueError(f"loss_batch must be >= 1 or None, got {self.loss_batch}")
        later = getattr(super(), "__post_init__", None)  # the next options class's checks
        if later is not None:
            later()


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a method that takes none."""


def describe_options(cls: type) -> str:
    """Return ``name=default (type)`` for every field of an options dataclass."""
    hints = typing.get_type_hints(cls)
    parts = [
        f"{f.name}={f.default!r} ({type_name(hints[f.name])})" for f in dataclasses.fields(cls)
    ]
    return ", ".join(parts) if parts else "none"


def options_dict(options: Any) -> dict[str, Any]:
    """Return the options as a plain, JSON-friendly dict."""
    return dataclasses.asdict(options)


def parse_options(
    cls: type,
    values: Mapping[str, Any] | None,
    method: str,
    variant: str = "default",
    kind: str = "method",
) -> Any:
    """Build ``cls`` from ``values``; raise :class:`OptionError` naming the bad key or value.

    With ``variant="original"`` every option the original code decides differently starts
    at the original's value; ``values`` still override it. ``kind`` names what ``method``
    is in the errors (``method``, ``sampler``).
    """
    if check_variant(variant) == "original":
        values = {**original_values(cls), **dict(values or {})}
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise OptionError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {kind} '{method}'; valid options: {describe_options(cls)}"
        )
    kwargs = {}
    for key, raw in values.items():
        kwargs[key] = _coerce(raw, hints[key], key, f"{kind} '{method}'", cls)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise OptionError(f"invalid options for {kind} '{method}': {exc}") from None


def type_name(tp: Any) -> str:
    """A readable name of a type hint (``int``, ``'a' | 'b'``, ``float | None``)."""
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _coerce(raw: Any, tp: Any, key: str, owner: str, cls: type) -> Any:
    value = raw
    if isinstance(raw, str) and not accepts(tp, str):
        value = scalar(raw)
    ok, converted = convert_value(value, tp)
    if not ok:
        wanted = "a finite number" if not_finite(value) else type_name(tp)
        raise OptionError(
            f"option '{key}' of {owner} must be {wanted}, got {raw!r}; "
            f"valid options: {describe_options(cls)}"
        )
    return converted


def not_finite(value: Any) -> bool:
    """Whether ``value`` is a number (or its text) that is infinite or NaN."""
    try:
        return not isinstance(value, bool) and not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def scalar(text: str) -> Any:
    """Parse ``text`` as a YAML scalar (``"3"`` -> 3, ``"true"`` -> True); else keep it."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def accepts(tp: Any, kind: type) -> bool:
    """Whether type hint ``tp`` admits ``kind`` (directly or in a union)."""
    if tp is kind:
        return True
    if get_origin(tp) in (Union, types.UnionType):
        return any(accepts(a, kind) for a in get_args(tp))
    return False


def convert_value(value: Any, tp: Any) -> tuple[bool, Any]:
    """Convert ``value`` to type hint ``tp``: ``(True, converted)`` or ``(False, None)``."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            ok, out = convert_value(value, arg)
            if ok:
                return True, out
        return False, None
    if origin is Literal:
        return (value in get_args(tp)), value
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False, None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, None
        value = float(value)
        return math.isfinite(value), value  # nan and inf are never a setting
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def option_table(cls: type) -> list[dict[str, Any]]:
    """Every field of an options dataclass: ``name``, ``type``, ``default`` and ``doc``.

    The doc is the field's ``help`` metadata, else its ``#:`` comment in the class source.
    A field with an original-code rule also has ``original`` (its value) and ``why``.
    """
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    return [
        {
            "name": f.name,
            "type": type_name(hints[f.name]),
            "default": f.default if f.default is not dataclasses.MISSING else None,
            "doc": f.metadata.get("help") or comments.get(f.name, ""),
            **({k: f.metadata[k] for k in ("original", "why")} if "original" in f.metadata else {}),
        }
        for f in dataclasses.fields(cls)
    ]


_FIELD = re.compile(r"^\s+(\w+)\s*:[^=]*=")
_DOC = re.compile(r"#:\s*(.+)$")


def _field_comments(cls: type) -> dict[str, str]:
    """``#:`` comments of fields, from the class and its bases (Sphinx's convention): after
    the field on its line, on the line that closes a field declared over several lines
    (``)  #: doc``), or on comment lines just before the field.
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        name = None
        before: list[str] = []  # #: lines waiting for the field they precede
        for line in source.splitlines():
            doc = _DOC.search(line)
            if line.strip().startswith("#:") and doc:
                before.append(doc.group(1).strip())
                continue
            field = _FIELD.match(line)
            if field:
                name = field.group(1)
                if before:
                    out[name] = " ".join(before)
            before = []
            if doc and name:
                out[name] = doc.group(1).strip()
    return out
