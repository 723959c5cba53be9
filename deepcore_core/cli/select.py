"""``deepcore select``: one coreset from a dataset or from precomputed arrays."""

from __future__ import annotations

from typing import Annotated

import typer

from deepcore_core import distributed
from deepcore_core._io import load_array
from deepcore_core.budget import check_size
from deepcore_core.cli.common import (
    echo_json,
    handle_errors,
    host_of,
    parse_option_pairs,
)
from deepcore_core.cli.params import settings_command
from deepcore_core.engine.devices import resolve_device, setup_cpu
from deepcore_core.errors import DeepcoreError
from deepcore_core.settings import SelectSettings
from deepcore_core.workflow import (
    apply_label_settings,
    check_selection_output,
    context_for_arrays,
    context_for_dataset,
    make_selection,
    sampler_for,
)


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
    check_size(s.fraction, s.budget)
    setup_cpu(s.threads)
    host = host_of(ctx)
    options = {**s.options, **parse_option_pairs(option or [], (s.method,)).get(s.method, {})}
    selector = host.create_selector(s.method, options, s.variant)
    out = check_selection_output(s.output)  # before the work, not after it
    given = parse_option_pairs(sampler_option or [], ("sampler",), "--sampler-option")
    sampler = sampler_for(
        host, selector, s.sampler, {**s.sampler_options, **given.get("sampler", {})}
    )
    device = resolve_device(s.device)  # kernels, neighbours and greedy loops run there too
    if s.dataset is not None:
        if any(v is not None for v in s.arrays().values()):
            raise DeepcoreError("give --dataset or precomputed arrays, not both")
        data = host.datasets.load(s.dataset, s.data_root)
        sel_ctx = context_for_dataset(host, data, s, s.seed, device)
    else:
        arrays = {  # large inputs are memory-mapped and processed block by block
            k: load_array(v, k, mmap=True) if v is not None else None for k, v in s.arrays().items()
        }
        sel_ctx = context_for_arrays(seed=s.seed, balance=s.balance, device=device, **arrays)
        apply_label_settings(host, sel_ctx, s)
    selection = make_selection(
        host,
        selector,
        sel_ctx,
        fraction=s.fraction,
        budget=s.budget,
        dataset_name=None if sel_ctx.dataset is None else sel_ctx.dataset.name,
        sampler=sampler,
    ).selection
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


def register(app: typer.Typer) -> None:
    """Add ``select`` to ``app``."""
    app.command("select")(select)
