"""Grad-CAM of the image encoder and its placement on the template grid (section 4.5, Fig. 7D)."""

import inspect

import numpy as np
import pytest
import torch
from multimodal_items import CROP, make_items, make_model

from gliotype.interpretation import cam_to_native, gradcam_nifti, target_layer_name, tumor_gradcam
from gliotype.multimodal.data import collate


def test_map_is_on_the_crop_grid_in_unit_range_and_nonzero(model, batch):
    mutant = tumor_gradcam(model, batch)
    wild = tumor_gradcam(model, batch, target="wildtype")
    for cam in (mutant, wild):
        assert cam.shape == (CROP, CROP, CROP) and cam.dtype == np.float32
        assert cam.min() >= 0 and cam.max() <= 1
    # the two class scores have opposite gradients: at least one map is non-zero, peaking at 1
    assert max(mutant.max(), wild.max()) == pytest.approx(1.0)
    predicted = tumor_gradcam(model, batch, target="predicted")
    assert predicted.max() == pytest.approx(1.0)


def test_deterministic_and_input_dependent(model, batch):
    a = tumor_gradcam(model, batch, target="predicted")
    b = tumor_gradcam(model, batch, target="predicted")
    assert np.array_equal(a, b)
    other = collate(make_items(1, seed=5))
    assert not np.allclose(a, tumor_gradcam(model, other, target="predicted"))


def test_batch_maps_match_single_patients_and_case_dicts_work(model, batch2):
    both = tumor_gradcam(model, batch2, target="predicted")
    assert both.shape == (2, CROP, CROP, CROP)
    items = make_items(2)
    case = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in items[1].items()}
    single = tumor_gradcam(model, case, target="predicted")
    np.testing.assert_allclose(both[1], single, atol=1e-5)


def test_the_model_is_left_untouched(batch):
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tumor_gradcam(model, batch)
    relu = model.image.features[-1][2]
    assert relu.inplace and not relu._forward_hooks and not relu._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_target_layer_and_errors(batch):
    model = make_model()
    assert target_layer_name(model) == "image.features.1.2"  # tiny: two conv blocks, the last one's ReLU
    with pytest.raises(ValueError, match="target"):
        tumor_gradcam(model, batch, target="both")
    with pytest.raises(ValueError, match="image encoder"):
        tumor_gradcam(make_model("multimodal.encoders=[point_cloud, brain_network]"), batch)
    with pytest.raises(ValueError, match="classification head"):
        tumor_gradcam(make_model("multimodal.use_bce=false"), batch)


def _translation(affine, origin):
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.asarray(origin, dtype=float) + affine[:3, 3]
    return out


def test_gradcam_nifti_places_the_crop_on_the_template_grid():
    tpl_aff = np.diag([-2.0, 2.0, 2.0, 1.0])
    tpl_aff[:3, 3] = (90, -126, -72)
    shape = (20, 24, 18)
    cam = np.random.default_rng(0).uniform(size=(5, 6, 7)).astype(np.float32)
    img = gradcam_nifti(cam, _translation(tpl_aff, (3, 4, 5)), shape, tpl_aff)
    data = img.get_fdata(dtype=np.float32)
    assert data.shape == shape and np.allclose(img.affine, tpl_aff)
    np.testing.assert_array_equal(data[3:8, 4:10, 5:12], cam)
    assert data.sum() == pytest.approx(cam.sum(), rel=1e-5)
    # a crop that leaves the grid is clipped (the zero padding of the crop builder)
    clipped = gradcam_nifti(cam, _translation(tpl_aff, (-2, 20, 0)), shape, tpl_aff).get_fdata()
    np.testing.assert_array_equal(clipped[0:3, 20:24, 0:7], cam[2:5, 0:4, :])
    assert clipped.sum() == pytest.approx(cam[2:5, 0:4, :].sum(), rel=1e-5)


def test_gradcam_nifti_resamples_a_grid_with_other_axes():
    tpl_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    crop_aff = np.diag([1.0, 1.0, 1.0, 1.0])  # 1 mm crop at the template origin
    cam = np.ones((8, 8, 8), dtype=np.float32)
    data = gradcam_nifti(cam, crop_aff, (10, 10, 10), tpl_aff).get_fdata()
    assert np.allclose(data[:4, :4, :4], 1.0) and data[5:].sum() == 0


def test_cam_to_native_is_import_safe():
    assert list(inspect.signature(cam_to_native).parameters) == ["cam_img", "workdir", "patient_id",
                                                                 "reference_path"]
