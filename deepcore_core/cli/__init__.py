"""The ``deepcore`` command line: one module per command group, built by :func:`create_app`.

Plugins add commands through the ``register_commands(cli)`` hook. Importing this package
does not import torch, so ``--help``, ``list-methods`` and ``plugins`` start fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer._click.exceptions import (  # typer >= 0.26 vendors click
    ClickException,
    NoArgsIsHelpError,
)
from typer.core import TyperGroup

from deepcore_core.cli import experiment, export, listing, select
from deepcore_core.cli.common import State, fail, host_of, state
from deepcore_core.errors import DeepcoreError
from deepcore_core.log import show_on_stderr
from deepcore_core.plugins import PluginHost

__all__ = ["create_app", "main"]


#: the exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it)
INTERRUPTED = 130


class DeepcoreGroup(TyperGroup):
    """Usage errors (a bad option value, an unknown option) as one ``Error:`` line, exit 2."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: Any = None, standalone_mode: bool = True, **kw: Any
    ) -> Any:
        """Run the command line; exit with its code unless ``standalone_mode`` is off."""
        try:
            result = super().main(args, prog_name, standalone_mode=False, **kw)
        except NoArgsIsHelpError as exc:  # a bare `deepcore`: the help, as click shows it
            exc.show()
            result = exc.exit_code
        except ClickException as exc:
            typer.echo(f"Error: {exc.format_message()}", err=True)
            result = exc.exit_code
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            result = 1
        code = result if isinstance(result, int) else 0
        if code == INTERRUPTED:  # typer turns Ctrl-C into exit 130 without a word
            typer.echo(
                "Interrupted: finished work is saved and nothing is half-written; "
                "run the same command to continue.",
                err=True,
            )
        if standalone_mode:
            sys.exit(code)
        return result


def _show_version(ctx: typer.Context, value: bool) -> None:
    if not value:
        return
    try:
        typer.echo(listing.version_text(host_of(ctx)))
    except DeepcoreError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(0)


def _root(
    ctx: typer.Context,
    strict_plugins: Annotated[
        bool, typer.Option("--strict-plugins", help="Fail when a plugin cannot be loaded (CI).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or notes, only results.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show versions of core, Python and plugins.",
            is_eager=True,
            callback=_show_version,
        ),
    ] = False,
) -> None:
    """Coreset selection for deep learning: every method under one protocol."""
    st = state(ctx)
    st.strict = strict_plugins
    st.quiet = quiet
    if quiet:
        os.environ["DEEPCORE_PROGRESS"] = "0"  # inherited by worker processes
    try:
        host_of(ctx)
    except DeepcoreError as exc:
        raise fail(str(exc)) from None


def create_app(host: PluginHost | None = None) -> typer.Typer:
    """Build the typer application (a factory, so tests get a fresh one).

    :param host: the plugin host to use (default: a new one, loading installed plugins);
        its plugins' ``register_commands`` add their commands.
    """
    plugin_host = host or PluginHost()
    app = typer.Typer(
        name="deepcore",
        help="Coreset selection for deep learning: every method under one protocol.",
        cls=DeepcoreGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"obj": State(host=plugin_host)},
    )
    app.callback()(_root)
    listing.register(app)
    select.register(app)
    experiment.register(app)
    export.register(app)
    plugin_host.hook.register_commands(cli=app)
    return app


def main() -> None:
    """Console-script entry point."""
    show_on_stderr()
    try:
        app = create_app()
    except DeepcoreError as exc:  # a broken plugin under DEEPCORE_STRICT_PLUGINS=1
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    try:
        app()
    finally:
        from deepcore_core import distributed

        distributed.stop()  # under torchrun: leave the group before the process ends
