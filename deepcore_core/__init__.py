"""deepcore: coreset selection for deep learning.

The public API for users and plugin authors; anything not listed in ``__all__`` is private.
Names backed by torch or scipy (``knn``, ``blockwise_topk``, the submodular functions and
kernels, ``PretrainSpec``, ``TrainConfig``) load on first use, so importing ``deepcore_core``
(and a plugin that imports from it) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepcore_core import distributed
from deepcore_core._version import __version__
from deepcore_core.api import embed, scores, select, train
from deepcore_core.blocks import map_rows
from deepcore_core.budget import allocate, plan_pools, total_budget
from deepcore_core.context import SelectionContext
from deepcore_core.dynamics import Dynamics, RunningDynamics, RunningSpec
from deepcore_core.errors import DeepcoreError, MissingInputError, OptionError, PluginError
from deepcore_core.gradients import GradEmbedding, loader_batch_scale, softmax
from deepcore_core.hookspecs import hookimpl
from deepcore_core.options import LossBatchOptions, NoOptions, original_rule
from deepcore_core.plugins import PluginHost, get_host
from deepcore_core.selection import Selection, dataset_fingerprint, load_indices
from deepcore_core.selector import GreediSelector, Need, Pick, ScoreSelector, Selector, top_k
from deepcore_core.workflow import DataOptions

if TYPE_CHECKING:
    from deepcore_core.clustering import Clustering, kmeans
    from deepcore_core.dedup import Deduplicator, semdedup
    from deepcore_core.encoders import Encoder
    from deepcore_core.engine.config import PretrainSpec, TrainConfig
    from deepcore_core.engine.devices import serial_blas
    from deepcore_core.engine.pretrain import pretrain_on_labels, proxy_accuracy
    from deepcore_core.neighbors import blockwise_topk, knn
    from deepcore_core.progress import Progress
    from deepcore_core.submodular import (
        CosineBlocks,
        FacilityLocation,
        GraphCut,
        LogDeterminant,
        maximize,
    )
    from deepcore_core.submodular.greedi import greedi

_LAZY = {
    "knn": "deepcore_core.neighbors",
    "blockwise_topk": "deepcore_core.neighbors",
    "CosineBlocks": "deepcore_core.submodular",
    "FacilityLocation": "deepcore_core.submodular",
    "GraphCut": "deepcore_core.submodular",
    "LogDeterminant": "deepcore_core.submodular",
    "maximize": "deepcore_core.submodular",
    "greedi": "deepcore_core.submodular.greedi",
    "PretrainSpec": "deepcore_core.engine.config",
    "TrainConfig": "deepcore_core.engine.config",
    "Progress": "deepcore_core.progress",
    "serial_blas": "deepcore_core.engine.devices",
    "Deduplicator": "deepcore_core.dedup",
    "semdedup": "deepcore_core.dedup",
    "Encoder": "deepcore_core.encoders",
    "pretrain_on_labels": "deepcore_core.engine.pretrain",
    "proxy_accuracy": "deepcore_core.engine.pretrain",
    "Clustering": "deepcore_core.clustering",
    "kmeans": "deepcore_core.clustering",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepcore_core' has no attribute {name!r}")


__all__ = [
    "Clustering",
    "CosineBlocks",
    "DataOptions",
    "Deduplicator",
    "DeepcoreError",
    "Dynamics",
    "Encoder",
    "FacilityLocation",
    "GradEmbedding",
    "GraphCut",
    "GreediSelector",
    "LogDeterminant",
    "LossBatchOptions",
    "MissingInputError",
    "Need",
    "NoOptions",
    "OptionError",
    "Pick",
    "PluginError",
    "PluginHost",
    "PretrainSpec",
    "Progress",
    "RunningDynamics",
    "RunningSpec",
    "ScoreSelector",
    "Selection",
    "SelectionContext",
    "Selector",
    "TrainConfig",
    "__version__",
    "allocate",
    "blockwise_topk",
    "dataset_fingerprint",
    "distributed",
    "embed",
    "get_host",
    "greedi",
    "hookimpl",
    "kmeans",
    "knn",
    "load_indices",
    "loader_batch_scale",
    "map_rows",
    "maximize",
    "original_rule",
    "plan_pools",
    "pretrain_on_labels",
    "proxy_accuracy",
    "scores",
    "select",
    "semdedup",
    "serial_blas",
    "softmax",
    "top_k",
    "total_budget",
    "train",
]
