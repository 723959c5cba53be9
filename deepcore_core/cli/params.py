"""Command options made from the settings model, and ``--config`` YAML as typer's default map.

:func:`settings_command` gives a command one typed option per setting of a settings class
(help and default from the field) plus ``--config FILE``. The YAML file is read by an eager
callback into ``ctx.default_map``, so the precedence is click's own: a flag on the command
line, then the file, then the setting's default. Unknown keys in the file are an error with
a suggestion; relative paths in it resolve against the file's folder.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer

from deepcore_core import distributed
from deepcore_core.cli.common import fail
from deepcore_core.errors import DeepcoreError
from deepcore_core.settings import build, canonical, fields, load_yaml, resolve_paths

CONFIG_EXTRA = "deepcore.config_extra"


def _cli_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


#: numbers reach the settings model as text: its errors name the bad value (typer's do not)
_NUMBERS = {int: "INTEGER", float: "NUMBER"}


def _parameter(f: dataclasses.Field[Any], hint: Any) -> inspect.Parameter:
    """The typer parameter of one setting."""
    flag = "--" + (f.metadata.get("flag") or f.name).replace("_", "-")
    help_text = f.metadata.get("help", "")
    default: Any = f.default
    if f.metadata.get("switch"):  # one flag, named as it reads (--no-labels)
        option = typer.Option(flag, help=help_text)
        return _kw(f.name, Annotated[bool, option], default)
    if hint is bool or hint == bool | None:  # a flag pair; None: neither flag given
        option = typer.Option(
            f"{flag}/--no-{flag[2:]}", help=help_text, show_default=default is not None
        )
        return _kw(f.name, Annotated[hint, option], default)
    if get_origin(hint) is tuple:  # repeatable; numbers as text, see _NUMBERS
        metavar = _NUMBERS.get(get_args(hint)[0], "NAME")
        option = typer.Option(flag, help=help_text, metavar=metavar)
        return _kw(f.name, Annotated[list[str] | None, option], [str(x) for x in default] or None)
    base = [a for a in get_args(hint) if a is not type(None)] or [hint]
    if base[0] in _NUMBERS:
        option = typer.Option(flag, help=help_text, metavar=_NUMBERS[base[0]])
        return _kw(f.name, Annotated[str | None, option], None if default is None else str(default))
    named = "PATH" if f.metadata.get("path") else "NAME" if base[0] is str else None
    option = typer.Option(flag, help=help_text, show_default=default is not None, metavar=named)
    return _kw(f.name, Annotated[hint, option], default)


def _kw(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _config_callback(cls: type) -> Callable[[typer.Context, Any, Path | None], Path | None]:
    def load(ctx: typer.Context, param: Any, value: Path | None) -> Path | None:
        if value is None:
            return value
        try:
            data = canonical(cls, load_yaml(value), f"config file '{value}'")
        except DeepcoreError as exc:
            raise fail(str(exc)) from None
        known = fields(cls)
        extra = {k: data.pop(k) for k in list(data) if not known[k].metadata.get("cli", True)}
        data = resolve_paths(cls, data, value.parent)
        for key, v in data.items():
            if get_origin(typing.get_type_hints(cls)[key]) is tuple and not isinstance(v, list):
                data[key] = [v]
        ctx.default_map = {**(ctx.default_map or {}), **data}
        ctx.meta[CONFIG_EXTRA] = extra
        return value

    return load


def settings_command(cls: type) -> Callable[[Callable[..., Any]], Any]:
    """Give a command an option per setting of ``cls`` and ``--config``.

    The command receives ``settings`` (an instance of ``cls``) instead of the options; it
    must also take ``ctx: typer.Context``. Settings that are not CLI options (mappings such
    as ``method_options``) come from the YAML file only.
    """
    hints = typing.get_type_hints(cls)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "settings"]
        names = [f.name for f in _cli_fields(cls)]
        config = typer.Option(
            metavar="FILE",
            help="YAML file of these settings (flags given here win over it).",
            is_eager=True,
            callback=_config_callback(cls),
        )
        params = [
            *own,
            *(_parameter(f, hints[f.name]) for f in _cli_fields(cls)),
            _kw("config", Annotated[Path | None, config], None),
        ]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            ctx: typer.Context = kwargs["ctx"]
            kwargs.pop("config")
            values = {n: kwargs.pop(n) for n in names}
            # None or an empty repeatable option means "not given": the default holds
            values = {k: v for k, v in values.items() if v is not None and v != []}
            values.update(ctx.meta.get(CONFIG_EXTRA, {}))
            settings = build(cls, values, "the settings")
            if distributed.launched():  # under torchrun: join the job's process group
                distributed.start(str(getattr(settings, "device", "auto")))
            return func(settings=settings, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
