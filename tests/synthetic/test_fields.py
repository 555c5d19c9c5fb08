"""The smooth random fields' axis-by-axis cubic zoom against scipy.ndimage.zoom."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from gliotype.synthetic.fields import cubic_zoom, patient_rng, smooth_field


@pytest.mark.parametrize("coarse, shape", [((7, 9, 8), (40, 52, 44)), ((5, 5, 6), (5, 9, 31)), ((4, 6, 5), (1, 6, 17))])
def test_cubic_zoom_is_ndimage_zoom_within_one_float32_ulp(coarse, shape):
    grid = np.random.default_rng(3).standard_normal(coarse).astype(np.float32)
    reference = ndi.zoom(grid, [s / c for s, c in zip(shape, coarse)], order=3, mode="nearest", grid_mode=False)
    zoomed = cubic_zoom(grid, shape)
    assert zoomed.dtype == np.float32 and zoomed.shape == reference.shape == shape
    ulp = np.spacing(np.abs(reference).astype(np.float32))
    assert np.all(np.abs(zoomed - reference) <= ulp)
    assert np.mean(zoomed != reference) < 1e-3


def test_smooth_field_is_the_zoomed_noise_of_its_stream():
    shape = (30, 34, 28)
    fields = smooth_field(patient_rng(5, (1,), 0), shape, 6.0, n=2)
    noise = patient_rng(5, (1,), 0).standard_normal((2, 8, 9, 8)).astype(np.float32)
    assert fields.shape == (2, *shape)
    for field, grid in zip(fields, noise):
        np.testing.assert_allclose(field, cubic_zoom(grid, shape), rtol=0, atol=0)
        assert abs(float(field.std()) - 1.0) < 0.5  # about unit standard deviation
