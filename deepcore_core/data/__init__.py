"""Datasets: offline loaders for each dataset's real format, and in-memory sources."""

from deepcore_core.data.catalog import BUILTIN_DATASETS, DatasetInfo, DatasetRegistry
from deepcore_core.data.sources import DatasetSplits, FolderSource, TensorSource

__all__ = [
    "BUILTIN_DATASETS",
    "DatasetInfo",
    "DatasetRegistry",
    "DatasetSplits",
    "FolderSource",
    "TensorSource",
]
