"""Commands that describe the installation: methods, one method, plugins, datasets, networks,
samplers."""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any

import typer

from deepcore_core._version import __version__
from deepcore_core.cli.common import echo_json, format_table, handle_errors, host_of
from deepcore_core.errors import DeepcoreError
from deepcore_core.plugins import PluginHost
from deepcore_core.registry import MethodInfo

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@handle_errors
def list_methods(
    ctx: typer.Context,
    family: Annotated[str | None, typer.Option(help="Only methods of this family.")] = None,
    options: Annotated[
        bool, typer.Option("--options", help="Show every method's options.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List every installed selection method."""
    host = host_of(ctx)
    methods = list(host.registry)
    if family is not None:
        families = sorted({m.family for m in methods})
        methods = [m for m in methods if m.family == family]
        if not methods:
            raise DeepcoreError(
                f"no methods of family '{family}' (installed families: {', '.join(families)})"
            )
    if as_json:
        echo_json(
            [{**m.as_dict(), **({"options": m.options()} if options else {})} for m in methods]
        )
        return
    rows = [
        [m.name, m.family, ",".join(m.needs) or "-", m.distribution, m.summary] for m in methods
    ]
    header = ["method", "family", "needs", "distribution", "summary"]
    typer.echo(format_table(rows, header))
    if options:
        for m in methods:
            typer.echo("")
            typer.echo(_options_text(m.name, m.options()))
            typer.echo(_pool_text(m))
    failed = host.failed_plugins()
    if failed:
        typer.echo(f"\nnot loaded (errors): {', '.join(failed)}; see 'deepcore plugins'", err=True)


def _options_text(method: str, options: list[dict[str, object]]) -> str:
    if not options:
        return f"{method}: no options"
    rows = [[str(o["name"]), str(o["type"]), repr(o["default"]), str(o["doc"])] for o in options]
    text = f"{method} options:\n" + format_table(rows, ["option", "type", "default", "doc"])
    rules = [o for o in options if "original" in o]
    if rules:
        orig = [[str(o["name"]), repr(o["original"]), str(o["why"])] for o in rules]
        text += "\n--variant original sets:\n" + format_table(
            orig, ["option", "value", "the original code"]
        )
    return text


def _pool_text(m: MethodInfo) -> str:
    other = "--no-balance: the whole dataset" if m.cls.default_balance else "--balance: per class"
    return f"pool by default: {m.pool} ({other})"


@handle_errors
def info(
    ctx: typer.Context,
    method: Annotated[str, typer.Argument(help="A method name (see list-methods).")],
    as_json: AsJson = False,
) -> None:
    """Show one method: what it needs, where it comes from, its description and options."""
    host = host_of(ctx)
    m = host.method(method)
    doc = inspect.cleandoc(m.cls.__doc__ or "")
    if as_json:
        echo_json({**m.as_dict(), "description": doc, "options": m.options()})
        return
    typer.echo(f"{m.name} ({m.family}) from {m.distribution} {m.version}, plugin '{m.plugin}'")
    typer.echo(f"needs: {', '.join(m.needs) or 'nothing'}")
    typer.echo(_pool_text(m) + "\n")
    typer.echo(doc + "\n")
    typer.echo(_options_text(m.name, m.options()))


@handle_errors
def plugins(
    ctx: typer.Context,
    as_json: AsJson = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include the core's built-ins.")] = False,
) -> None:
    """List installed plugins with their versions, hooks, methods and status."""
    records = [r for r in host_of(ctx).plugin_records() if show_all or not r.builtin]
    if as_json:
        echo_json([r.as_dict() for r in records])
        return
    if not records:
        typer.echo("no plugins installed (use --all to see the core's built-ins)")
        return
    rows = [
        [
            r.name,
            f"{r.distribution} {r.version}",
            ",".join(r.methods) or "-",
            ",".join(r.hooks) or "-",
            r.status + (f": {r.error}" if r.error else ""),
        ]
        for r in records
    ]
    typer.echo(format_table(rows, ["plugin", "distribution", "methods", "hooks", "status"]))


@handle_errors
def list_datasets(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the datasets deepcore can load (all offline, from local files)."""
    reg = host_of(ctx).datasets
    items = [{"name": d.name, "description": d.description} for d in reg]
    if as_json:
        echo_json(items)
        return
    typer.echo(
        format_table([[d["name"], d["description"]] for d in items], ["dataset", "description"])
    )


def _list_rules(
    classes: Any, kind: str, as_json: bool, first: list[dict[str, Any]] | None = None
) -> None:
    """Print registered rule classes (samplers, schedules, encoders): name, options, summary
    (``first``: rows shown before them)."""
    from deepcore_core.options import option_table

    items = [*(first or [])] + [
        {
            "name": f"{s.name}:NAME" if getattr(s, "takes_target", False) else s.name,
            "summary": (inspect.getdoc(s) or "").splitlines()[0],
            "options": option_table(s.Options),
        }
        for s in classes
    ]
    if as_json:
        echo_json(items)
        return
    rows = [
        [
            i["name"],
            ", ".join(f"{o['name']}={o['default']!r}" for o in i["options"]) or "-",
            i["summary"],
        ]
        for i in items
    ]
    typer.echo(format_table(rows, [kind, "options", "summary"]))


@handle_errors
def list_samplers(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the sampling rules a score-based method can pick with (--sampler)."""
    _list_rules(host_of(ctx).samplers, "sampler", as_json)


@handle_errors
def list_schedules(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the pruning schedules training can use (--schedule): each epoch's samples."""
    _list_rules(host_of(ctx).schedules, "schedule", as_json)


@handle_errors
def list_encoders(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the encoders features can come from (--encoder; options: encoder_options)."""
    supervised = {
        "name": "supervised",
        "summary": "The selection model trained on the labels (the default with labels).",
        "options": [],
    }
    _list_rules(host_of(ctx).encoders, "encoder", as_json, [supervised])


@handle_errors
def list_networks(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the networks (all expose penultimate features and a linear head)."""
    items = [
        {
            "name": n.name,
            "min_size": n.min_size,
            "max_size": n.max_size,
            "torchvision_weights": n.torchvision_arch,
            "description": n.description,
        }
        for n in host_of(ctx).networks
    ]
    if as_json:
        echo_json(items)
        return
    rows = [
        [
            i["name"],
            f"{i['min_size']}-{i['max_size']}",
            i["torchvision_weights"] or "-",
            i["description"],
        ]
        for i in items
    ]
    typer.echo(format_table(rows, ["network", "image size", "torchvision weights", "description"]))


def version_text(host: PluginHost) -> str:
    """The core version, the interpreter and every plugin with its version and status."""
    lines = [f"deepcore-core {__version__}", f"Python {sys.version.split()[0]} ({sys.executable})"]
    plugins = [r for r in host.plugin_records() if not r.builtin]
    if plugins:
        lines.append("plugins:")
        for r in plugins:
            status = "" if r.status == "ok" else f" [{r.status}]"
            lines.append(f"  {r.distribution} {r.version} ({r.name}){status} at {r.location}")
    else:
        lines.append("plugins: none installed")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the listing commands to ``app``."""
    app.command("list-methods")(list_methods)
    app.command("info")(info)
    app.command("plugins")(plugins)
    app.command("list-datasets")(list_datasets)
    app.command("list-networks")(list_networks)
    app.command("list-samplers")(list_samplers)
    app.command("list-schedules")(list_schedules)
    app.command("list-encoders")(list_encoders)
