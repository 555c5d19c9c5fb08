"""GNNExplainer on the brain-network branch (paper section 4.5; Fig. 8; section 5.4).

"To interpret the learning process of the brain network encoder, we employ the
GNNExplainer to output a probability score that infers the importance of the edges in
the brain network. We retain those edges with probability scores greater than 50%."
Section 5.4 compares the density of these important edges between IDH groups
(wild-type: denser).

The explained function is one patient's IDH-mutant logit of the multi-modal network as
a function of the brain network ``(x, edge_index, edge_attr)``: f_B with the patient's
hierarchical attention held fixed (the tract weights a^E of eq. 2 from the point
attention, and g_T(<u_I, u_P>) of eq. 3), followed by the BCE head on <u_T, u_B> with
u_T fixed. PyG's :class:`~torch_geometric.explain.Explainer` with
:class:`~torch_geometric.explain.algorithm.GNNExplainer` learns one mask value per
tract (``edge_mask_type="object"``, ``explanation_type="model"``: the model's own
predicted class, raw logit, binary classification, graph level). f_B passes every tract
in both directions to its GATConv layers, so the mask of a tract multiplies the
messages of both directions (one tied value; self-loops added by GATConv are not
masked). The probabilities are the sigmoid of the learned mask; the mask is initialised
at random, so results are reproducible only under a fixed ``seed``.
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu
from torch import nn
from torch_geometric.nn import MessagePassing

from gliotype.interpretation._common import as_batch, eval_mode, require_classifier, seeded
from gliotype.multimodal.model import MultiModalBatch, MultiModalNet

#: GNNExplainer defaults used here (PyG defaults but 200 epochs, as PyG's examples).
DEFAULT_EPOCHS = 200
DEFAULT_LR = 0.01


class BrainNetworkScore(nn.Module):
    """``(x, edge_index, edge_attr) -> (1,)`` IDH-mutant logit of one patient, tumor side fixed.

    Holds copies of f_B and of the BCE head (frozen), the patient's u_T, tract
    attention a^E (eq. 2) and g_T(u_T) (eq. 3), all computed once in eval mode exactly
    as :meth:`MultiModalNet.forward` does.
    """

    def __init__(self, model: MultiModalNet, batch: MultiModalBatch):
        super().__init__()
        require_classifier(model)
        if model.brain_network is None:
            raise ValueError("the model has no brain-network encoder (multimodal.encoders lacks 'brain_network')")
        if batch.size != 1:
            raise ValueError(f"explain one patient at a time (got a batch of {batch.size})")
        with torch.no_grad(), eval_mode(model):
            out = model(batch)
            u_t = out.features.get("u_T")
            tumor_latent = None
            if model.config.use_attention and u_t is not None:
                head = model.g_tumor_attention or model.g_tumor
                tumor_latent = head(u_t)
        self.encoder = copy.deepcopy(model.brain_network).eval()
        self.classifier = copy.deepcopy(model.classifier).eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self.u_t = u_t
        self.edge_weight = out.edge_attention
        self.tumor_latent = tumor_latent
        self.reference_logit = out.logit.detach()
        self.batch = batch  # the patient whose edges are explained

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        bn = self.encoder(x, edge_index, edge_attr, None, self.edge_weight, self.tumor_latent)
        parts = [bn.features] if self.u_t is None else [self.u_t, bn.features]
        return self.classifier(torch.cat(parts, dim=1)).view(-1)


def _tied_explain_message(self, inputs, dim_size):  # no annotations: PyG's inspector evaluates them
    """``MessagePassing.explain_message`` for layers that see every edge in both directions.

    The mask has one value per undirected edge; messages are ordered ``[edges, reversed
    edges, (self-loops)]`` (as built by :meth:`BrainNetworkEncoder.embed` and GATConv).
    """
    mask = self._edge_mask
    if mask is None:
        raise ValueError("no edge mask to explain")
    if self._apply_sigmoid:
        mask = mask.sigmoid()
    mask = mask[self._loop_mask]
    n, k = inputs.size(self.node_dim), mask.numel()
    if n == 2 * k:
        full = torch.cat([mask, mask])
    elif dim_size is not None and n == 2 * k + dim_size:
        full = torch.cat([mask, mask, mask.new_ones(dim_size)])
    else:
        raise ValueError(f"{n} messages for {k} masked edges: the layer does not see each edge in both directions")
    size = [1] * inputs.dim()
    size[self.node_dim] = -1
    return inputs * full.view(size)


_tied_explain_message.__name__ = "explain_message"  # PyG's inspector looks methods up by name


@contextlib.contextmanager
def tied_directions(module: nn.Module) -> Iterator[None]:
    """Within the block, edge masks of every MessagePassing layer of ``module`` apply to both directions."""
    layers = [m for m in module.modules() if isinstance(m, MessagePassing)]
    for m in layers:
        m.explain_message = types.MethodType(_tied_explain_message, m)
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop("explain_message", None)


def explain_graph_edges(
    module: nn.Module,
    x: torch.Tensor,
    edge_index: torch.Tensor,
    *,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    seed: int = 0,
    both_directions: bool = False,
    node_mask_type: str | None = None,
    coeffs: Mapping[str, float] | None = None,
    **kwargs,
) -> np.ndarray:
    """GNNExplainer edge probabilities ``(E,)`` of a graph-level binary classifier.

    ``module(x, edge_index, **kwargs)`` must return the raw logit of one graph. With
    ``both_directions`` the module's MessagePassing layers see every edge of
    ``edge_index`` and its reverse (one tied mask value per edge). Deterministic under
    ``seed`` (the caller's random stream is left untouched).
    """
    from torch_geometric.explain import Explainer, GNNExplainer

    explainer = Explainer(
        model=module,
        algorithm=GNNExplainer(epochs=int(epochs), lr=float(lr), **dict(coeffs or {})),
        explanation_type="model",
        edge_mask_type="object",
        node_mask_type=node_mask_type,
        model_config=dict(mode="binary_classification", task_level="graph", return_type="raw"),
    )
    tie = tied_directions(module) if both_directions else contextlib.nullcontext()
    with seeded(seed), tie, torch.enable_grad():
        explanation = explainer(x.float(), edge_index.long(), **kwargs)
    return explanation.edge_mask.detach().cpu().numpy().astype(np.float32)


def _brain_batch(data) -> MultiModalBatch:
    if isinstance(data, (MultiModalBatch, Mapping)):
        return as_batch(data)
    if hasattr(data, "edge_index") and hasattr(data, "x"):  # a PyG Data (brain-network-only model)
        return as_batch({"node_x": data.x, "edge_index": data.edge_index, "edge_attr": data.edge_attr,
                         "patient_id": getattr(data, "patient_id", "case")})
    raise TypeError(f"expected a MultiModalBatch, a case dict or a PyG Data, got {type(data).__name__}")


def explain_edges(
    model: MultiModalNet,
    data: MultiModalBatch | Mapping,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    lr: float = DEFAULT_LR,
    coeffs: Mapping[str, float] | None = None,
    runs: int = 1,
) -> np.ndarray:
    """Importance probability of every tract of one patient's brain network: ``(T,)`` in [0, 1].

    Args:
        model: a trained :class:`MultiModalNet` with the brain-network encoder and BCE head.
        data: one patient as a :class:`MultiModalBatch` or item dict with every modality
            the model uses (a PyG ``Data`` is enough for a brain-network-only model).
        epochs, lr, coeffs: GNNExplainer's optimisation (``coeffs`` overrides
            ``GNNExplainer.default_coeffs``: ``edge_size``, ``edge_ent``...).
        seed: seeds the random mask initialisation.
        runs: average the probabilities of ``runs`` explanations (seeds ``seed``,
            ``seed + 1``...), to damp GNNExplainer's dependence on the initialisation.

    Row ``t`` is tract ``edge_index[:, t]``. The model is not modified.
    """
    return explain_score(brain_network_score(model, data), epochs, seed, lr, coeffs, runs)


def brain_network_score(model: MultiModalNet, data: MultiModalBatch | Mapping) -> BrainNetworkScore:
    """The first half of :func:`explain_edges`: the only step that runs ``model`` itself (once);
    :func:`explain_score` then works on copies of its parts, so it may run in another thread
    while ``model`` is used (e.g. hooked for Grad-CAM)."""
    batch = _brain_batch(data)
    if batch.node_x is None:
        raise ValueError("the batch has no brain network")
    return BrainNetworkScore(model, batch)


def explain_score(score: BrainNetworkScore, epochs: int = DEFAULT_EPOCHS, seed: int = 0, lr: float = DEFAULT_LR,
                  coeffs: Mapping[str, float] | None = None, runs: int = 1) -> np.ndarray:
    """The second half of :func:`explain_edges` (same arguments) on a :func:`brain_network_score`."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    batch = score.batch
    probs = [explain_graph_edges(score, batch.node_x, batch.edge_index, epochs=epochs, lr=lr, seed=seed + r,
                                 both_directions=True, coeffs=coeffs, edge_attr=batch.edge_attr.float())
             for r in range(int(runs))]
    return np.mean(probs, axis=0).astype(np.float32)


def important_edges(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Indices of the edges kept as important: probability strictly above ``threshold`` (section 4.5)."""
    return np.flatnonzero(np.asarray(probs, dtype=np.float64) > threshold)


def edge_density(probs: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of the network's edges that are important (section 5.4, Fig. 8)."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    return float(np.mean(probs > threshold)) if probs.size else float("nan")


@dataclass
class CohortEdgeSummary:
    """Density of important edges per patient and its comparison between IDH groups.

    Attributes:
        patients: ``patient_id, idh, n_edges, n_important, density`` (one row per patient).
        groups: ``idh, group, n, mean_density, sd_density, median_density`` (0 wild-type, 1 mutant).
        u_statistic, p_value: two-sided Mann-Whitney U test of density, wild-type vs
            mutant (NaN when a group is empty).
    """

    patients: pd.DataFrame
    groups: pd.DataFrame
    u_statistic: float
    p_value: float


def cohort_edge_summary(
    per_patient_probs: Mapping[str, np.ndarray],
    labels: Mapping[str, float],
    threshold: float = 0.5,
) -> CohortEdgeSummary:
    """Density of important edges of every patient and the wild-type vs mutant comparison (section 5.4).

    ``labels`` maps patient ids to IDH (1 mutant, 0 wild-type; missing or NaN: unlabelled,
    listed but left out of the comparison).
    """
    rows = []
    for pid, probs in per_patient_probs.items():
        probs = np.asarray(probs, dtype=np.float64).ravel()
        label = labels.get(str(pid), labels.get(pid, np.nan)) if labels else np.nan
        label = float(label) if label is not None else np.nan
        n_imp = int(np.sum(probs > threshold))
        rows.append({"patient_id": str(pid), "idh": label, "n_edges": int(probs.size), "n_important": n_imp,
                     "density": n_imp / probs.size if probs.size else np.nan})
    patients = pd.DataFrame(rows, columns=["patient_id", "idh", "n_edges", "n_important", "density"])
    groups = []
    for value, name in ((0.0, "wild-type"), (1.0, "mutant")):
        d = patients.loc[patients["idh"] == value, "density"].dropna().to_numpy()
        groups.append({"idh": int(value), "group": name, "n": int(d.size),
                       "mean_density": float(d.mean()) if d.size else np.nan,
                       "sd_density": float(d.std(ddof=1)) if d.size > 1 else np.nan,
                       "median_density": float(np.median(d)) if d.size else np.nan})
    wt = patients.loc[patients["idh"] == 0.0, "density"].dropna().to_numpy()
    mut = patients.loc[patients["idh"] == 1.0, "density"].dropna().to_numpy()
    u = p = float("nan")
    if wt.size and mut.size:
        res = mannwhitneyu(wt, mut, alternative="two-sided")
        u, p = float(res.statistic), float(res.pvalue)
    return CohortEdgeSummary(patients, pd.DataFrame(groups), u, p)
