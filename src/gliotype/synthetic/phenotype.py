"""Sampling the phenotype table: IDH, site, age, latents, tumour location/size, and the
closed-form Bayes posterior P(IDH = 1 | latents, location).

Generative model (docs/synthetic.md). IDH ~ Bernoulli(prevalence). Three Gaussian
latents, each oriented so that *high = wild-type-like*::

    z_k | IDH ~ N((1/2 - IDH) * s_k * d_k, 1),     k in {image, shape, network}

so the latent alone has AUC Phi(s_k d_k / sqrt 2) and log-likelihood ratio
-s_k d_k z_k. Location: the group indicator g (1 = frontal/insular, 0 =
temporal/parietal/deep) has P(g = 1 | IDH) = P0 + s_loc * (P_IDH - P0), the centre is
then uniform over the group's candidate voxels whatever the IDH status. Everything else
(age, site, size, textures, noise) is independent of IDH, so the images carry IDH
information only through these latents and the posterior below is the Bayes optimum
for any classifier on the images.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr

from gliotype.synthetic.anatomy import aal_names, location_atlas
from gliotype.synthetic.config import SynthConfig

#: Base effect sizes d_k (separation of the class means in SDs) at knob 1.
EFFECT_SIZE: dict[str, float] = {"image": 1.3, "shape": 1.0, "network": 1.1}
GAUSSIAN_LATENTS: tuple[str, ...] = tuple(EFFECT_SIZE)
#: P(frontal/insular group | IDH) at knob 1: mutant 0.75, wild-type 0.35 (frontal and
#: insular predilection of IDH-mutant gliomas; temporal, parietal and deep grey locations
#: of wild-type glioblastoma). The knob mixes them towards their mean P0.
LOCATION_P = {1: 0.75, 0: 0.35}
LOCATION_P0 = 0.5 * (LOCATION_P[1] + LOCATION_P[0])

_BLOCK = 1024  # rows drawn per random block: row i never depends on the number of patients
_TABLE_TAG = 0x7AB1E  # spawn keys of the table blocks: (tag, block); patients use (i,)
_SITE_TAG = 0x517E
_FA_TAG = 0xFA
NATIVE_SPACINGS: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0), (1.0, 1.0, 3.0), (0.9, 0.9, 2.0))
"""Native voxel sizes: (0,0,0) means isotropic at the config resolution (half the patients)."""


def location_probability(signal: dict[str, float]) -> dict[int, float]:
    """P(g = 1 | IDH) for IDH in {1, 0} at the configured location knob."""
    s = float(signal.get("location", 1.0))
    return {y: LOCATION_P0 + s * (LOCATION_P[y] - LOCATION_P0) for y in (1, 0)}


def deltas(signal: dict[str, float]) -> dict[str, float]:
    """Mean separation s_k * d_k of each Gaussian latent."""
    return {k: float(signal.get(k, 1.0)) * EFFECT_SIZE[k] for k in GAUSSIAN_LATENTS}


def bayes_posterior(latents, signal: dict[str, float], prevalence: float) -> np.ndarray:
    """P(IDH = 1 | z_image, z_shape, z_network, location_group), in closed form.

    ``latents`` is a DataFrame or mapping with columns ``z_image``, ``z_shape``,
    ``z_network`` and ``location_group``. Log-odds = logit(prevalence)
    - sum_k s_k d_k z_k + log P(g | IDH=1) / P(g | IDH=0).
    """
    d = deltas(signal)
    lo = np.full(len(np.asarray(latents["z_image"])), logit(prevalence), dtype=np.float64)
    for k in GAUSSIAN_LATENTS:
        lo -= d[k] * np.asarray(latents[f"z_{k}"], dtype=np.float64)
    p = location_probability(signal)
    g = np.asarray(latents["location_group"]).astype(bool)
    lo += np.where(g, math.log(p[1] / p[0]), math.log((1 - p[1]) / (1 - p[0])))
    return expit(lo)


def expected_auc(signal: dict[str, float]) -> dict[str, float]:
    """Population AUCs implied by the knobs: each latent alone, and the Bayes posterior.

    Exact: the Gaussian part of the log-odds is N(+-D^2/2, D^2) given the class with
    D^2 = sum_k (s_k d_k)^2, the location adds one of two constants.
    """
    d = deltas(signal)
    out = {k: float(ndtr(d[k] / math.sqrt(2))) for k in GAUSSIAN_LATENTS}
    p = location_probability(signal)
    out["location"] = 0.5 + 0.5 * (p[1] - p[0])
    llr = {1: math.log(p[1] / p[0]), 0: math.log((1 - p[1]) / (1 - p[0]))}
    pg = {1: {1: p[1], 0: 1 - p[1]}, 0: {1: p[0], 0: 1 - p[0]}}
    dd = math.sqrt(sum(v * v for v in d.values()))
    auc = 0.0
    for a in (0, 1):
        for b in (0, 1):
            w = pg[1][a] * pg[0][b]
            diff = llr[a] - llr[b]
            if dd > 0:
                auc += w * float(ndtr((dd * dd + diff) / (math.sqrt(2) * dd)))
            else:
                auc += w * (1.0 if diff > 0 else 0.5 if diff == 0 else 0.0)
    out["bayes"] = auc
    return out


def derived_parameters(z_image, z_shape, z_network) -> dict[str, np.ndarray]:
    """Phenotype parameters the renderer uses, each a monotone function of one latent.

    p = Phi(z) in (0, 1). Image: enhancing fraction of the non-necrotic core, necrotic
    radius fraction, T2-FLAIR mismatch (mutant-like), enhancement gain. Shape: lobulation
    amplitude (relative radius), lobule sharpness, margin roughness (mm). Network:
    infiltration length along white matter (mm) and amplitude; disrupted paths: number of
    involved regions K = round(4 + 24 p), extent from the lesion (mm) and amplitude.
    """
    pi, ps, pn = ndtr(np.asarray(z_image)), ndtr(np.asarray(z_shape)), ndtr(np.asarray(z_network))
    return {
        "enhancing_fraction": 0.02 + 0.93 * pi**1.5,
        "necrosis_fraction": 0.72 * pi**2,
        "mismatch": (1.0 - pi) ** 2,
        "enhancement_gain": 0.25 + 0.75 * pi,
        "lobulation": 0.04 + 0.32 * ps,
        "lobule_sharpness": 3.0 + 12.0 * ps,
        "roughness_mm": 0.3 + 2.7 * ps,
        "infiltration_mm": 3.0 + 12.0 * pn,
        "infiltration_amplitude": pn,
        "paths_involved": np.floor(4.0 + 24.0 * pn + 0.5).astype(np.int64),
        "path_extent_mm": 15.0 + 45.0 * pn,
        "path_amplitude": 0.3 + 0.7 * pn,
    }


def _block(seed: int, b: int, config: SynthConfig) -> pd.DataFrame:
    """Rows ``b*_BLOCK ... (b+1)*_BLOCK - 1``: a fixed number of draws, whatever the config."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TABLE_TAG, b)))
    n = _BLOCK
    u_idh = rng.random(n)
    site = rng.integers(0, 1 << 30, n)
    age = rng.normal(56.0, 13.0, n)
    eps = rng.standard_normal((n, 3))
    u_loc = rng.random(n)
    u_cand = rng.random(n)
    jitter = rng.uniform(-1.0, 1.0, (n, 3))
    u_radius = rng.random(n)
    u_edema = rng.random(n)
    atrophy_noise = rng.normal(0.0, 0.02, n)
    rot = rng.uniform(-12.0, 12.0, (n, 3))
    trans = rng.uniform(-10.0, 10.0, (n, 3))
    u_space = rng.random(n)
    u_flip = rng.random(n)

    idh = (u_idh < config.prevalence).astype(np.int64)
    d = deltas(config.signal)
    z = {k: (0.5 - idh) * d[k] + eps[:, j] for j, k in enumerate(GAUSSIAN_LATENTS)}
    p = location_probability(config.signal)
    group = (u_loc < np.where(idh == 1, p[1], p[0])).astype(np.int64)

    la = location_atlas()
    centre = np.empty((n, 3))
    depth = np.empty(n)
    label = np.empty(n, dtype=np.int64)
    for g in (0, 1):
        sel = group == g
        k = np.minimum((u_cand[sel] * len(la.candidates[g])).astype(np.int64), len(la.candidates[g]) - 1)
        centre[sel] = la.candidates[g][k] + jitter[sel]
        depth[sel] = la.depth[g][k]
        label[sel] = la.label[g][k]
    names = aal_names()
    age = np.clip(age, 18.0, 88.0).round(1)
    radius = np.minimum(8.0 + 12.0 * u_radius, depth - 4.0)
    kind = np.searchsorted([0.5, 0.75], u_space, side="right")
    spacing = np.array([NATIVE_SPACINGS[k] for k in kind])
    iso = kind == 0
    spacing[iso] = float(config.resolution)

    df = pd.DataFrame({
        "idh": idh,
        "site": site % config.sites,
        "age": age,
        **{f"z_{k}": z[k] for k in GAUSSIAN_LATENTS},
        "location_group": group,
        "location_region": [names[int(v)] for v in label],
        "hemisphere": np.where(centre[:, 0] < 0, "L", "R"),
        "centre_x": centre[:, 0], "centre_y": centre[:, 1], "centre_z": centre[:, 2],
        "centre_depth_mm": depth,
        "radius_core_mm": radius,
        "edema_margin_mm": 4.0 + 14.0 * u_edema,
        "atrophy": np.clip(0.30 * (age - 35.0) / 50.0 + atrophy_noise, 0.0, 0.35),
    })
    for key, value in derived_parameters(z["image"], z["shape"], z["network"]).items():
        df[key] = value
    if config.space == "native":
        for j, ax in enumerate("xyz"):
            df[f"native_rot_{ax}_deg"] = rot[:, j]
        for j, ax in enumerate("xyz"):
            df[f"native_shift_{ax}_mm"] = trans[:, j]
        for j, ax in enumerate("xyz"):
            df[f"native_spacing_{ax}_mm"] = spacing[:, j]
        df["native_flip_x"] = (u_flip < 0.5).astype(np.int64)
    return df


def sample_phenotypes(config: SynthConfig) -> pd.DataFrame:
    """The phenotype table of a cohort (no images; fast enough for 10^5 rows).

    Row i depends only on (seed, i) and the knobs, not on the number of patients or
    workers. Columns: patient_id, idh, site, age, fa, the latents, location, size,
    the derived rendering parameters, bayes_posterior (and native-space pose for
    ``space="native"``): truth.csv without the columns measured on the rendered masks.
    """
    n = config.patients
    blocks = [_block(config.seed, b, config) for b in range(-(-n // _BLOCK))]
    df = pd.concat(blocks, ignore_index=True).iloc[:n].reset_index(drop=True)
    df.insert(0, "patient_id", config.patient_ids())
    fa = np.zeros(n, dtype=np.int64)
    if config.n_fa:
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(_FA_TAG,)))
        fa[np.sort(rng.permutation(n)[: config.n_fa])] = 1
    df.insert(4, "fa", fa)
    df["bayes_posterior"] = bayes_posterior(df, config.signal, config.prevalence)
    return df


def site_table(config: SynthConfig) -> pd.DataFrame:
    """Acquisition effects of each site: per-sequence intensity scale and contrast
    exponent, bias-field amplitude (log units), noise level (fraction of the WM signal)."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(_SITE_TAG,)))
    rows = []
    for s in range(config.sites):
        scale = np.exp(rng.normal(0.0, 0.25, 4))
        gamma = rng.uniform(0.9, 1.1, 4)
        rows.append({
            "site": s,
            **{f"scale_{q}": float(scale[j]) for j, q in enumerate(("t1", "t1ce", "t2", "flair"))},
            **{f"gamma_{q}": float(gamma[j]) for j, q in enumerate(("t1", "t1ce", "t2", "flair"))},
            "bias": float(rng.uniform(0.05, 0.25)),
            "noise": float(rng.uniform(0.01, 0.045)),
        })
    return pd.DataFrame(rows)
