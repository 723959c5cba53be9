"""The ``deepcore run`` and ``deepcore train`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deepcore_core._io import atomic_write
from deepcore_core.config import load_yaml
from deepcore_core.errors import DeepcoreError

Multi = list[str] | None


def method_options(pairs: list[str], methods: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Parse ``--option key=value`` (one method) or ``--option method:key=value``."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        target, sep, rest = pair.partition(":")
        if not sep or "=" in target:
            if len(methods) != 1:
                raise DeepcoreError(
                    f"--option {pair!r}: with several methods, write method:key=value"
                )
            target, rest = methods[0], pair
        key, eq, value = rest.partition("=")
        if not eq or not key.strip():
            raise DeepcoreError(
                f"--option must look like key=value or method:key=value, got {pair!r}"
            )
        out.setdefault(target, {})[key.strip().replace("-", "_")] = value
    return out


def register(app: typer.Typer, host_of: Any, handle_errors: Any) -> None:
    """Add ``run`` and ``train`` to ``app``."""

    @app.command("run")
    @handle_errors
    def run_cmd(
        ctx: typer.Context,
        config: Annotated[Path | None, typer.Option(help="YAML experiment file.")] = None,
        dataset: Annotated[str | None, typer.Option(help="Dataset (list-datasets).")] = None,
        data_root: Annotated[str | None, typer.Option(help="Folder with its files.")] = None,
        method: Annotated[Multi, typer.Option(help="Method (repeatable; default all).")] = None,
        option: Annotated[Multi, typer.Option(help="[method:]key=value (repeatable).")] = None,
        fraction: Annotated[Multi, typer.Option(help="Coreset fraction (repeatable).")] = None,
        balance: Annotated[
            bool | None, typer.Option("--balance/--no-balance", help="Per-class selection.")
        ] = None,
        selection_network: Annotated[str | None, typer.Option(help="Network that selects.")] = None,
        selection_epochs: Annotated[
            str | None, typer.Option(help="Epochs of selection-model training.")
        ] = None,
        selection_lr: Annotated[
            str | None, typer.Option(help="Selection-model learning rate (default: --lr).")
        ] = None,
        pretrained: Annotated[
            str | None, typer.Option(help="Local torchvision weights for the selection network.")
        ] = None,
        network: Annotated[
            Multi, typer.Option(help="Network trained on the coreset (repeatable).")
        ] = None,
        epochs: Annotated[str | None, typer.Option(help="Training epochs.")] = None,
        batch_size: Annotated[str | None, typer.Option(help="Batch size.")] = None,
        lr: Annotated[str | None, typer.Option(help="Learning rate.")] = None,
        min_lr: Annotated[str | None, typer.Option(help="Final cosine learning rate.")] = None,
        momentum: Annotated[str | None, typer.Option(help="SGD momentum.")] = None,
        weight_decay: Annotated[str | None, typer.Option(help="Weight decay.")] = None,
        nesterov: Annotated[bool | None, typer.Option("--nesterov/--no-nesterov")] = None,
        augment: Annotated[bool | None, typer.Option("--augment/--no-augment")] = None,
        seed: Annotated[Multi, typer.Option(help="Seed (repeatable).")] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
        output: Annotated[str | None, typer.Option(help="Output folder.")] = None,
        cache_dir: Annotated[str | None, typer.Option(help="Selection-model cache.")] = None,
        full: Annotated[
            bool | None, typer.Option("--full/--no-full", help="Train the full-data model.")
        ] = None,
        jobs: Annotated[str, typer.Option(help="Training runs in parallel processes.")] = "1",
    ) -> None:
        """Select, train and evaluate: methods x fractions x seeds, next to random and full.

        With no arguments, runs the quick default on the digits set shipped with deepcore.
        """
        from deepcore_core.experiment import Experiment, format_summary, make_config, summarize

        values: dict[str, Any] = load_yaml(config) if config is not None else {}
        flags = {
            "dataset": dataset,
            "data_root": data_root,
            "methods": method,
            "fractions": fraction,
            "balance": balance,
            "selection_network": selection_network,
            "selection_epochs": selection_epochs,
            "selection_lr": selection_lr,
            "pretrained": pretrained,
            "networks": network,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "min_lr": min_lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "augment": augment,
            "seeds": seed,
            "device": device,
            "output": output,
            "cache_dir": cache_dir,
            "include_full": full,
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        if option:
            methods = values.get("methods") or ()
            methods = (methods,) if isinstance(methods, str) else tuple(methods)
            opts = values.setdefault("method_options", {})
            for m, kv in method_options(option, methods).items():
                opts.setdefault(m, {}).update(kv)
        if "output" not in values:
            values["output"] = str(Path("runs") / str(values.get("dataset", "digits")))
        cfg = make_config(values)
        from deepcore_core.engine.devices import resolve_device

        resolve_device(cfg.device)
        host = host_of(ctx)
        exp = Experiment(cfg, host, log=lambda m: typer.echo(m, err=True))
        n_runs = len(exp.plan())
        typer.echo(
            f"{cfg.dataset}: {len(exp.data.train)} train / {len(exp.data.test)} test, "
            f"methods {', '.join(exp.methods)}, fractions "
            f"{', '.join(f'{f:g}' for f in cfg.fractions)}, seeds "
            f"{', '.join(map(str, cfg.seeds))}: {n_runs} runs on {exp.device}",
            err=True,
        )
        try:
            n_jobs = int(jobs)
        except ValueError:
            raise DeepcoreError(f"jobs must be a whole number, got {jobs!r}") from None
        records = exp.run(n_jobs)
        if ctx.info_name == "benchmark":
            from deepcore_core.report import write_report

            md, files = write_report(records, exp.out)
            typer.echo(md)
            typer.echo("report: " + ", ".join(str(f) for f in files), err=True)
            return
        typer.echo(format_summary(summarize(records)))
        typer.echo(
            f"\ntest accuracy (%) after the last epoch, mean ± std over seeds; "
            f"results in {exp.out}/",
            err=True,
        )

    app.command(
        "benchmark",
        help="Run the comparison grid (as run) and write the report: tables, plot, timings.\n\n"
        "Methods x fractions x seeds x networks, always with uniform and the full-data model. "
        "Selections come first and share one selection model per seed; training runs are "
        "spread over --jobs processes. Finished runs are appended to results.jsonl; running "
        "the same command again resumes.",
    )(run_cmd)

    @app.command("report")
    @handle_errors
    def report_cmd(
        results: Annotated[Path, typer.Argument(help="Output folder or results.jsonl.")],
        output: Annotated[
            Path | None, typer.Option(help="Where to write the report (default: beside).")
        ] = None,
    ) -> None:
        """Print the paper-style table and write report.md/.csv and the accuracy plot."""
        from deepcore_core.report import load_results, write_report

        records = load_results(results)
        out = output or (results if results.is_dir() else results.parent)
        md, files = write_report(records, out)
        typer.echo(md)
        typer.echo("report: " + ", ".join(str(f) for f in files), err=True)

    @app.command("train")
    @handle_errors
    def train_cmd(
        ctx: typer.Context,
        selection: Annotated[Path, typer.Option(help="Selection file (.npz) to train on.")],
        dataset: Annotated[str, typer.Option(help="Dataset the selection was made on.")],
        data_root: Annotated[str | None, typer.Option(help="Folder with its files.")] = None,
        network: Annotated[str, typer.Option(help="Network to train.")] = "lenet",
        epochs: Annotated[str, typer.Option(help="Training epochs.")] = "50",
        batch_size: Annotated[str, typer.Option(help="Batch size.")] = "128",
        lr: Annotated[str, typer.Option(help="Learning rate.")] = "0.1",
        seed: Annotated[str, typer.Option(help="Seed.")] = "0",
        device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
        output: Annotated[Path | None, typer.Option(help="Write the result as JSON.")] = None,
    ) -> None:
        """Train a network on a saved selection and report its test accuracy.

        Selection weights, when present, weight each sample's loss.
        """
        import dataclasses

        import numpy as np

        from deepcore_core.engine.devices import resolve_device, seed_everything
        from deepcore_core.engine.training import train_model
        from deepcore_core.experiment import make_config
        from deepcore_core.selection import Selection, dataset_fingerprint

        cfg = make_config(
            {
                "dataset": dataset,
                "data_root": data_root,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "seeds": [seed],
                "networks": [network],
                "device": device,
            }
        )
        dev = resolve_device(cfg.device)
        sel = Selection.load(selection)
        host = host_of(ctx)
        data = host.datasets.load(cfg.dataset, cfg.data_root)
        fp = dataset_fingerprint(data.train.labels, len(data.train), data.name)
        if sel.meta.get("dataset_fingerprint") != fp:
            raise DeepcoreError(
                f"selection '{selection}' was made on another dataset (fingerprint "
                f"{sel.meta.get('dataset_fingerprint')}, {sel.meta.get('dataset')}) than "
                f"'{data.name}' ({fp})"
            )
        if sel.indices.size and sel.indices.max() >= len(data.train):
            raise DeepcoreError(f"selection '{selection}' has indices beyond the dataset")
        s = cfg.seeds[0]
        seed_everything(s)
        net = host.networks.build(network, data.channels, data.num_classes, data.image_size)
        train, test = data.train.subset(sel.indices), data.test
        if dev.type == "cuda" and hasattr(train, "to"):
            train, test = train.to(dev), test.to(dev)
        result = train_model(
            net,
            train,
            cfg.train_config(s),
            dev,
            weights=sel.weights,
            test=test,
            desc=f"{network} on {len(sel)} samples",
        )
        summary = {
            "selection": str(selection),
            "method": sel.meta.get("method"),
            "size": len(sel),
            "weighted": sel.weights is not None,
            "network": network,
            "seed": s,
            "train": dataclasses.asdict(cfg.train_config(s)),
            "test_accuracy": result.final_accuracy,
            "best_accuracy": result.best_accuracy,
            "seconds": result.seconds,
            "history": result.history,
        }
        typer.echo(
            f"trained {network} on {len(sel)} samples: test accuracy "
            f"{100 * (result.final_accuracy or 0):.2f}% ({result.seconds:.1f} s)"
        )
        if output is not None:
            with atomic_write(output, "w") as fh:
                json.dump(summary, fh, indent=2, default=lambda o: np.asarray(o).tolist())
