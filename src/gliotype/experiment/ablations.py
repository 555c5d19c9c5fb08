"""The rows of Table 4 as configuration overrides of the multi-modal stage (section 4.4)."""

from __future__ import annotations

# name in the paper -> overrides of the `multimodal` section
ABLATIONS: dict[str, dict] = {
    "fI + MLP": {"encoders": ["image"], "use_contrastive": False},
    "fP + MLP": {"encoders": ["point_cloud"], "use_contrastive": False},
    "fB + MLP": {"encoders": ["brain_network"], "use_contrastive": False},
    "fI + fP + MLP": {"encoders": ["image", "point_cloud"], "use_contrastive": False},
    "fB + fP + MLP": {"encoders": ["point_cloud", "brain_network"], "use_contrastive": False},
    "fI + fB + MLP": {"encoders": ["image", "brain_network"], "use_contrastive": False},
    "fI + fP + MLP + Lcontr": {"encoders": ["image", "point_cloud"], "use_contrastive": True},
    "fB + fP + MLP + Lcontr": {"encoders": ["point_cloud", "brain_network"], "use_contrastive": True},
    "fI + fB + MLP + Lcontr": {"encoders": ["image", "brain_network"], "use_contrastive": True},
    "Multi-modal (no attention) + MLP": {"use_attention": False},
    "Multi-modal (no Lmulti) + MLP": {"use_contrastive": False},
    "Multi-modal (full model) + MLP": {},
}
FULL_MODEL = "Multi-modal (full model) + MLP"
