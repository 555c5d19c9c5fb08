"""The rows of Table 4 as configuration overrides of the multi-modal stage (section 4.4).

A row's name is its key: ``gliotype run --ablation NAME`` takes it, its network's folder is
named after it (:func:`gliotype.layout.row_slug`) and its ``Scored`` row carries it.
"""

from __future__ import annotations

from gliotype.errors import GliotypeError

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


def table4_rows(ablations: bool | list[str]) -> dict[str, dict]:
    """The Table 4 rows to train (name -> overrides of ``multimodal``), in Table 4 order: every row
    (True), the named rows (a list) or none (False); the full model always."""
    if ablations is True:
        return dict(ABLATIONS)
    names = list(ablations or [])
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise GliotypeError(f"unknown Table 4 row {unknown[0]!r}: choose from {', '.join(ABLATIONS)}")
    return {n: ABLATIONS[n] for n in ABLATIONS if n in names or n == FULL_MODEL}
