"""Self-supervised brain-network construction (paper section 3.2, eq. 1, section 4.3)."""

from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder
from gliotype.self_supervised.stage import (
    encode_brain_networks,
    load_brain_network,
    load_self_supervised,
    train_self_supervised,
)

__all__ = [
    "EdgeContrastiveModel",
    "NodeAutoencoder",
    "encode_brain_networks",
    "load_brain_network",
    "load_self_supervised",
    "train_self_supervised",
]
