"""Contrastive losses of the paper: eq. 1 (edge model) and eqs. 4-7 (bi-level L_multi)."""

from gliotype.losses.contrastive import bilevel_contrastive_loss, cross_modal_contrastive

__all__ = ["bilevel_contrastive_loss", "cross_modal_contrastive"]
