"""``render_patient`` on chosen phenotype rows: tissue contrasts and the image-level IDH
signals (one latent moved, every random field kept: same seed and key)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.special import ndtri as ndtr_inv

from gliotype.atlases import load_template
from gliotype.synthetic import SynthConfig, render_patient, sample_phenotypes
from gliotype.synthetic.anatomy import cerebral_label, load_anatomy, location_atlas
from gliotype.synthetic.phenotype import derived_parameters
from gliotype.synthetic.render import SEQUENCES, path_targets

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
# v2: local infiltration along white matter + disrupted paths (tubes along straight segments
# from the tumour centre to K AAL region centroids, kept in white matter, fading with the
# distance from the lesion). Z_P10 / Z_P90: the latents at p = Phi(z) = 0.1 and 0.9.

Z_P10, Z_P90 = float(ndtr_inv(0.1)), float(ndtr_inv(0.9))
#: The path field is exactly 0 farther than this from every segment: blur kernel half-width
#: 3 sigma = 6 mm per axis (a cube: 6 sqrt 3 = 10.4 mm) + rounding of the line to voxels (1.7 mm).
PATH_REACH_MM = 12.5


def grid_mm(shape) -> np.ndarray:
    """(*shape, 3) MNI mm of the voxels of the renderer's cropped 2 mm grid."""
    an = load_anatomy(2)
    axes = [an.affine[j, 3] + an.affine[j, j] * np.arange(s.start, s.stop) for j, s in enumerate(an.crop)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1)


def distance_to_segments(shape, start, ends) -> np.ndarray:
    """Euclidean distance (mm) of every voxel to the nearest segment start -> end."""
    x = (grid_mm(shape).reshape(-1, 3) - np.asarray(start)).astype(np.float32)
    d2 = np.full(len(x), np.inf, np.float32)
    for end in ends:
        u = (np.asarray(end) - np.asarray(start)).astype(np.float32)
        s = np.clip(x @ u / (u @ u), 0.0, 1.0)
        np.minimum(d2, ((x - s[:, None] * u) ** 2).sum(1), out=d2)
    return np.sqrt(d2).reshape(shape)


def centre_of(row) -> np.ndarray:
    return np.array([row["centre_x"], row["centre_y"], row["centre_z"]])


def test_network_latent_changes_only_voxels_outside_the_lesion_along_paths(base_row, render, tissue):
    low, high = render(with_fa=True, z_network=LOW), render(with_fa=True, z_network=HIGH)
    assert np.array_equal(low.seg, high.seg)
    inside = low.seg > 0
    for q in SEQUENCES:
        assert np.array_equal(low.images[q][inside], high.images[q][inside]), q
    assert np.array_equal(low.fa[inside], high.fa[inside])
    assert (high.paths[inside] == 0).all() and (high.infiltration[inside] == 0).all()

    # the path field lives within a few mm of the segments to the involved regions' centroids
    targets = path_targets(with_latents(base_row, z_network=HIGH), SEED, KEY)
    near = distance_to_segments(low.seg.shape, centre_of(base_row), targets) <= PATH_REACH_MM
    assert (high.paths[~near] == 0).all()
    assert (high.paths[near] > 0.05).sum() > 1000
    # voxels far from every path and beyond the infiltration are identical, white matter included
    # (v1 changed the whole white matter); there are many of them
    quiet = (low.mask > 0.5) & ~near & (low.infiltration == 0) & (high.infiltration == 0)
    assert quiet.sum() > 1000 and (quiet & (tissue["wm"] > 0.5)).sum() > 300
    for q in SEQUENCES:
        assert np.array_equal(low.images[q][quiet], high.images[q][quiet]), q
    assert np.array_equal(low.fa[quiet], high.fa[quiet])
    # ... and far from every path the network latent changes nothing beyond its infiltration tail
    far = (low.mask > 0.5) & ~near & ~ndi.binary_dilation(inside, iterations=15)  # > 30 mm
    rel = np.abs(high.images["t2"][far] / low.images["t2"][far] - 1)
    assert np.quantile(rel, 0.99) < 0.002, np.quantile(rel, 0.99)

    # infiltration along white matter right next to the lesion (unchanged from v1)
    ring = ndi.binary_dilation(inside, iterations=3) & ~inside & (tissue["wm"] > 0.5)
    assert high.infiltration[ring].mean() > 0.1 > 10 * low.infiltration[ring].mean()
    assert high.images["t2"][ring].mean() > low.images["t2"][ring].mean()


def test_higher_network_latent_involves_more_paths_further(base_row, render):
    rows = {z: with_latents(base_row, z_network=z) for z in (Z_P10, Z_P90)}
    lo, hi = rows[Z_P10], rows[Z_P90]
    assert hi["paths_involved"] > lo["paths_involved"] >= 4
    assert hi["path_extent_mm"] > lo["path_extent_mm"] + 30 and hi["path_amplitude"] > lo["path_amplitude"]
    t_lo, t_hi = path_targets(lo, SEED, KEY), path_targets(hi, SEED, KEY)
    assert len(t_lo) == lo["paths_involved"] and len(t_hi) == hi["paths_involved"]
    assert np.array_equal(t_hi[: len(t_lo)], t_lo)  # nested: the same order, more targets
    assert len({tuple(t) for t in t_hi}) == len(t_hi)
    # targets are AAL centroids other than the tumour's own region; another patient, another order
    own = location_atlas().centroids[cerebral_label(base_row["location_region"]) - 1]
    assert not any(np.allclose(t, own) for t in t_hi)
    assert not np.array_equal(path_targets(hi, SEED, (KEY[0] + 1,)), t_hi)

    f_lo, f_hi = render(z_network=Z_P10).paths, render(z_network=Z_P90).paths
    assert (f_hi >= f_lo).all()  # superset of tubes, longer extent, larger amplitude
    assert (f_hi > 0).sum() > 2 * (f_lo > 0).sum() > 0
    assert f_lo.max() <= lo["path_amplitude"] + 1e-6 and f_hi.max() <= hi["path_amplitude"] + 1e-6
    # the effect fades to 0 at the extent from the lesion
    dist = ndi.distance_transform_edt(render(z_network=Z_P10).seg == 0, sampling=2.0)
    for f, row in ((f_lo, lo), (f_hi, hi)):
        assert dist[f > 0].max() < row["path_extent_mm"]
    assert dist[f_hi > 0].max() > dist[f_lo > 0].max() + 20


def test_path_effect_sign_and_size_per_sequence(render):
    """On the paths, beyond the infiltration: T2/FLAIR up, T1/T1c down, FA down, by the effect
    at field 1 (+10 % / -5 % / -25 %) times the field change times the white-matter share."""
    lo, hi = render(with_fa=True, z_network=Z_P10), render(with_fa=True, z_network=Z_P90)
    change = hi.paths - lo.paths
    on = (change > 0.05) & (hi.infiltration < 1e-3) & (lo.infiltration < 1e-3)
    assert on.sum() > 300, on.sum()
    for q, effect in (("t2", 0.10), ("flair", 0.10), ("t1", -0.05), ("t1ce", -0.05)):
        rel = hi.images[q][on] / lo.images[q][on] - 1
        share = rel / (effect * change[on])  # the white-matter share of the voxel's signal, in (0, 1]
        assert share.min() > 0, q  # the sign
        assert 0.5 < np.median(share) <= 1.0, (q, np.median(share))
        assert (np.abs(rel) <= abs(effect) * change[on] + 1e-3).all(), q  # never more than the effect
    # FA: at least half of -25 % x the field change on average (the FA of white matter is
    # most of the voxel's FA)
    assert hi.fa[on].mean() < (1 - 0.5 * 0.25 * change[on].mean()) * lo.fa[on].mean()
    # the same FA noise in both renders (one stream): the drop is at most 25 % x the field change
    assert (lo.fa[on] - hi.fa[on] <= 0.25 * change[on] * lo.fa[on] / (1 - 0.25 * lo.paths[on]) + 0.01).all()


def test_path_effect_survives_per_patient_median_normalisation(render):
    lo, hi = render(z_network=Z_P10), render(z_network=Z_P90)
    brain = lo.mask > 0.5
    paths = (hi.paths > 0.1) & (hi.seg == 0)
    assert paths.sum() > 500
    norm = {k: r.images["t2"] / np.median(r.images["t2"][brain]) for k, r in (("lo", lo), ("hi", hi))}
    assert norm["hi"][paths].mean() > 1.03 * norm["lo"][paths].mean()
    # beyond the infiltration the paths alone still move the normalised T2
    beyond = paths & (hi.infiltration < 0.01)
    assert beyond.sum() > 300
    assert norm["hi"][beyond].mean() > 1.008 * norm["lo"][beyond].mean()


def test_grey_matter_far_away_barely_moves_with_the_network_latent(render, tissue):
    """The network change is a white-matter change: pure CSF far away is untouched."""
    low, high = render(with_fa=True, z_network=LOW), render(with_fa=True, z_network=HIGH)
    far_csf = far_from(low.seg, 10) & (tissue["csf"] > 0.95) & (tissue["wm"] < 0.01)
    diff = np.abs(high.images["t2"][far_csf] - low.images["t2"][far_csf])
    assert np.median(diff) < 0.01
