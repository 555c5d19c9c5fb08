"""Self-supervised brain-network construction (paper section 3.2, eq. 1, section 4.3)."""

from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.evidence import edge_evidence, node_evidence, workdir_evidence
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
    "NormativeDeviation",
    "edge_evidence",
    "encode_brain_networks",
    "load_brain_network",
    "load_self_supervised",
    "node_evidence",
    "train_self_supervised",
    "workdir_evidence",
]
