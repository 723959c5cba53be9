"""What every command shares: one-line errors, the plugin host, JSON and table output."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from deepcore_core.errors import DeepcoreError, PluginError, file_error
from deepcore_core.plugins import PluginHost

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass
class State:
    """Per-invocation state kept on the root context: the host and the global flags."""

    host: PluginHost | None = None
    strict: bool = False
    quiet: bool = False


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``Error: message`` on stderr and return the exit to raise (see ``errors``)."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn :class:`DeepcoreError` and OS errors into one line on stderr and their exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeepcoreError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except OSError as exc:  # a path the command did not check itself
            err = file_error(exc, verb="use")
            raise fail(str(err), err.exit_code) from None
        except RuntimeError as exc:  # under torchrun: a collective whose peer is gone
            from deepcore_core import distributed

            if not distributed.launched():
                raise
            raise fail(distributed.failure(exc), 1) from None

    return wrapper  # type: ignore[return-value]


def state(ctx: typer.Context) -> State:
    """The root context's :class:`State` (created on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def host_of(ctx: typer.Context) -> PluginHost:
    """The plugin host for this invocation; with ``--strict-plugins`` a failed plugin stops."""
    st = state(ctx)
    if st.host is None:
        st.host = PluginHost()
    if st.strict:
        bad = [r for r in st.host.plugin_records() if r.status == "error"]
        if bad:
            r = bad[0]
            raise PluginError(f"plugin '{r.name}' ({r.distribution} {r.version}) {r.error}")
    return st.host


def note(ctx: typer.Context, message: str) -> None:
    """An informational line on stderr, unless ``-q`` (under torchrun: from rank 0 only)."""
    from deepcore_core import distributed

    if not state(ctx).quiet and distributed.is_main():
        typer.echo(message, err=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (numpy values become lists or numbers)."""
    typer.echo(json.dumps(data, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_table(rows: list[list[str]], header: list[str], width: int | None = None) -> str:
    """Align ``rows`` under ``header`` within ``width`` columns (default: the terminal's,
    100 in a pipe); the last column wraps at word boundaries, never cut, and goes on its own
    indented lines below each row when fewer than 20 columns are left for it. Where even the
    other columns do not fit, each row becomes a block: its first cell, then the others."""
    import textwrap

    width = width or shutil.get_terminal_size((100, 24)).columns
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    if fixed > width and len(widths) > 2:
        return _blocks(rows, header, width)
    below = width - fixed < 20 and len(widths) > 1
    room = max(20, width - 4 if below else width - fixed)

    def line(cells: list[str]) -> list[str]:
        head = "  ".join(str(c).ljust(w) for c, w in zip(cells[:-1], widths, strict=False))
        last = textwrap.wrap(str(cells[-1]), room, break_on_hyphens=False) or [""]
        if below:
            return [head.rstrip(), *("    " + part for part in last)]
        lead = head + "  " if len(cells) > 1 else ""
        return [(lead + last[0]).rstrip(), *(" " * len(lead) + part for part in last[1:])]

    if below:
        rule = "  ".join("-" * w for w in widths[:-1])
    else:
        rule = "  ".join([*("-" * w for w in widths[:-1]), "-" * min(widths[-1], room)])
    out = [*line(header), rule]
    for row in rows:
        out += line(row)
    return "\n".join(out)


def _blocks(rows: list[list[str]], header: list[str], width: int) -> str:
    """Rows as blocks for a narrow terminal: the first cell, then ``name: value`` of the
    middle cells on one wrapped line, then the last cell wrapped, all indented."""
    import textwrap

    out: list[str] = []
    for row in rows:
        middle = " · ".join(f"{h}: {c}" for h, c in zip(header[1:-1], row[1:-1], strict=True))
        out.append(str(row[0]))
        for text in (middle, str(row[-1])):
            out += textwrap.wrap(text, max(20, width - 4), initial_indent="    ",
                                 subsequent_indent="    ", break_on_hyphens=False)  # fmt: skip
    return "\n".join(out)


def parse_option_pairs(
    pairs: list[str], methods: tuple[str, ...], flag: str = "--option"
) -> dict[str, dict[str, str]]:
    """Parse ``--option key=value`` (one method) or ``--option method:key=value``."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        target, sep, rest = pair.partition(":")
        if not sep or "=" in target:
            if len(methods) != 1:
                raise DeepcoreError(
                    f"{flag} {pair!r}: with several methods, write method:key=value"
                )
            target, rest = methods[0], pair
        key, eq, value = rest.partition("=")
        if not eq or not key.strip():
            raise DeepcoreError(
                f"{flag} must look like key=value"
                + (" or method:key=value" if flag == "--option" else "")
                + f", got {pair!r}"
            )
        out.setdefault(target, {})[key.strip().replace("-", "_")] = value
    return out
