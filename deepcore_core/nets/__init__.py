"""Networks with one interface: penultimate features and a final linear layer."""

from deepcore_core.nets.architectures import BUILTIN_NETWORKS
from deepcore_core.nets.base import Network, NetworkInfo, NetworkRegistry

__all__ = ["BUILTIN_NETWORKS", "Network", "NetworkInfo", "NetworkRegistry"]
