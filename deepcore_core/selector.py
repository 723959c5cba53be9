"""The :class:`Selector` base classes every selection method derives from."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from deepcore_core.context import SelectionContext
from deepcore_core.log import log
from deepcore_core.needs import Need
from deepcore_core.options import NoOptions, options_dict, parse_options
from deepcore_core.samplers import Ranking, Top


@dataclasses.dataclass(frozen=True)
class Pick:
    """What :meth:`Selector.pick` returns for one pool: chosen indices and optional weights."""

    indices: np.ndarray
    weights: np.ndarray | None = None


class Selector(abc.ABC):
    """Base class of a selection method.

    Subclasses set the class variables and implement :meth:`pick`. The core splits the budget
    over classes (balanced) or uses one global pool, and calls :meth:`pick` once per pool.
    The first line of the class docstring is the summary shown by ``list-methods``.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "other"
    needs: ClassVar[frozenset[Need]] = frozenset()
    Options: ClassVar[type] = NoOptions
    #: the pool a selection draws from unless the user says: per class (True, DeepCore's
    #: rule) or the whole dataset (False, as most later papers select)
    default_balance: ClassVar[bool] = True
    #: bumped when the method's rule changes what it selects, so a benchmark does not
    #: resume from results of the old rule (0 leaves run keys as they were)
    revision: ClassVar[int] = 0
    #: the rule set the options started from (``original``: the original code's rules)
    variant: str = "default"
    #: the plugin host that made this selector (None when constructed directly); a method
    #: that builds another method (d2 and its score) asks it
    host: Any = None

    @property
    def collective(self) -> bool:
        """Whether :meth:`pick` runs on every rank at once under torchrun (it then uses
        collectives itself, as GreeDi does); otherwise each pool is picked by one rank."""
        return False

    def __init__(self, options: Any = None, **values: Any) -> None:
        if options is not None and values:
            raise TypeError("give either an options object or keyword options, not both")
        if options is None or isinstance(options, dict):
            options = parse_options(self.Options, options or values, self.name)
        elif not isinstance(options, self.Options):
            raise TypeError(f"options must be {self.Options.__name__}, got {type(options)}")
        self.options = options

    @classmethod
    def summary(cls) -> str:
        """Return the first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0].strip() if doc else ""

    def required(self) -> frozenset[Need]:
        """What this instance needs: ``needs`` unless its options narrow it."""
        return self.needs

    def options_dict(self) -> dict[str, Any]:
        """Return the options as a plain dict (recorded in the selection's metadata)."""
        return options_dict(self.options)

    @abc.abstractmethod
    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Choose exactly ``k`` distinct indices from ``pool`` (dataset indices, ascending).

        :param ctx: the inputs (features, labels, scores, model, ...).
        :param pool: the candidate dataset indices: one class when balanced, else all.
        :param k: how many to choose, ``1 <= k <= len(pool)``.
        :param rng: a generator seeded for this run and this pool.
        """


class ScoreSelector(Selector):
    """A method that scores every sample; a sampler turns each pool's ranking into picks.

    Subclasses implement :meth:`compute_scores` and set ``descending`` (``True``: the high
    end of the scores is the method's own end, the front of the ranking). The sampler is
    the run's (``--sampler``), else ``default_sampler``; ``top`` keeps the front. Ties are
    broken by a random permutation drawn from the pool's seeded generator: deterministic for
    a seed, with no bias towards the dataset's order. Scores given by the user (``--scores``)
    take the place of computed ones.
    """

    descending: ClassVar[bool] = True
    default_sampler: ClassVar[str] = "top"

    def front_is_high(self, ctx: SelectionContext) -> bool:
        """Whether the front of the ranking is the high end (``descending`` unless options
        turn the ranking around)."""
        return self.descending

    def sampler_extras(self, ctx: SelectionContext, pool: np.ndarray) -> dict[str, np.ndarray]:
        """Pool-aligned arrays offered to samplers (see :class:`deepcore_core.samplers.Ranking`)."""
        return {}

    @abc.abstractmethod
    def compute_scores(self, ctx: SelectionContext) -> np.ndarray:
        """Return one finite score per sample of the dataset (length N)."""

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """Let the sampler choose ``k`` of ``pool`` from its ranking (``top``: the front)."""
        if ctx.scores is None:
            raise RuntimeError(f"method '{self.name}' was asked to pick before it was scored")
        values = np.asarray(ctx.scores[pool], dtype=np.float64)
        if 0 < k < pool.size and values.max() == values.min():
            log.warning(
                "method '%s': all %d scores of a pool are equal (%g), so its %d picks are the "
                "seeded tie-break, a random choice (an untrained model, or scores too coarse?)",
                self.name, pool.size, values[0], k,
            )  # fmt: skip
        ranking = Ranking(
            values,
            self.front_is_high(ctx),
            self.sampler_extras(ctx, pool),
        )
        positions = (ctx.sampler or Top()).sample(ranking, k, rng)
        return Pick(pool[np.asarray(positions, dtype=np.int64)])


class GreediSelector(Selector):
    """A greedy method that can also run as GreeDi, the two-round distributed greedy.

    Subclasses implement :meth:`greedy` (the method's picks from a candidate set) and
    :meth:`ground_value` (the objective GreeDi compares candidate sets by); their options
    have ``distributed`` (``exact``: the greedy over the whole pool; ``greedi``: two rounds,
    under torchrun each process solving its parts) and ``parts`` (None: one per process,
    at least 2). See :func:`deepcore_core.greedi`.
    """

    @abc.abstractmethod
    def greedy(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The greedy's ``k`` picks of ``pool`` (dataset indices, in pick order)."""

    @abc.abstractmethod
    def ground_value(self, ctx: SelectionContext) -> Callable[[np.ndarray, np.ndarray], float]:
        """``value(ground, chosen)``: the objective over a ground set (sorted dataset
        indices) of chosen ones, higher is better."""

    @property
    def collective(self) -> bool:
        """GreeDi under torchrun: every process solves its parts of each pool."""
        from deepcore_core import distributed

        return self.options.distributed == "greedi" and distributed.active()

    def pick(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> Pick:
        """The greedy over ``pool``, or GreeDi's two rounds of it."""
        if self.options.distributed == "exact":
            return Pick(self.greedy(ctx, pool, k, rng))
        from deepcore_core.submodular.greedi import greedi, parts_for, seeded_solver

        solve = seeded_solver(rng, lambda c, kk, r: self.greedy(ctx, c, kk, r))
        parts = parts_for(self.options.parts)
        return Pick(greedi(pool, k, parts, rng, solve, self.ground_value(ctx)))


def top_k(
    scores: np.ndarray,
    pool: np.ndarray,
    k: int,
    descending: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return the ``k`` indices of ``pool`` with the best scores, best first.

    Order is by score (descending or ascending); equal scores are ordered by a permutation
    drawn from ``rng`` (deterministic for its seed), or by index when ``rng`` is None.
    """
    s = scores[pool]
    key = -s if descending else s
    tie = pool if rng is None else rng.permutation(pool.size)
    order = np.lexsort((tie, key))
    return pool[order[:k]]
