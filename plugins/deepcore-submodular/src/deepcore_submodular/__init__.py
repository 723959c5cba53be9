"""Submodular selection: graph cut, facility location and log-determinant."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepcore_core import (
    DeepcoreError,
    GreediSelector,
    Need,
    SelectionContext,
    hookimpl,
    original_rule,
)

if TYPE_CHECKING:
    import scipy.sparse as sp
    import torch

    from deepcore_core import FacilityLocation, GraphCut, LogDeterminant

# scipy, torch and the core's submodular machinery are imported where used, so that listing
# methods (which imports every plugin) does not wait for them.

_SUBMODLIB_NAMES = {
    "naive": "NaiveGreedy",
    "lazy": "LazyGreedy",
    "stochastic": "StochasticGreedy",
    "lazier-than-lazy": "LazierThanLazyGreedy",
}


@dataclasses.dataclass(frozen=True)
class SubmodularOptions:
    """Options shared by the submodular methods."""

    similarity: Literal["gradients", "features"] = "gradients"
    optimizer: Literal["naive", "lazy", "stochastic", "lazier-than-lazy"] = "lazy"
    epsilon: float = 0.01  #: stochastic greedy samples (n/k) ln(1/epsilon) candidates per pick
    backend: Literal["native", "submodlib"] = "native"
    dense_limit: int = 20000  #: pools larger than this use the sparse k-NN path
    knn: int = 50  #: neighbours per sample on the sparse path
    #: how the sparse path finds neighbours on a features kernel: exact, FAISS's exact
    #: index, FAISS HNSW (approximate), or auto (HNSW above 100,000 samples where installed)
    knn_backend: Literal["auto", "exact", "faiss", "faiss-hnsw"] = "auto"
    #: exact: the greedy over the whole pool; greedi: the two-round distributed greedy
    #: (under torchrun each process solves its parts)
    distributed: Literal["exact", "greedi"] = "exact"
    parts: int | None = None  #: GreeDi's parts (None: one per process, at least 2)

    def __post_init__(self) -> None:
        if self.parts is not None and self.parts < 1:
            raise ValueError(f"parts must be >= 1, got {self.parts}")
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon}")
        if self.dense_limit < 1 or self.knn < 1:
            raise ValueError("dense_limit and knn must be positive")


class _Submodular(GreediSelector):
    family = "submodular"
    needs = frozenset({Need.GRADIENTS})
    Options = SubmodularOptions
    sparse_ok = True

    def required(self) -> frozenset[Need]:
        """Features alone when ``similarity=features``; else the gradient embedding."""
        if self.options.similarity == "features":
            return frozenset({Need.FEATURES})
        return self.needs

    @abc.abstractmethod
    def objective(self, kernel: Any, k: int) -> Any:
        """The objective over ``kernel`` (dense array or sparse matrix)."""

    @abc.abstractmethod
    def submodlib_function(self, kernel: np.ndarray) -> Any:
        """The matching submodlib function over a dense kernel."""

    def kernel(
        self, ctx: SelectionContext, pool: np.ndarray, reuse: bool = False
    ) -> torch.Tensor | sp.csr_matrix:
        """Dense kernel (on the run's device) up to ``dense_limit``, else the k-NN graph;
        ``reuse``: a dense one in the selection's scratch matrix (the greedy's kernel, dropped
        before the next pool's; GreeDi's kept ground-set kernel is a matrix of its own)."""
        from deepcore_core import CosineBlocks

        blocks = CosineBlocks(ctx, pool, self.options.similarity)
        if pool.size <= self.options.dense_limit:
            return blocks.dense_tensor(reuse=reuse)
        if not self.sparse_ok or self.options.backend == "submodlib":
            what = "log-determinant" if not self.sparse_ok else "the submodlib backend"
            raise DeepcoreError(
                f"{self.name}: a pool of {pool.size} samples exceeds dense_limit="
                f"{self.options.dense_limit} and {what} needs a dense kernel "
                f"({pool.size**2 * 4 / 2**30:.1f} GiB); select per class or raise dense_limit"
            )
        return blocks.knn(self.options.knn, backend=self.options.knn_backend)

    def greedy(
        self, ctx: SelectionContext, pool: np.ndarray, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The greedy's ``k`` picks of ``pool`` (dataset indices, in pick order)."""
        kernel = self.kernel(ctx, pool, reuse=True)
        o = self.options
        if o.backend == "submodlib":
            fn = self.submodlib_function(kernel.cpu().numpy())
            result = fn.maximize(
                budget=k,
                optimizer=_SUBMODLIB_NAMES[o.optimizer],
                epsilon=o.epsilon,
                stopIfZeroGain=False,
                stopIfNegativeGain=False,
                verbose=False,
                show_progress=False,
            )
            order = np.array([i for i, _ in result], dtype=np.int64)
        else:
            from deepcore_core import maximize

            order = maximize(self.objective(kernel, k), k, o.optimizer, rng, o.epsilon)
        return pool[order]

    def ground_value(self, ctx: SelectionContext) -> Callable[[np.ndarray, np.ndarray], float]:
        """f over a ground set (sorted dataset indices) of chosen ones: the sum of their
        gains added in turn. GreeDi scores every candidate set on one ground set, so its
        kernel is built once."""
        kernels: dict[bytes, Any] = {}

        def value(ground: np.ndarray, chosen: np.ndarray) -> float:
            key = ground.tobytes()
            if key not in kernels:
                kernels.clear()  # one ground set at a time
                kernels[key] = self.kernel(ctx, ground)
            obj = self.objective(kernels[key], len(chosen))
            total = 0.0
            for e in np.searchsorted(ground, chosen):
                total += float(obj.gains(np.array([e]))[0])
                obj.add(int(e))
            return total

        return value


@dataclasses.dataclass(frozen=True)
class GraphCutOptions(SubmodularOptions):
    """Options of ``graph-cut``."""

    lam: float = 1.0  #: weight of the redundancy term (>= 0: below 0 it is not submodular)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")


class GraphCutSelector(_Submodular):
    """Graph cut: coverage of the pool minus lam times redundancy within the coreset.

    f(A) = sum_{i in V, j in A} s_ij - lam sum_{i, j in A} s_ij over the cosine kernel of
    gradient embeddings (or features); Iyer et al. 2021 (submodlib, arXiv 2110.01200). The
    DeepCore paper's best method at small fractions. Gains are updated in O(N) per pick.
    Needs the gradient embedding (features + probabilities + labels), or features only.
    """

    name = "graph-cut"
    Options = GraphCutOptions

    def objective(self, kernel: Any, k: int) -> GraphCut:
        """Graph cut over ``kernel``."""
        from deepcore_core import GraphCut

        return GraphCut(kernel, self.options.lam)

    def submodlib_function(self, kernel: np.ndarray) -> Any:
        """submodlib's GraphCutFunction over the same kernel."""
        from submodlib import GraphCutFunction

        return GraphCutFunction(
            n=kernel.shape[0],
            mode="dense",
            lambdaVal=self.options.lam,
            ggsijs=kernel,
            separate_rep=False,
        )


class FacilityLocationSelector(_Submodular):
    """Facility location: every sample is represented by its most similar coreset member.

    f(A) = sum_i max_{j in A} s_ij (Mirzasoleiman et al. 2020; Iyer et al. 2021). Lazy greedy
    with batched exact re-evaluation; pools above ``dense_limit`` use a k-NN graph (memory
    N x knn). Needs the gradient embedding, or features only.
    """

    name = "facility-location"

    def objective(self, kernel: Any, k: int) -> FacilityLocation:
        """Facility location over ``kernel``."""
        from deepcore_core import FacilityLocation

        return FacilityLocation(kernel)

    def submodlib_function(self, kernel: np.ndarray) -> Any:
        """submodlib's FacilityLocationFunction over the same kernel."""
        from submodlib import FacilityLocationFunction

        return FacilityLocationFunction(
            n=kernel.shape[0], mode="dense", sijs=kernel, separate_rep=False
        )


@dataclasses.dataclass(frozen=True)
class LogDetOptions(SubmodularOptions):
    """Options of ``log-determinant``."""

    reg: float = 1.0  #: added to the kernel's diagonal
    gain: Literal["volume", "explained"] = original_rule(
        "volume", "explained", "maximises the explained variance: picks redundant samples"
    )  #: volume: log det gain (diversity); explained: s^T (S_A + reg I)^-1 s

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reg <= 0:
            raise ValueError(f"reg must be > 0, got {self.reg}")
        if self.gain == "explained" and self.backend == "submodlib":
            raise ValueError("gain=explained has no submodlib counterpart: use backend=native")


class LogDeterminantSelector(_Submodular):
    """Log-determinant: the coreset whose kernel has the largest volume, log det(S_A + reg I).

    A true diversity gain: each pick has the largest Schur complement given the picks (the
    original DeepCore maximised the explained part instead, picking redundant samples).
    Incremental Cholesky, O(N k) per pick. Needs the gradient embedding, or features only.
    """

    name = "log-determinant"
    Options = LogDetOptions
    sparse_ok = False

    def objective(self, kernel: Any, k: int) -> LogDeterminant:
        """Log-determinant over ``kernel``."""
        from deepcore_core import LogDeterminant

        return LogDeterminant(kernel, self.options.reg, k, self.options.gain == "explained")

    def submodlib_function(self, kernel: np.ndarray) -> Any:
        """submodlib's LogDeterminantFunction over the same kernel."""
        from submodlib import LogDeterminantFunction

        return LogDeterminantFunction(
            n=kernel.shape[0], mode="dense", lambdaVal=self.options.reg, sijs=kernel
        )


METHODS = (GraphCutSelector, FacilityLocationSelector, LogDeterminantSelector)


@hookimpl
def register_selectors(register: Callable[[type], None]) -> None:
    """Register graph-cut, facility-location and log-determinant."""
    for cls in METHODS:
        register(cls)
