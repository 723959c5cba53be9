"""deepcore: coreset selection for deep learning.

The public API for users and plugin authors; anything not listed in ``__all__`` is private.
"""

from deepcore_core._version import __version__
from deepcore_core.api import select
from deepcore_core.budget import allocate, plan_pools, total_budget
from deepcore_core.context import SelectionContext
from deepcore_core.errors import DeepcoreError, MissingInputError, OptionError, PluginError
from deepcore_core.gradients import GradEmbedding, softmax
from deepcore_core.hookspecs import hookimpl
from deepcore_core.plugins import PluginHost, get_host
from deepcore_core.selection import Selection, dataset_fingerprint
from deepcore_core.selector import Need, Pick, ScoreSelector, Selector, top_k

__all__ = [
    "DeepcoreError",
    "GradEmbedding",
    "MissingInputError",
    "Need",
    "OptionError",
    "Pick",
    "PluginError",
    "PluginHost",
    "ScoreSelector",
    "Selection",
    "SelectionContext",
    "Selector",
    "__version__",
    "allocate",
    "dataset_fingerprint",
    "get_host",
    "hookimpl",
    "plan_pools",
    "select",
    "softmax",
    "top_k",
    "total_budget",
]
