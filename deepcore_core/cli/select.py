"""``deepcore select``: one coreset from a dataset or from precomputed arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepcore_core import distributed
from deepcore_core._io import check_writable, load_array
from deepcore_core.api import build_context, run_selection
from deepcore_core.cli.common import (
    echo_json,
    handle_errors,
    host_of,
    parse_option_pairs,
)
from deepcore_core.cli.params import settings_command
from deepcore_core.context import SelectionContext
from deepcore_core.errors import DeepcoreError
from deepcore_core.plugins import PluginHost
from deepcore_core.selection import check_sidecar
from deepcore_core.settings import SelectSettings
from deepcore_core.user_inputs import resolve


@handle_errors
@settings_command(SelectSettings)
def select(
    ctx: typer.Context,
    settings: SelectSettings,
    option: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Method option (repeatable).")
    ] = None,
    sampler_option: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Sampler option (repeatable; with --sampler)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Select a coreset and write it to a file.

    Select from a dataset (--dataset; a selection model is trained and cached as needed)
    or from precomputed arrays (features, labels, scores, logits or probabilities).
    Give the size as --fraction or --budget.
    """
    s = settings
    if not s.method:
        raise DeepcoreError("no method given; use --method (see 'deepcore list-methods')")
    if s.fraction is None and s.budget is None:
        raise DeepcoreError("give the coreset size with --fraction or --budget")
    from deepcore_core.engine.devices import setup_cpu

    setup_cpu(s.threads)
    host = host_of(ctx)
    options = {**s.options, **parse_option_pairs(option or [], (s.method,)).get(s.method, {})}
    selector = host.create_selector(s.method, options, s.variant)
    out = Path(s.output)
    if out.suffix != ".npz":
        raise DeepcoreError(f"--output must end in .npz, got '{out}'")
    check_writable(out)
    check_sidecar(out.with_suffix(".json"))  # before the work, not after it
    if s.dataset is not None:
        if any(v is not None for v in s.arrays().values()):
            raise DeepcoreError("give --dataset or precomputed arrays, not both")
        sel_ctx = dataset_context(host, s)
        dataset_name = sel_ctx.dataset.name
    else:
        device = resolve(s.device)  # kernels, neighbours and greedy loops run there too
        arrays = {  # large inputs are memory-mapped and processed block by block
            k: load_array(v, k, mmap=True) if v is not None else None for k, v in s.arrays().items()
        }
        sel_ctx = build_context(seed=s.seed, balance=s.balance, device=device, **arrays)
        dataset_name = None
    given = parse_option_pairs(sampler_option or [], ("sampler",), "--sampler-option")
    sampler_opts = {**s.sampler_options, **given.get("sampler", {})}
    if sampler_opts and not s.sampler:
        raise DeepcoreError("--sampler-option needs --sampler")
    sampler = host.create_sampler(s.sampler, sampler_opts) if s.sampler else None
    selection = run_selection(
        host,
        selector,
        sel_ctx,
        fraction=s.fraction,
        budget=s.budget,
        dataset_name=dataset_name,
        sampler=sampler,
    )
    if distributed.is_main():  # under torchrun every rank holds the selection; one writes it
        selection.save(out)
    summary = {
        "method": selector.name,
        "selected": len(selection),
        "n": sel_ctx.n,
        "weighted": selection.weights is not None,
        "output": str(out),
        "per_class": selection.meta.get("per_class"),
    }
    if as_json:
        echo_json(summary)
    else:
        typer.echo(
            f"selected {len(selection)} of {sel_ctx.n} samples with '{selector.name}' -> {out}"
        )


def dataset_context(host: PluginHost, s: SelectSettings) -> SelectionContext:
    """A selection context over a dataset, with the selection model's settings."""
    from deepcore_core.engine.devices import resolve_device

    device = resolve_device(s.device)
    host.networks.get(s.selection_network)
    data = host.datasets.load(str(s.dataset), s.data_root)
    return SelectionContext(
        n=len(data.train),
        labels=data.train.labels,
        seed=s.seed,
        balance=s.balance,
        device=str(device),
        dataset=data,
        pretrain=s.pretrain_spec(),
        networks=host.networks,
    )


def register(app: typer.Typer) -> None:
    """Add ``select`` to ``app``."""
    app.command("select")(select)
