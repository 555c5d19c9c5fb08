"""``render_patient`` on chosen phenotype rows: tissue contrasts and the image-level IDH
signals (one latent moved, every random field kept: same seed and key)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from gliotype.atlases import load_template
from gliotype.synthetic import SynthConfig, render_patient, sample_phenotypes
from gliotype.synthetic.anatomy import load_anatomy
from gliotype.synthetic.phenotype import derived_parameters
from gliotype.synthetic.render import SEQUENCES

SEED, KEY = 0, (5,)
LOW, HIGH = -2.5, 2.5  # mutant-like and wild-type-like ends of a latent


@pytest.fixture(scope="module")
def base_row() -> dict:
    """A mid-sized tumour (radius 14-17 mm) from a small draw, latents at 0."""
    df = sample_phenotypes(SynthConfig(patients=100, seed=0, fa_cases=0))
    i = int(np.argmax(df["radius_core_mm"].between(14.0, 17.0).to_numpy()))
    row = df.iloc[i].to_dict()
    row.update(z_image=0.0, z_shape=0.0, z_network=0.0)
    return row


def with_latents(row: dict, **z) -> dict:
    """``row`` with some latents replaced and every derived parameter recomputed."""
    out = dict(row)
    out.update(z)
    derived = derived_parameters(out["z_image"], out["z_shape"], out["z_network"])
    out.update({k: float(v) for k, v in derived.items()})
    return out


@pytest.fixture(scope="module")
def render(base_row):
    """Cached renders of ``base_row`` with some latents moved (same seed and key)."""
    cache = {}

    def get(with_fa=False, **z):
        key = (with_fa, tuple(sorted(z.items())))
        if key not in cache:
            cache[key] = render_patient(with_latents(base_row, **z), SEED, KEY, 2, with_fa=with_fa)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def tissue():
    """Template tissue maps on the renderer's cropped grid."""
    an = load_anatomy(2)
    tpl = load_template(2)
    return {k: np.asarray(getattr(tpl, k))[an.crop] for k in ("gm", "wm", "csf", "brain_mask")}


def far_from(seg: np.ndarray, voxels: int) -> np.ndarray:
    """Voxels more than ``voxels`` (chessboard distance) away from the lesion."""
    return ~ndi.binary_dilation(seg > 0, structure=np.ones((3, 3, 3), bool), iterations=voxels)


# --------------------------------------------------------------------------- contrasts

def test_tissue_contrast_ordering_per_sequence(render, tissue):
    r = render(with_fa=True)
    away = far_from(r.seg, 5) & (tissue["brain_mask"] > 0.5)
    mean = {}
    for cls in ("gm", "wm", "csf"):
        sel = away & (tissue[cls] > 0.9)
        assert sel.sum() > 500, cls
        mean[cls] = {q: float(r.images[q][sel].mean()) for q in SEQUENCES}
        mean[cls]["fa"] = float(r.fa[sel].mean())
    for q in ("t1", "t1ce"):  # WM > GM > CSF
        assert mean["wm"][q] > 1.15 * mean["gm"][q] and mean["gm"][q] > 1.5 * mean["csf"][q], (q, mean)
    # T2: CSF > GM > WM
    assert mean["csf"]["t2"] > 1.3 * mean["gm"]["t2"] and mean["gm"]["t2"] > 1.15 * mean["wm"]["t2"], mean
    # FLAIR: GM > WM > CSF (fluid suppressed)
    assert mean["gm"]["flair"] > 1.03 * mean["wm"]["flair"] and mean["wm"]["flair"] > 1.5 * mean["csf"]["flair"], mean
    assert mean["wm"]["fa"] > 2 * mean["gm"]["fa"] and mean["gm"]["fa"] > 1.5 * mean["csf"]["fa"], mean


def test_render_outputs_are_consistent(render, tissue):
    r = render(with_fa=True)
    brain = r.mask > 0.5
    assert set(np.unique(r.seg)) == {0, 1, 2, 4}
    assert not r.seg[~brain].any()
    for q in SEQUENCES:
        assert r.images[q].dtype == np.float32
        assert np.isfinite(r.images[q]).all()
        assert (r.images[q][r.mask == 0] == 0).all()
    assert 0.0 <= r.fa.min() and r.fa.max() <= 1.0
    assert (r.fa[~brain] == 0).all()
    # the warped brain still overlaps the template brain closely (a deformation of a few mm)
    tpl = tissue["brain_mask"] > 0.5
    dice = 2 * (tpl & brain).sum() / (tpl.sum() + brain.sum())
    assert dice > 0.9


def test_same_seed_and_key_is_deterministic_other_key_differs(base_row, render):
    row = with_latents(base_row)
    a = render()
    b = render_patient(row, SEED, KEY, 2)
    c = render_patient(row, SEED, (6,), 2)
    for q in SEQUENCES:
        assert np.array_equal(a.images[q], b.images[q])
    assert np.array_equal(a.seg, b.seg)
    assert not np.array_equal(a.images["t1"], c.images["t1"])


# --------------------------------------------------------------------------- image latent

def _core_stats(r) -> dict:
    core = np.isin(r.seg, (1, 4))
    edema = (r.seg == 2) & ~ndi.binary_dilation(core, iterations=2)
    t1ce, flair, t2 = r.images["t1ce"], r.images["flair"], r.images["t2"]
    necrotic = core & (t1ce < 0.45)  # necrosis is dark on T1c (0.30), the rest >= 0.6
    nonenh = (r.seg == 1) & ~necrotic
    return {
        "core": core,
        "enhancing": int((r.seg == 4).sum()),
        "necrotic": int(necrotic.sum()),
        "enh_fraction": float((r.seg == 4).sum() / core.sum()),
        "flair_t2": float(np.median(flair[nonenh] / t2[nonenh])) if nonenh.sum() > 20 else np.nan,
        "edema_flair_t2": float(np.median(flair[edema] / t2[edema])),
        "t1ce_enh": float(t1ce[r.seg == 4].mean()) if (r.seg == 4).any() else np.nan,
    }


def test_wildtype_like_image_latent_enhances_and_necroses(render):
    mut, wt = _core_stats(render(z_image=LOW)), _core_stats(render(z_image=HIGH))
    assert wt["enhancing"] > 5 * max(mut["enhancing"], 1)
    assert wt["enh_fraction"] > mut["enh_fraction"] + 0.3
    assert wt["necrotic"] > 100 and mut["necrotic"] < 0.1 * wt["necrotic"]


def test_mutant_like_image_latent_shows_t2_flair_mismatch(render):
    """Non-enhancing tumour bright on T2 and relatively dark on FLAIR (IDH-mutant astrocytoma)."""
    # compared with a neutral latent: at the wild-type end the non-enhancing voxels are a thin
    # layer mixed with necrosis by partial volume, which blurs the FLAIR/T2 ratio
    mut, mid = _core_stats(render(z_image=LOW)), _core_stats(render(z_image=0.0))
    assert mut["flair_t2"] < 0.75 * mid["flair_t2"], (mut["flair_t2"], mid["flair_t2"])
    # FLAIR of the mutant-like core is suppressed relative to its own edema (no mismatch there)
    assert mut["flair_t2"] < 0.6 * mut["edema_flair_t2"], mut


def test_image_latent_changes_neither_the_tumour_shape_nor_the_brain_outside(render):
    a, b = render(z_image=LOW), render(z_image=HIGH)
    # same whole-tumour and core masks: only the composition of the core changes
    assert np.array_equal(a.seg > 0, b.seg > 0)
    assert np.array_equal(_core_stats(a)["core"], _core_stats(b)["core"])
    outside = far_from(a.seg, 3)  # beyond the partial-volume fringe of the lesion
    for q in SEQUENCES:
        assert np.array_equal(a.images[q][outside], b.images[q][outside]), q
        assert not np.array_equal(a.images[q], b.images[q]), q


def test_image_latent_moves_enhancement_monotonically(render):
    fractions = [_core_stats(render(z_image=z))["enh_fraction"] for z in (LOW, 0.0, HIGH)]
    assert fractions[0] < fractions[1] < fractions[2], fractions


# --------------------------------------------------------------------------- shape latent

def _sphericity(mask: np.ndarray, h: float = 2.0) -> float:
    """pi^(1/3) (6V)^(2/3) / A with the voxel-face surface (1 for a ball, less when rough)."""
    area = sum(np.count_nonzero(np.diff(mask.astype(np.int8), axis=a)) for a in range(3)) * h * h
    volume = mask.sum() * h**3
    return float(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area)


def test_wildtype_like_shape_latent_gives_a_rougher_surface(render):
    smooth = np.isin(render(z_shape=LOW).seg, (1, 4))
    rough = np.isin(render(z_shape=HIGH).seg, (1, 4))
    s_smooth, s_rough = _sphericity(smooth), _sphericity(rough)
    assert s_smooth > s_rough + 0.15, (s_smooth, s_rough)
    # surface / volume ratio too (the volumes stay within a factor 1.6)
    sv = [sum(np.count_nonzero(np.diff(m.astype(np.int8), axis=a)) for a in range(3)) / m.sum() for m in (smooth, rough)]
    assert sv[1] > 1.3 * sv[0]
    assert 1 / 1.6 < rough.sum() / smooth.sum() < 1.6


# --------------------------------------------------------------------------- network latent

def test_network_latent_changes_the_brain_far_from_the_tumour_only(render, tissue):
    low, high = render(with_fa=True, z_network=LOW), render(with_fa=True, z_network=HIGH)
    assert np.array_equal(low.seg, high.seg)
    inside = low.seg > 0
    for q in SEQUENCES:
        assert np.array_equal(low.images[q][inside], high.images[q][inside]), q
    assert np.array_equal(low.fa[inside], high.fa[inside])

    far_wm = far_from(low.seg, 10) & (tissue["wm"] > 0.8) & (tissue["brain_mask"] > 0.5)
    assert far_wm.sum() > 5000
    fa_lo, fa_hi = float(low.fa[far_wm].mean()), float(high.fa[far_wm].mean())
    t2_lo, t2_hi = float(low.images["t2"][far_wm].mean()), float(high.images["t2"][far_wm].mean())
    assert fa_hi < 0.95 * fa_lo, (fa_lo, fa_hi)  # wild-type-like: lower remote FA
    assert t2_hi > 1.02 * t2_lo, (t2_lo, t2_hi)  # ... and brighter remote T2
    assert high.remote[far_wm].mean() > 50 * max(low.remote[far_wm].mean(), 1e-6)

    # infiltration along white matter right next to the lesion
    ring = ndi.binary_dilation(inside, iterations=3) & ~inside & (tissue["wm"] > 0.5)
    assert high.infiltration[ring].mean() > 0.1 > 10 * low.infiltration[ring].mean()
    assert high.images["t2"][ring].mean() > low.images["t2"][ring].mean()
    assert (high.infiltration[inside] == 0).all()


def test_grey_matter_far_away_barely_moves_with_the_network_latent(render, tissue):
    """The remote change is a white-matter change: pure CSF far away is untouched."""
    low, high = render(with_fa=True, z_network=LOW), render(with_fa=True, z_network=HIGH)
    far_csf = far_from(low.seg, 10) & (tissue["csf"] > 0.95) & (tissue["wm"] < 0.01)
    diff = np.abs(high.images["t2"][far_csf] - low.images["t2"][far_csf])
    assert np.median(diff) < 0.01
