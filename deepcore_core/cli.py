"""The ``deepcore`` command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from deepcore_core._io import load_array
from deepcore_core._version import __version__
from deepcore_core.api import build_context, run_selection
from deepcore_core.budget import check_fraction
from deepcore_core.config import check_keys, load_yaml
from deepcore_core.errors import DeepcoreError
from deepcore_core.plugins import PluginHost

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print ``Error: message`` on stderr and return the exit (code 2) to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(2)


def handle_errors(func: F) -> F:
    """Turn :class:`DeepcoreError` into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeepcoreError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def host_of(ctx: typer.Context) -> PluginHost:
    """The plugin host for this invocation, created on first use."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "host" not in root.obj:
        root.obj["host"] = PluginHost(strict=root.obj.get("strict") or None)
    return root.obj["host"]


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Align ``rows`` under ``header`` in plain-text columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def from_config(ctx: typer.Context, values: dict[str, Any], config: dict[str, Any]) -> None:
    """Fill ``values`` from ``config`` for every parameter not given on the command line."""
    for key, value in config.items():
        source = ctx.get_parameter_source(key)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            values[key] = value


def parse_option_pairs(pairs: list[str]) -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict, with a clear error for a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DeepcoreError(f"--option must look like key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = value
    return out


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


def show_version(ctx: typer.Context, value: bool) -> None:
    """Eager ``--version`` callback."""
    if not value:
        return
    try:
        typer.echo(version_text(host_of(ctx)))
    except DeepcoreError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(0)


def create_app() -> typer.Typer:
    """Build the typer application (a factory, so tests get a fresh one)."""
    app = typer.Typer(
        name="deepcore",
        help="Coreset selection for deep learning: every method under one protocol.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        strict_plugins: Annotated[
            bool,
            typer.Option("--strict-plugins", help="Fail when a plugin cannot be loaded (for CI)."),
        ] = False,
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Show versions of core, Python and plugins.",
                is_eager=True,
                callback=show_version,
            ),
        ] = False,
    ) -> None:
        """Coreset selection for deep learning: every method under one protocol."""
        ctx.obj = {"strict": strict_plugins}

    @app.command("list-methods")
    @handle_errors
    def list_methods(
        ctx: typer.Context,
        family: Annotated[str | None, typer.Option(help="Only methods of this family.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
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
            typer.echo(json.dumps([m.as_dict() for m in methods], indent=2))
            return
        rows = [
            [
                m.name,
                m.family,
                ",".join(m.needs) or "-",
                m.plugin,
                f"{m.distribution} {m.version}",
                m.summary,
            ]
            for m in methods
        ]
        typer.echo(
            format_table(rows, ["method", "family", "needs", "plugin", "distribution", "summary"])
        )
        failed = host.failed_plugins()
        if failed:
            typer.echo(
                f"\nnot loaded (errors): {', '.join(failed)}; see 'deepcore plugins'", err=True
            )

    @app.command("plugins")
    @handle_errors
    def plugins(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        show_all: Annotated[
            bool, typer.Option("--all", help="Include the core's built-in plugins.")
        ] = False,
    ) -> None:
        """List installed plugins with their versions, hooks, methods and status."""
        records = [r for r in host_of(ctx).plugin_records() if show_all or not r.builtin]
        if as_json:
            typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
            return
        if not records:
            typer.echo("no plugins installed (use --all to see the core's built-ins)")
            return
        rows = [
            [
                r.name,
                r.distribution,
                r.version,
                ",".join(r.hooks) or "-",
                ",".join(r.methods) or "-",
                r.status + (f": {r.error}" if r.error else ""),
            ]
            for r in records
        ]
        typer.echo(
            format_table(rows, ["plugin", "distribution", "version", "hooks", "methods", "status"])
        )

    @app.command("select")
    @handle_errors
    def select_cmd(
        ctx: typer.Context,
        method: Annotated[str | None, typer.Option(help="Selection method (list-methods).")] = None,
        fraction: Annotated[
            str | None, typer.Option(help="Coreset size as a fraction of N, in (0, 1].")
        ] = None,
        budget: Annotated[str | None, typer.Option(help="Coreset size as a count.")] = None,
        balance: Annotated[
            bool, typer.Option(help="Select per class in proportion to class sizes.")
        ] = True,
        seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
        option: Annotated[
            list[str] | None, typer.Option(help="Method option key=value (repeatable).")
        ] = None,
        config: Annotated[Path | None, typer.Option(help="YAML file with these settings.")] = None,
        output: Annotated[Path, typer.Option(help="Where to write the selection (.npz).")] = Path(
            "selection.npz"
        ),
        features: Annotated[Path | None, typer.Option(help="N x D features (.npy).")] = None,
        labels: Annotated[Path | None, typer.Option(help="N class labels (.npy).")] = None,
        scores: Annotated[Path | None, typer.Option(help="N per-sample scores (.npy).")] = None,
        logits: Annotated[Path | None, typer.Option(help="N x C logits (.npy).")] = None,
        probs: Annotated[Path | None, typer.Option(help="N x C probabilities (.npy).")] = None,
        dataset: Annotated[str | None, typer.Option(help="Select from a dataset.")] = None,
        data_root: Annotated[str | None, typer.Option(help="Folder with its files.")] = None,
        selection_network: Annotated[
            str, typer.Option(help="Network trained to select (with --dataset).")
        ] = "lenet",
        selection_epochs: Annotated[
            str, typer.Option(help="Epochs of selection-model training.")
        ] = "10",
        selection_lr: Annotated[
            str, typer.Option(help="Learning rate of selection-model training.")
        ] = "0.1",
        pretrained: Annotated[
            str | None, typer.Option(help="Local torchvision weights for that network.")
        ] = None,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
        cache_dir: Annotated[str | None, typer.Option(help="Selection-model cache.")] = None,
    ) -> None:
        """Select a coreset and write it to a file.

        Select from a dataset (--dataset; a selection model is trained and cached as needed)
        or from precomputed arrays (features, labels, scores, logits or probabilities).
        Give the size as --fraction or --budget.
        """
        values: dict[str, Any] = {
            "method": method,
            "fraction": fraction,
            "budget": budget,
            "balance": balance,
            "seed": seed,
            "options": {},
            "output": output,
            "features": features,
            "labels": labels,
            "scores": scores,
            "logits": logits,
            "probs": probs,
            "dataset": dataset,
            "data_root": data_root,
            "selection_network": selection_network,
            "selection_epochs": selection_epochs,
            "selection_lr": selection_lr,
            "pretrained": pretrained,
            "device": device,
            "cache_dir": cache_dir,
        }
        if config is not None:
            cfg = load_yaml(config)
            check_keys(cfg, set(values), f"config file '{config}'")
            if "option" in cfg:
                cfg["options"] = cfg.pop("option")
            opts = cfg.pop("options", {}) or {}
            if not isinstance(opts, dict):
                raise DeepcoreError(f"'options' in config file '{config}' must be a mapping")
            values["options"] = dict(opts)
            from_config(ctx, values, cfg)
        values["options"].update(parse_option_pairs(option or []))
        if not values["method"]:
            raise DeepcoreError("no method given; use --method (see 'deepcore list-methods')")
        _check_cli_types(values)
        host = host_of(ctx)
        selector = host.create_selector(str(values["method"]), values["options"])
        out = Path(values["output"])
        if out.suffix != ".npz":
            raise DeepcoreError(f"--output must end in .npz, got '{out}'")
        array_keys = ("features", "labels", "scores", "logits", "probs")
        if values["dataset"] is not None:
            if any(values[k] is not None for k in array_keys):
                raise DeepcoreError("give --dataset or precomputed arrays, not both")
            sel_ctx = _dataset_context(host, values)
            dataset_name = sel_ctx.dataset.name
        else:
            arrays = {
                k: load_array(values[k], k) if values[k] is not None else None for k in array_keys
            }
            sel_ctx = build_context(**arrays, seed=values["seed"], balance=values["balance"])
            dataset_name = None
        selection = run_selection(
            host,
            selector,
            sel_ctx,
            fraction=values["fraction"],
            budget=values["budget"],
            dataset_name=dataset_name,
        )
        selection.save(out)
        typer.echo(
            f"selected {len(selection)} of {sel_ctx.n} samples with '{selector.name}' -> {out}"
        )

    @app.command("list-datasets")
    @handle_errors
    def list_datasets(ctx: typer.Context) -> None:
        """List the datasets deepcore can load (all offline, from local files)."""
        reg = host_of(ctx).datasets
        rows = [[n, reg.get(n).description] for n in reg.names()]
        typer.echo(format_table(rows, ["dataset", "description"]))

    @app.command("list-networks")
    @handle_errors
    def list_networks(ctx: typer.Context) -> None:
        """List the networks (all expose penultimate features and a linear head)."""
        reg = host_of(ctx).networks
        rows = []
        for n in reg.names():
            info = reg.get(n)
            rows.append(
                [
                    n,
                    f"{info.min_size}-{info.max_size}",
                    info.torchvision_arch or "-",
                    info.description,
                ]
            )
        typer.echo(
            format_table(rows, ["network", "image size", "torchvision weights", "description"])
        )

    from deepcore_core import cli_experiment

    cli_experiment.register(app, host_of, handle_errors)
    return app


def _dataset_context(host: PluginHost, values: dict[str, Any]) -> Any:
    """A selection context over a dataset, with the selection model's settings."""
    from deepcore_core.context import SelectionContext
    from deepcore_core.engine.devices import resolve_device
    from deepcore_core.experiment import make_config

    cfg = make_config(
        {
            "dataset": values["dataset"],
            "data_root": values["data_root"],
            "selection_network": values["selection_network"],
            "selection_epochs": values["selection_epochs"],
            "selection_lr": values["selection_lr"],
            "pretrained": values["pretrained"],
            "device": values["device"],
            "cache_dir": values["cache_dir"],
        }
    )
    device = resolve_device(cfg.device)
    host.networks.get(cfg.selection_network)
    data = host.datasets.load(cfg.dataset, cfg.data_root)
    return SelectionContext(
        n=len(data.train),
        labels=data.train.labels,
        seed=values["seed"],
        balance=values["balance"],
        device=str(device),
        dataset=data,
        pretrain=cfg.pretrain_spec(),
        networks=host.networks,
    )


def _check_cli_types(values: dict[str, Any]) -> None:
    """Check the types of values that may have come from a YAML file."""
    if isinstance(values["seed"], bool) or not isinstance(values["seed"], int):
        raise DeepcoreError(f"seed must be an integer, got {values['seed']!r}")
    if not isinstance(values["balance"], bool):
        raise DeepcoreError(f"balance must be true or false, got {values['balance']!r}")
    b = values["budget"]
    if isinstance(b, str):
        try:
            b = values["budget"] = int(b)
        except ValueError:
            raise DeepcoreError(f"budget must be a whole number, got {b!r}") from None
    if b is not None and (isinstance(b, bool) or not isinstance(b, int)):
        raise DeepcoreError(f"budget must be a whole number, got {b!r}")
    if values["fraction"] is not None:
        values["fraction"] = check_fraction(values["fraction"])
    if values["fraction"] is not None and values["budget"] is not None:
        raise DeepcoreError("give --fraction or --budget, not both")
    if values["fraction"] is None and values["budget"] is None:
        raise DeepcoreError("give the coreset size with --fraction or --budget")


def main() -> None:
    """Console-script entry point."""
    create_app()()
