"""Multi-modal contrastive learning (paper section 3.3, Algorithm 1)."""

from gliotype.multimodal.model import MultiModalBatch, MultiModalNet, MultiModalOutput, multimodal_loss

__all__ = ["MultiModalBatch", "MultiModalNet", "MultiModalOutput", "multimodal_loss"]
