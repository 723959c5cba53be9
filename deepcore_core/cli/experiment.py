"""``deepcore run``, ``benchmark``, ``report`` and ``train``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepcore_core import distributed
from deepcore_core._io import atomic_write, check_writable
from deepcore_core.cli.common import echo_json, handle_errors, host_of, note, parse_option_pairs
from deepcore_core.cli.params import settings_command
from deepcore_core.errors import DeepcoreError
from deepcore_core.settings import RunSettings, TrainCommandSettings

OptionPairs = Annotated[
    list[str] | None,
    typer.Option(metavar="[METHOD:]KEY=VALUE", help="A method option (repeatable)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
SchedulePairs = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="Schedule option (repeatable; with --schedule)."),
]


def with_schedule_options(settings: Any, pairs: list[str] | None) -> Any:
    """``settings`` with ``--schedule-option`` pairs over its ``schedule_options``."""
    if not pairs:
        return settings
    given = parse_option_pairs(pairs, ("schedule",), "--schedule-option")["schedule"]
    return dataclasses.replace(settings, schedule_options={**settings.schedule_options, **given})


def _experiment(
    ctx: typer.Context,
    settings: RunSettings,
    option: list[str] | None,
    schedule_option: list[str] | None = None,
) -> Any:
    """Check the settings and build the :class:`Experiment` (nothing is written yet)."""
    from deepcore_core.experiment import Experiment

    settings = with_schedule_options(settings, schedule_option)
    if option:
        opts = {m: dict(o) for m, o in settings.method_options.items()}
        for m, kv in parse_option_pairs(option, settings.methods).items():
            opts.setdefault(m, {}).update(kv)
        settings = dataclasses.replace(settings, method_options=opts)
    exp = Experiment(settings, host_of(ctx), log=lambda m: note(ctx, m))
    c = settings
    note(
        ctx,
        f"{c.dataset}: {len(exp.data.train)} train / {len(exp.data.test)} test, "
        f"methods {', '.join(exp.methods)}, fractions {', '.join(f'{f:g}' for f in c.fractions)}, "
        f"seeds {', '.join(map(str, c.seeds))}: {len(exp.plan())} runs on {exp.device}; "
        + exp.protocol_line(),
    )
    return exp


@handle_errors
@settings_command(RunSettings)
def run(
    ctx: typer.Context,
    settings: RunSettings,
    option: OptionPairs = None,
    schedule_option: SchedulePairs = None,
) -> None:
    """Select, train and evaluate: methods x fractions x seeds, next to random and full.

    With no arguments, runs the quick default on the digits set shipped with deepcore.
    """
    from deepcore_core.experiment import format_summary, summarize, summary_legend

    exp = _experiment(ctx, settings, option, schedule_option)
    records = exp.run()
    rows = summarize(records)
    typer.echo(format_summary(rows))
    note(ctx, "\n" + summary_legend(rows, exp.out))


@handle_errors
@settings_command(RunSettings)
def benchmark(
    ctx: typer.Context,
    settings: RunSettings,
    option: OptionPairs = None,
    schedule_option: SchedulePairs = None,
) -> None:
    """Run the comparison grid (as run) and write the report: tables, plot, timings.

    Methods x fractions x seeds x networks, always with uniform and the full-data model.
    Selections share one selection model per seed; with --jobs N, training runs go to N
    processes as soon as their selection exists. Finished runs are appended to
    results.jsonl; running the same command again resumes.
    """
    from deepcore_core.report import write_report

    exp = _experiment(ctx, settings, option, schedule_option)
    records = exp.run()
    if not distributed.is_main():
        return  # rank 0 writes the report
    md, files = write_report(  # resumed runs may come from other code versions: listed
        records, exp.out, mix_versions=True, families=_families(ctx), html=True
    )
    typer.echo(md)
    note(ctx, "report: " + ", ".join(str(f) for f in files))


def _families(ctx: typer.Context) -> dict[str, str]:
    """Method -> family of the installed methods (a report's panels group by it)."""
    return {m.name: m.family for m in host_of(ctx).registry}


@handle_errors
def report(
    ctx: typer.Context,
    results: Annotated[Path, typer.Argument(help="Output folder or results.jsonl.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the report (default: beside).")
    ] = None,
    mix_versions: Annotated[
        bool,
        typer.Option(
            "--mix-versions", help="Report runs made by different code versions together."
        ),
    ] = False,
    html: Annotated[
        bool, typer.Option("--html", help="Also write report.html, tables and figures in one file.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Print the tables and write report.md/.csv and the figures (accuracy per family,
    gap to uniform, selection cost)."""
    import dataclasses

    from deepcore_core.experiment import summarize
    from deepcore_core.report import load_results, write_report

    records = load_results(results)
    out = output or (results if results.is_dir() else results.parent)
    check_writable(out, folder=True)
    md, files = write_report(records, out, mix_versions, _families(ctx), html)
    if as_json:
        rows = [
            {**r, "gap": None if r["gap"] is None else dataclasses.asdict(r["gap"])}
            for r in summarize(records)
        ]
        echo_json({"rows": rows, "files": [str(f) for f in files]})
        return
    typer.echo(md)
    note(ctx, "report: " + ", ".join(str(f) for f in files))


@handle_errors
@settings_command(TrainCommandSettings)
def train(
    ctx: typer.Context,
    settings: TrainCommandSettings,
    schedule_option: SchedulePairs = None,
    as_json: AsJson = False,
) -> None:
    """Train a network on a saved selection (or the whole training set) and report its test
    accuracy.

    Selection weights, when present, weight each sample's loss. --schedule prunes during
    training (infobatch, rs2, adaptive).
    """
    s = with_schedule_options(settings, schedule_option)
    if s.dataset is None:
        raise DeepcoreError("give the --dataset (and --selection FILE to train on a coreset)")
    if s.output is not None:
        check_writable(s.output)  # before training, not after
    summary = train_on_selection(ctx, s)
    if as_json:
        echo_json(summary)
    else:
        typer.echo(
            f"trained {s.network} on {summary['size']} samples: test accuracy "
            f"{100 * (summary['test_accuracy'] or 0):.2f}% ({summary['seconds']:.1f} s)"
        )
    if s.output is not None and distributed.is_main():
        with atomic_write(s.output, "w") as fh:
            json.dump(summary, fh, indent=2)


def train_on_selection(ctx: typer.Context, s: TrainCommandSettings) -> dict[str, Any]:
    """Load the selection and the dataset, check they match, train and evaluate."""
    from deepcore_core.engine.devices import resolve_device, setup_cpu
    from deepcore_core.selection import Selection, dataset_fingerprint
    from deepcore_core.workflow import make_schedule, train_network, train_summary

    setup_cpu(s.threads)
    device = resolve_device(s.device)
    sel = None if s.selection is None else Selection.load(Path(str(s.selection)))
    host = host_of(ctx)
    data = host.datasets.load(str(s.dataset), s.data_root)
    if sel is not None:
        fp = dataset_fingerprint(data.train.labels, len(data.train), data.name)
        sel.check_fits(len(data.train), fp, data.name)
    size = len(data.train) if sel is None else len(sel)
    schedule = make_schedule(
        host, s.schedule, s.schedule_options, data, device, s.seed, selection=sel
    )
    config = s.train_config(s.seed)
    method = "full" if sel is None else sel.meta.get("method")
    result = train_network(
        host, s.network, data, config, device, selection=sel, test=data.test,
        run={"method": method, "network": s.network, "seed": s.seed},
        desc=f"{s.network} on {size} samples", schedule=schedule,
    )  # fmt: skip
    summary = train_summary(result, config, sel, s.network, s.seed, size, s.selection)
    return {**summary, "schedule": None if schedule is None else schedule.describe()}


def register(app: typer.Typer) -> None:
    """Add the experiment commands to ``app``."""
    app.command("run")(run)
    app.command("benchmark")(benchmark)
    app.command("report")(report)
    app.command("train")(train)
