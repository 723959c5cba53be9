"""``deepcore export``: a selection's indices and scores in formats other tools read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepcore_core._io import check_writable
from deepcore_core.cli.common import echo_json, handle_errors
from deepcore_core.errors import DeepcoreError
from deepcore_core.selection import Selection


@handle_errors
def export(
    selection: Annotated[Path, typer.Argument(help="Selection file (.npz).")],
    indices: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the sorted indices (int64 .npy).")
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write every sample's score, kept and weight (.csv)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export a selection: a sorted index file, and a CSV of every sample's score with a kept
    column."""
    if indices is None and scores is None:
        raise DeepcoreError("nothing to export: give --indices FILE.npy and/or --scores FILE.csv")
    for path, suffix in ((indices, ".npy"), (scores, ".csv")):
        if path is not None:
            if path.suffix != suffix:
                raise DeepcoreError(f"'{path}' must end in {suffix}")
            check_writable(path)  # before anything is written
    sel = Selection.load(selection)
    if scores is not None and sel.scores is None:
        raise DeepcoreError(f"selection '{selection}' has no per-sample scores to export")
    written = [str(p) for p in (
        sel.save_indices(indices) if indices is not None else None,
        sel.save_scores(scores) if scores is not None else None,
    ) if p is not None]  # fmt: skip
    if as_json:
        echo_json({"selection": str(selection), "selected": len(sel), "files": written})
    else:
        typer.echo(f"exported {len(sel)} selected samples of '{selection}' -> {', '.join(written)}")


def register(app: typer.Typer) -> None:
    """Add ``export`` to ``app``."""
    app.command("export")(export)
