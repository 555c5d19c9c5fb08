"""What the self-supervised codes carry: the patient or the atlas (issue 12, point 3).

Used by the stage report (``ssl/report.json``) and by audits of a work folder
(:func:`workdir_evidence`). All statistics are fitted on the self-supervised training
patients and evaluated on the held-out FA patients (``ssl.val_fraction``).

- What the losses learned: :func:`reconstruction_error` of the node autoencoder against
  predicting the training mean, :func:`retrieval_accuracy` of eq. 1 (the matching FA
  tract of an MRI tract within a batch) against chance, and :func:`code_collapsed`.
- FA deviation of a tract: the mean, over the tract's tumour-free sampled positions, of
  ``(FA - mean) / sd`` with the mean and sd of the training patients at that position.
  It is what the edge model's FA branch sees of the patient, whatever ``ssl.inputs``.
- ``fa_probe_rho``: Spearman correlation, on held-out patients, between the FA deviation
  and a ridge probe of the edge code v_E (fitted on the training patients' rows);
  ``..._within_tract``: after removing each tract's mean over the held-out patients, so
  that tract identity cannot contribute; ``..._tract_specific``: after removing each
  patient's mean as well (double centring), so that only which tracts of a patient deviate
  counts, not the patient's overall level (site, brain-wide change);
  ``fa_pc1_rho_within_tract``: the within-tract figure with the codes' first principal
  component (absolute value; a PC has no sign).
- ``tract_identity_top1``: nearest tract centroid (training codes) of each held-out
  code, against chance ``1 / T``; ``tract_identity_share``: the share of the code
  variance that is between tracts (eta squared).
- ``patient_retrieval_top1``: within one tract, the held-out patient whose FA code is
  nearest (cosine of g, g') to a patient's MRI code, against chance ``1 / P``.
- ``node_region_share``: the share of the v_N variance that is between regions;
  ``node_tumor_patient_share`` / ``node_tumor_fraction``: of the patient part (what is
  left after the region means), the share in the nodes the tumour touches, and those
  nodes' share of all nodes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from gliotype.self_supervised.batches import edge_loader
from gliotype.self_supervised.deviation import NormativeDeviation
from gliotype.self_supervised.models import EdgeContrastiveModel, NodeAutoencoder


def identity_share(codes: np.ndarray) -> float:
    """``(P, K, D)`` codes of P patients at K rows: between-row sum of squares / total (eta squared)."""
    c = np.asarray(codes, dtype=np.float64)
    total = float(((c - c.mean(axis=(0, 1))) ** 2).sum())
    between = float(c.shape[0] * ((c.mean(axis=0) - c.mean(axis=(0, 1))) ** 2).sum())
    return between / total if total > 0 else float("nan")


def tumor_patient_share(codes: np.ndarray, touched: np.ndarray) -> float:
    """Share of the patient part of ``(P, K, D)`` codes (minus the row means) in the ``(P, K)`` touched rows."""
    c = np.asarray(codes, dtype=np.float64)
    resid = ((c - c.mean(axis=0, keepdims=True)) ** 2).sum(axis=2)
    total = float(resid.sum())
    return float(resid[np.asarray(touched, bool)].sum()) / total if total > 0 else float("nan")


@torch.no_grad()
def retrieval_accuracy(model: EdgeContrastiveModel, mri, fa, owner, tract, batch_size, batching,
                       seed) -> tuple[float, float]:
    """Top-1 accuracy of finding the matching FA tract for an MRI tract within a batch, and chance
    (NaN when no batch can be formed, e.g. one held-out patient with ``same_tract``)."""
    model.eval()
    loader = edge_loader(mri, fa, owner, tract, batch_size, batching, torch.Generator().manual_seed(seed),
                         strict=False)
    hits = total = 0
    sizes = []
    for x_mri, x_fa in loader:
        z, z_fa = model(x_mri, x_fa)
        sim = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z_fa, dim=1).T
        hits += int((sim.argmax(1) == torch.arange(len(z))).sum())
        total += len(z)
        sizes.append(len(z))
    if not total:
        return float("nan"), float("nan")
    return hits / total, float(np.mean([1 / s for s in sizes]))


@torch.no_grad()
def reconstruction_error(model: NodeAutoencoder, x: torch.Tensor) -> tuple[float, float]:
    """MSE of the reconstruction and the MSE of predicting the training mean (both standardised)."""
    model.eval()
    recon, target = model(x)
    return float(((recon - target) ** 2).mean()), float((target**2).mean())


@torch.no_grad()
def code_collapsed(model: EdgeContrastiveModel, rows: torch.Tensor) -> bool:
    """True when the MRI code is the same for every row (dead units: eq. 1's loss is stuck at log(B - 1))."""
    model.eval()
    return bool(model.encode(rows).std(0).max() < 1e-6)


def fa_deviation(train_fa: np.ndarray, fa: np.ndarray, train_tumor: np.ndarray | None = None,
                 tumor: np.ndarray | None = None) -> np.ndarray:
    """``(P, T)`` mean z-deviation of each tract's tumour-free FA positions (statistics of ``train_fa``).

    ``train_fa`` ``(P_train, T, n)``, ``fa`` ``(P, T, n)``; tumour flags of the same shapes
    or None. A tract the tumour covers entirely is NaN.
    """
    fa = np.asarray(fa, dtype=np.float64)
    masked = train_tumor is not None and tumor is not None
    norm = NormativeDeviation(fa.shape[1], fa.shape[2], 1, "mask" if masked else "keep")
    norm.fit(train_fa, train_tumor if masked else None, "mean_sd")
    z = (fa - norm.centre.double().numpy()) / norm.scale.double().numpy()
    if not masked:
        return z.mean(axis=2)
    healthy = ~np.asarray(tumor, dtype=bool)
    count = healthy.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (z * healthy).sum(axis=2) / count, np.nan)


def _within(values: np.ndarray) -> np.ndarray:
    """``(P, T)`` minus each tract's mean over patients."""
    return values - np.nanmean(values, axis=0, keepdims=True)


def _interaction(values: np.ndarray) -> np.ndarray:
    """``(P, T)`` minus each tract's and each patient's mean (double centring)."""
    w = _within(values)
    return w - np.nanmean(w, axis=1, keepdims=True)


def code_fa_evidence(train_codes: np.ndarray, train_dev: np.ndarray, codes: np.ndarray, dev: np.ndarray,
                     seed: int = 0) -> dict:
    """FA-deviation and tract-identity figures of held-out ``(P, T, D)`` codes with ``(P, T)`` FA deviations."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV

    from gliotype.evaluation.metrics import rank_correlation
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p_tr, t, d = train_codes.shape
    x_tr, y_tr = train_codes.reshape(-1, d), train_dev.reshape(-1)
    ok = np.isfinite(y_tr)
    probe = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x_tr[ok], y_tr[ok])
    pred = probe.predict(codes.reshape(-1, d)).reshape(codes.shape[:2])
    pca = make_pipeline(StandardScaler(), PCA(1, random_state=seed)).fit(x_tr)
    pc1 = pca.transform(codes.reshape(-1, d)).reshape(codes.shape[:2])

    scale = x_tr.std(axis=0) + 1e-12
    cz = train_codes.mean(axis=0) / scale  # (T, D) tract centroids
    hits = 0
    for xz in codes / scale:  # one patient at a time: (T, T) squared distances
        dist = (xz**2).sum(1)[:, None] - 2 * xz @ cz.T + (cz**2).sum(1)[None]
        hits += int((dist.argmin(1) == np.arange(t)).sum())
    return {
        "fa_probe_rho": rank_correlation(pred.ravel(), dev.ravel()),
        "fa_probe_rho_within_tract": rank_correlation(_within(pred).ravel(), _within(dev).ravel()),
        "fa_probe_rho_tract_specific": rank_correlation(_interaction(pred).ravel(), _interaction(dev).ravel()),
        "fa_pc1_rho_within_tract": abs(rank_correlation(_within(pc1).ravel(), _within(dev).ravel())),
        "tract_identity_top1": hits / float(codes.shape[0] * t),
        "tract_identity_chance": 1.0 / t,
        "tract_identity_share": identity_share(codes),
    }


@torch.no_grad()
def edge_evidence(edge_model, train: Mapping[str, dict], heldout: Mapping[str, dict], seed: int = 0) -> dict:
    """Edge-code evidence (see the module doc) from patients' atlas-sample dicts.

    Each dict holds ``tract`` ``(T, 4n)``, ``tract_fa`` ``(T, n)`` and optionally
    ``tract_tumor`` ``(T, n)``; ``heldout`` needs at least 2 patients.
    """
    edge_model.eval()

    def codes(inputs):
        return np.stack([edge_model.encode(edge_model.prepare_mri(_t(s["tract"]), _flags(s))).numpy()
                         for s in inputs.values()])

    has_tumor = all("tract_tumor" in s for s in (*train.values(), *heldout.values()))
    stack = lambda d, k: np.stack([s[k] for s in d.values()]) if has_tumor or k != "tract_tumor" else None  # noqa: E731
    train_fa = stack(train, "tract_fa")
    dev_tr = fa_deviation(train_fa, train_fa, stack(train, "tract_tumor"), stack(train, "tract_tumor"))
    dev = fa_deviation(train_fa, stack(heldout, "tract_fa"), stack(train, "tract_tumor"), stack(heldout, "tract_tumor"))
    out = code_fa_evidence(codes(train), dev_tr, codes(heldout), dev, seed)
    out.update(patient_retrieval(edge_model, heldout))
    out["fa_evidence_patients"] = len(heldout)
    out["fa_deviation_tumor_masked"] = bool(has_tumor)
    return out


@torch.no_grad()
def patient_retrieval(edge_model, inputs: Mapping[str, dict]) -> dict:
    """Top-1 of finding, within each tract, the patient's own FA code among all ``inputs`` patients."""
    z, z_fa = [], []
    for s in inputs.values():
        a, b = edge_model(edge_model.prepare_mri(_t(s["tract"]), _flags(s)),
                          edge_model.prepare_fa(_t(s["tract_fa"]), _flags(s)))
        z.append(torch.nn.functional.normalize(a, dim=1))
        z_fa.append(torch.nn.functional.normalize(b, dim=1))
    za, zb = torch.stack(z, 1), torch.stack(z_fa, 1)  # (T, P, D)
    sim = za @ zb.transpose(1, 2)  # (T, P, P)
    hits = (sim.argmax(-1) == torch.arange(za.shape[1])).float().mean()
    return {"patient_retrieval_top1": float(hits), "patient_retrieval_chance": 1.0 / za.shape[1]}


@torch.no_grad()
def node_evidence(node_model, inputs: Mapping[str, dict]) -> dict:
    """Region-identity share of v_N and, with tumour flags, the tumour-touched nodes' patient share."""
    node_model.eval()
    codes = np.stack([node_model.encode(node_model.prepare(_t(s["node"]), _flags(s, "node"))).numpy()
                      for s in inputs.values()])
    out = {"node_region_share": identity_share(codes)}
    if all("node_tumor" in s for s in inputs.values()):
        touched = np.stack([np.asarray(s["node_tumor"]).any(axis=1) for s in inputs.values()])
        out["node_tumor_patient_share"] = tumor_patient_share(codes, touched)
        out["node_tumor_fraction"] = float(touched.mean())
    return out


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _flags(s: dict, kind: str = "tract"):
    f = s.get(f"{kind}_tumor")
    return None if f is None else torch.as_tensor(np.asarray(f, dtype=bool))


def workdir_evidence(workdir) -> dict:
    """The evidence of a work folder's trained models on its held-out FA patients (for audits)."""
    import json

    from gliotype.layout import WorkDir
    from gliotype.self_supervised.inputs import patient_inputs, tract_positions_or_none
    from gliotype.self_supervised.train import load_self_supervised  # train imports this module

    workdir = WorkDir.of(workdir)
    report = json.loads(workdir.ssl.report.read_text())
    node_model, edge_model = load_self_supervised(workdir)
    positions = tract_positions_or_none(workdir)
    train = {p: patient_inputs(workdir, p, positions, required=False) for p in report["train_patients"]}
    held = {p: patient_inputs(workdir, p, positions, required=False)
            for p in (report["heldout_patients"] or report["train_patients"])}
    out = node_evidence(node_model, held)
    if len(held) >= 2:  # the within-tract figures need two held-out patients
        out.update(edge_evidence(edge_model, train, held))
    return out


__all__ = ["code_collapsed", "code_fa_evidence", "edge_evidence", "fa_deviation", "identity_share", "node_evidence",
           "patient_retrieval", "reconstruction_error", "retrieval_accuracy", "tumor_patient_share",
           "workdir_evidence"]
