"""The hooks a deepcore plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names
match the specs below; it is found through an entry point in the group ``deepcore``.
Arguments are passed by keyword; an implementation may accept any subset of them.

The four stage hooks run in this order for one selection: ``train`` (only when a trained
model is needed and none is given), ``embed`` (only when model outputs are needed and not
given), ``score`` and ``select``. Each is *firstresult*: the first implementation that
returns something other than None wins, and the core's own implementations are registered
``trylast``, so a plugin can take over a stage for its own methods (check
``selector.name`` / ``ctx.selector``) or for all of them, and return None to pass.

The observer hooks (``on_*``) are called for every implementation and their results are
ignored: use them to log, plot or stop early from outside the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np

    from deepcore_core.context import SelectionContext
    from deepcore_core.selection import Selection
    from deepcore_core.selector import Selector

PROJECT = "deepcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_selectors(register: Callable[[type[Selector]], None]) -> None:
    """Register selection methods by calling ``register(SelectorSubclass)`` once per method.

    :param register: validates the class and adds it to the method registry; a name
        registered twice (by any plugins) is an error naming both distributions.
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register datasets: ``register(DatasetInfo(name, load, description))``.

    ``load(root, **kwargs)`` returns a :class:`~deepcore_core.data.DatasetSplits`.
    """


@hookspec
def register_samplers(register: Callable[[Any], None]) -> None:
    """Register sampling rules: ``register(SamplerClass)``, a
    :class:`~deepcore_core.samplers.Sampler` subclass with a ``name``; every score-based
    method can then use it (``--sampler NAME``).
    """


@hookspec
def register_schedules(register: Callable[[Any], None]) -> None:
    """Register pruning schedules: ``register(ScheduleClass)``, a
    :class:`~deepcore_core.schedules.Schedule` subclass with a ``name``, which decides every
    epoch which samples train (``--schedule NAME``).
    """


@hookspec
def register_encoders(register: Callable[[Any], None]) -> None:
    """Register encoders: ``register(EncoderClass)``, an
    :class:`~deepcore_core.encoders.Encoder` subclass with a ``name``, whose embeddings are
    the features of label-free selection (``--encoder NAME``).
    """


@hookspec
def register_networks(register: Callable[[Any], None]) -> None:
    """Register networks: ``register(NetworkInfo(name, build, description))``.

    ``build(channels, num_classes, image_size)`` returns a :class:`~deepcore_core.nets.Network`.
    """


@hookspec(firstresult=True)
def train(ctx: SelectionContext) -> Any:
    """Train the selection model on ``ctx.dataset`` and return it (it becomes ``ctx.model``).

    Called when the method needs a model or model outputs and none were given. An
    implementation may also fill ``ctx.dynamics`` with the training dynamics it recorded.
    Stops at the first non-None result; the core's training engine runs last.
    """


@hookspec(firstresult=True)
def embed(ctx: SelectionContext) -> Any:
    """Compute model outputs for every sample of ``ctx.dataset`` with ``ctx.model``.

    Return an object with ``features`` (N x D), ``probs`` (N x C) arrays, which fill
    ``ctx.features``/``ctx.probs`` where they are empty, and optionally ``logits`` (N x C),
    which fill ``ctx.logits`` along with the probabilities. Stops at the first non-None result;
    the core's embedding engine runs last.
    """


@hookspec(firstresult=True)
def score(selector: Selector, ctx: SelectionContext) -> np.ndarray | None:
    """Return one score per sample for ``selector``, or None when it does not score.

    Stops at the first non-None result. The core's fallback returns the user's scores when
    given, else ``selector.compute_scores(ctx)`` for a :class:`~deepcore_core.ScoreSelector`.
    """


@hookspec(firstresult=True)
def select(selector: Selector, ctx: SelectionContext) -> Selection | None:
    """Return the :class:`~deepcore_core.Selection` of ``ctx.total`` samples for ``selector``.

    Stops at the first non-None result. The core's fallback splits the budget into pools
    (per class when ``ctx.balance``) and calls ``selector.pick`` on each.
    """


# -- the command line --------------------------------------------------------------------


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``deepcore`` command line: ``cli`` is its ``typer.Typer`` app.

    Called once when the CLI is built; use ``@cli.command()`` (typer's API, not click's).
    """


# -- observers: called for every implementation, results ignored --------------------------


@hookspec
def on_train_epoch_end(run: Mapping[str, Any], epoch: int, metrics: Mapping[str, float]) -> None:
    """After every training epoch, of the selection model and of every coreset model.

    :param run: what is being trained: ``kind`` (``"selection-model"`` or ``"coreset"``) and
        the run's key fields (method, fraction, seed, network, ...).
    :param epoch: the epoch just finished, from 1.
    :param metrics: ``train_loss``, ``lr``, and ``test_accuracy``/``test_loss`` on the epochs
        evaluated (every ``eval_every`` epochs and the last).
    """


@hookspec
def on_selection_end(selection: Selection) -> None:
    """After a selection is made (``deepcore select``, ``run``, or the Python API)."""


@hookspec
def on_run_end(record: Mapping[str, Any]) -> None:
    """After an experiment run (a coreset trained and evaluated) is finished and stored.

    :param record: the run's record as stored in ``results.jsonl``.
    """
