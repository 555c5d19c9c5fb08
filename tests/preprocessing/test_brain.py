"""Skull-strip detection and brain masks (section 4.2, BET in the paper)."""

import numpy as np
from scipy import ndimage as ndi

from gliotype.preprocessing.brain import (
    binary_fill_holes,
    dice,
    head_mask,
    is_skull_stripped,
    largest_component,
    nonzero_brain_mask,
    skull_strip_stats,
)

VOX = 8.0  # 2 mm voxels


def _ellipsoid(shape, radii, centre=None):
    centre = np.array(shape) / 2 if centre is None else np.asarray(centre)
    idx = np.indices(shape).astype(float)
    r = sum(((idx[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
    return r <= 1.0


def _brain(rng, shape=(90, 108, 90)):
    brain = _ellipsoid(shape, (33, 40, 30))  # ~1.33 l at 2 mm
    vol = np.where(brain, rng.normal(400, 50, shape), 0.0)
    vol[brain & (vol <= 0)] = 1.0
    return brain, vol


def test_stripped_brain_is_detected():
    rng = np.random.default_rng(0)
    brain, vol = _brain(rng)
    s = skull_strip_stats(vol, VOX)
    assert s["zero_fraction"] > 0.5 and 1000 < s["foreground_ml"] < 2000
    assert is_skull_stripped(vol, VOX)
    # stripped volumes with negative values inside (bias-corrected, like the TCGA case)
    assert is_skull_stripped(np.where(brain, vol - 300, 0.0), VOX)


def test_head_with_background_is_not_stripped():
    rng = np.random.default_rng(1)
    brain, vol = _brain(rng)
    shape = vol.shape
    skull = _ellipsoid(shape, (39, 46, 36)) & ~_ellipsoid(shape, (35, 42, 32))
    scalp = _ellipsoid(shape, (42, 50, 40)) & ~_ellipsoid(shape, (39, 46, 36))
    head = vol.copy()
    head[skull] = 900.0
    head[scalp] = 500.0
    noisy = head + np.abs(rng.normal(0, 15, shape))  # air is noise, not exact zeros
    assert not is_skull_stripped(noisy, VOX)
    # a head whose background was zeroed: many zeros, but a head-sized foreground
    zeroed = np.where(_ellipsoid(shape, (42, 50, 40)), head + 5.0, 0.0)
    s = skull_strip_stats(zeroed, VOX)
    assert s["zero_fraction"] >= 0.3 and s["foreground_ml"] > 2400
    assert not is_skull_stripped(zeroed, VOX)
    # a rough head mask covers the head, not the air
    hm = head_mask(noisy)
    assert dice(hm, _ellipsoid(shape, (42, 50, 40))) > 0.9


def test_nonzero_brain_mask_fills_holes_and_drops_specks():
    rng = np.random.default_rng(2)
    brain, vol = _brain(rng)
    vol[45, 54, 40:50] = 0.0  # a hole inside (e.g. necrosis at exactly 0)
    vol[2, 2, 2] = 7.0  # a speck outside
    mask = nonzero_brain_mask(vol)
    assert mask[45, 54, 45] and not mask[2, 2, 2]
    assert dice(mask, brain) > 0.999


def test_largest_component_and_dice():
    m = np.zeros((10, 10, 10), bool)
    m[1:4, 1:4, 1:4] = True
    m[6:9, 6:9, 6:8] = True
    lc = largest_component(m)
    assert lc.sum() == 27 and not lc[7, 7, 7]
    assert dice(m, m) == 1.0 and dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert dice(lc, m) == 2 * 27 / (27 + 27 + 18)
    assert ndi.label(largest_component(np.zeros((4, 4, 4), bool)))[1] == 0


def test_binary_fill_holes_is_scipys():
    """The components' hole filling gives scipy's mask: random masks in 1-3 dimensions (holes, holes open on
    a face, empty and full masks), and a shell whose cavity is a hole."""
    rng = np.random.default_rng(0)
    masks = [rng.random(tuple(rng.integers(1, 9, size=rng.integers(1, 4)))) < rng.random() for _ in range(400)]
    masks += [np.zeros((4, 5, 6), bool), np.ones((4, 5, 6), bool)]
    for m in masks:
        assert np.array_equal(binary_fill_holes(m), ndi.binary_fill_holes(m)), m.shape
    shell = _ellipsoid((20, 20, 20), (8, 8, 8)) & ~_ellipsoid((20, 20, 20), (5, 5, 5))
    assert np.array_equal(binary_fill_holes(shell), _ellipsoid((20, 20, 20), (8, 8, 8)))
