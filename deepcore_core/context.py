"""The context object passed to every stage hook: inputs, settings and seeded randomness."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from deepcore_core.errors import DeepcoreError
from deepcore_core.gradients import GradEmbedding
from deepcore_core.needs import Need
from deepcore_core.rules import MAX_SEED, SEED, check_range, describe

__all__ = ["MAX_SEED", "SelectionContext", "check_seed"]


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or a one-line error naming the allowed range."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise DeepcoreError(f"seed must be an integer {describe(SEED)}, got {seed!r}")
    check_range("seed", int(seed), SEED)
    return int(seed)


@dataclasses.dataclass
class SelectionContext:
    """Everything a stage hook may read or fill in for one selection.

    Fields are only ever added, never removed, so hookimpls keep working across releases.

    :ivar n: number of samples in the dataset.
    :ivar labels: int64 labels (N,), or None.
    :ivar features: float32 features (N x D): given, or penultimate features from ``embed``.
    :ivar probs: float32 class probabilities (N x C): given (or from logits), or from ``embed``.
    :ivar scores: float64 per-sample scores: given by the user, then the ``score`` stage's.
    :ivar seed: the run's seed; use :meth:`rng` for every random choice.
    :ivar balance: per-class (True) or global (False) selection; None until the core
        puts the method's own default there (``Selector.default_balance``).
    :ivar total: the coreset size.
    :ivar device: torch device string for work on tensors.
    :ivar selector: the :class:`~deepcore_core.Selector` being run.
    :ivar dataset: the training dataset, when selecting from data rather than arrays.
    :ivar model: the trained selection model, when there is one.
    :ivar dynamics: per-sample training dynamics recorded during pretraining, if any.
    :ivar pretrain: how to train the selection model (a ``PretrainSpec``), with a dataset;
        None when the model is the user's own (then nothing is trained).
    :ivar networks: the network registry the selection model is built from.
    :ivar cache_folder: where the ``train`` stage cached the model (``embed`` caches beside it).
    :ivar hook: the plugin host's hook relay, for a method that runs stages itself
        (see :meth:`outputs_for_seed`).
    :ivar sampler: the :class:`~deepcore_core.samplers.Sampler` a score-based method picks
        with (set by the core from ``--sampler`` or the method's default).
    :ivar extras: free space for plugins (caches, intermediate results); the core reads only
        ``extras["meta"]``, a mapping it adds to the selection's record, and keeps the
        encoder's description under ``extras["encoder"]``.
    :ivar logits: the model's raw outputs (N x C) where known: given logits, or ``embed``'s when
        the probabilities come from it too; None when only probabilities were given.
    :ivar costs: what each stage cost, by stage name (a :class:`~deepcore_core.cost.StageCost`
        per ``selection_model``, ``embedding``, ``scoring``, ``picking``), filled by the core.
    :ivar encoder: the :class:`~deepcore_core.encoders.Encoder` whose embeddings are the
        features of methods that need no model outputs; None: the selection model's.
    :ivar embeddings: the encoder's embeddings (N x D, memory-mapped from the store).
    :ivar no_labels: the labels are hidden from the selection (``--no-labels``).
    :ivar clusters: balance over this many k-means clusters of the features (``--clusters``).
    :ivar pools: the group of every sample the budget is balanced over when it is not the
        class (the clusters), filled by the core.
    :ivar dedup: SemDeDup's eps when near-duplicates are dropped first (``--dedup``).
    :ivar candidates: the samples a method may pick (ascending; None: all), filled by the core.
    :ivar embedding_dtype: how the embedding store keeps embeddings (float32 or float16).
    :ivar cache_dir: the cache folder (None: the default) for encoders and embeddings.
    """

    n: int
    labels: np.ndarray | None = None
    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    scores: np.ndarray | None = None
    seed: int = 0
    balance: bool | None = None
    total: int = 0
    device: str = "cpu"
    selector: Any = None
    dataset: Any = None
    model: Any = None
    dynamics: Any = None
    pretrain: Any = None
    networks: Any = None
    cache_folder: Path | None = None
    hook: Any = None
    sampler: Any = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    logits: np.ndarray | None = None
    costs: dict[str, Any] = dataclasses.field(default_factory=dict)
    encoder: Any = None
    embeddings: np.ndarray | None = None
    no_labels: bool = False
    clusters: int | None = None
    pools: np.ndarray | None = None
    dedup: float | None = None
    candidates: np.ndarray | None = None
    embedding_dtype: str = "float32"
    cache_dir: Path | None = None
    _grad: GradEmbedding | None = dataclasses.field(default=None, init=False, repr=False)
    _scratch: Any = dataclasses.field(default=None, init=False, repr=False)

    def rng(self, *stream: str | int) -> np.random.Generator:
        """Return a generator seeded by the run's seed and a stream name (e.g. a class label).

        Different streams give independent generators, so per-class draws never share a seed.
        """
        key = [zlib.crc32(str(s).encode()) for s in stream]
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def has(self, need: Need) -> bool:
        """Whether the input for ``need`` is present now."""
        present = {
            Need.LABELS: self.labels is not None,
            Need.FEATURES: self.features is not None,
            Need.PROBABILITIES: self.probs is not None,
            Need.MODEL: self.model is not None,
            Need.DYNAMICS: self.dynamics is not None,
            Need.SCORES: self.scores is not None,
            Need.DATASET: self.dataset is not None and self.pretrain is not None,
        }
        if need is Need.GRADIENTS:
            return all(present[x] for x in (Need.LABELS, Need.FEATURES, Need.PROBABILITIES))
        return present[need]

    def grad_embedding(self) -> GradEmbedding:
        """Return the closed-form last-layer gradient embedding (needs labels, features, probs)."""
        if self._grad is None:
            if self.probs is None or self.labels is None or self.features is None:
                raise DeepcoreError("gradients need labels, features and probabilities")
            check = getattr(self.model, "check_last_layer", None)
            if check is not None:  # a user's model: are its logits the layer's affine map?
                check()
            self._grad = GradEmbedding.from_outputs(self.probs, self.labels, self.features)
        return self._grad

    def scratch_matrix(self, rows: int, cols: int, device: Any) -> Any:
        """A ``rows x cols`` float32 tensor on ``device`` whose memory every call of this
        selection reuses (a larger call replaces it), for the kernel of one pool at a time:
        filling the fresh pages of a large matrix costs about as much as computing it. The
        contents are whatever the last call left, and a call overwrites what an earlier one
        returned: use it only for a matrix dropped before the next pool's is made.
        """
        import torch

        need = rows * cols
        buf = self._scratch
        if buf is None or buf.numel() < need or buf.device != torch.device(device):
            self._scratch = buf = None  # free the smaller one first
            self._scratch = buf = torch.empty(need, dtype=torch.float32, device=device)
        return buf[:need].view(rows, cols)

    def outputs_for_seed(
        self, seed: int, epochs: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features and probabilities of another selection model, trained with ``seed``.

        Runs the ``train`` and ``embed`` stages (so plugins that take them over, and the
        core's cache, apply) on a copy of this context; ``epochs`` overrides the selection
        model's epochs. For methods that average over independently trained models.
        """
        if self.hook is None or self.dataset is None or self.pretrain is None:
            raise DeepcoreError("training more selection models needs a dataset and no model")
        pretrain = self.pretrain
        if epochs is not None:
            pretrain = dataclasses.replace(pretrain, epochs=epochs)
        sub = dataclasses.replace(
            self,
            seed=seed,
            pretrain=pretrain,
            model=None,
            features=None,
            probs=None,
            logits=None,
            dynamics=None,
            scores=None,
            cache_folder=None,
        )
        sub.model = self.hook.train(ctx=sub)
        out = self.hook.embed(ctx=sub)
        if out is None:
            raise DeepcoreError(f"no plugin computed the model outputs for seed {seed}")
        return np.asarray(out.features), np.asarray(out.probs)
