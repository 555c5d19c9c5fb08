"""Cross-modal contrastive losses (paper eq. 1 and eqs. 4-7).

The printed form of every loss is

    l_i = -log( exp(S(a_i, b_i) / tau) / sum_{j != i} exp(S(a_i, b_j) / tau) )

with S the cosine similarity: the positive pair is *not* in the denominator (a
"decoupled" contrastive loss). ``form="infonce"`` puts it back (standard InfoNCE /
CLIP). See docs/design.md, open point 1.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Form = Literal["printed", "infonce"]


def cross_modal_contrastive(
    anchors: torch.Tensor,
    others: torch.Tensor,
    temperature: float = 0.1,
    form: Form = "printed",
) -> torch.Tensor:
    """Per-item losses ``l_i`` of ``anchors[i]`` against ``others`` (eq. 1; eqs. 4, 5, 6).

    Shapes:
        anchors, others: ``(N, D)``; the positive of ``anchors[i]`` is ``others[i]``.
        returns: ``(N,)``.
    """
    if anchors.shape != others.shape or anchors.dim() != 2:
        raise ValueError(f"anchors {tuple(anchors.shape)} and others {tuple(others.shape)} must both be (N, D)")
    n = anchors.shape[0]
    if form == "printed" and n < 2:
        raise ValueError("the printed contrastive loss needs at least 2 items in a batch (its denominator sums over j != i)")
    if form not in ("printed", "infonce"):
        raise ValueError(f"form must be 'printed' or 'infonce', got {form!r}")
    logits = F.normalize(anchors, dim=1) @ F.normalize(others, dim=1).T / temperature
    positive = logits.diagonal()
    if form == "printed":
        logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=logits.device), float("-inf"))
    return torch.logsumexp(logits, dim=1) - positive


def bilevel_contrastive_loss(
    z_image: torch.Tensor,
    z_points: torch.Tensor,
    z_tumor: torch.Tensor,
    z_brain: torch.Tensor,
    temperature: float = 0.1,
    lam: float = 0.8,
    form: Form = "printed",
) -> torch.Tensor:
    """L_multi of eq. 7: ``mean_i( lam (l^P2I_i + l^I2P_i) / 2 + (1 - lam) l^B2T_i )``.

    Tumor level: image <-> point cloud (eqs. 4, 5); brain level: brain network ->
    focal tumor (eq. 6). All inputs are projected latents ``(N, D)`` of the same
    N patients.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    l_i2p = cross_modal_contrastive(z_image, z_points, temperature, form)
    l_p2i = cross_modal_contrastive(z_points, z_image, temperature, form)
    l_b2t = cross_modal_contrastive(z_brain, z_tumor, temperature, form)
    return (lam * (l_p2i + l_i2p) / 2 + (1 - lam) * l_b2t).mean()
