"""Shared submodular machinery: objectives, greedy maximisers and similarity kernels.

Used by the submodular methods (graph cut, facility location, log-determinant) and by
gradient-matching methods (Craig's facility location), so no plugin carries a copy.
"""

from deepcore_core.submodular.functions import FacilityLocation, GraphCut, LogDeterminant
from deepcore_core.submodular.kernels import CosineBlocks
from deepcore_core.submodular.optimizers import OPTIMIZERS, maximize

__all__ = [
    "OPTIMIZERS",
    "CosineBlocks",
    "FacilityLocation",
    "GraphCut",
    "LogDeterminant",
    "maximize",
]
