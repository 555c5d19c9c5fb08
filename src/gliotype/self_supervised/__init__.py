"""Self-supervised brain-network construction (paper section 3.2, eq. 1, section 4.3).

Modules: ``inputs`` each patient's atlas samples and tumour flags, ``models`` the node
autoencoder and the edge contrastive model, ``deviation`` their normative-deviation
inputs, ``batches`` the training rows and minibatches of both, ``train`` training them
(stage cache key, ``ssl/models.json``, ``ssl/report.json``) and loading them back
(:class:`SelfSupervisedModels`: the models, their key and atlas positions, loaded once),
``evidence`` what the trained codes carry, ``encode`` every patient's brain network
x_B (``brain_network.safetensors``, ``brain_network_status.csv``).
"""

from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.encode import encode_brain_networks, load_brain_network, load_brain_network_variants
from gliotype.self_supervised.evidence import edge_evidence, node_evidence, workdir_evidence
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder, impute_missing
from gliotype.self_supervised.train import SelfSupervisedModels, load_self_supervised, train_self_supervised

__all__ = [
    "EdgeContrastiveModel",
    "NodeAutoencoder",
    "NormativeDeviation",
    "SelfSupervisedModels",
    "edge_evidence",
    "encode_brain_networks",
    "impute_missing",
    "load_brain_network",
    "load_brain_network_variants",
    "load_self_supervised",
    "node_evidence",
    "train_self_supervised",
    "workdir_evidence",
]
