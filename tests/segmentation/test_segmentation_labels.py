"""A network's output as BraTS labels, the model spec and the sanity checks of an automatic mask
(issue 15, "No tumour mask"): each rule against a reference written voxel by voxel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gliotype.errors import CaseError, GliotypeError
from gliotype.segmentation.checks import MAX_TUMOR_ML, MIN_TUMOR_ML, check_mask, mask_volumes
from gliotype.segmentation.labels import argmax_to_brats, map_labels, probabilities_to_brats, regions_to_brats
from gliotype.segmentation.monai_bundle import spec_from_metadata
from gliotype.segmentation.spec import make_spec, role_of


def _reference(tc: bool, wt: bool, et: bool, enhancing: int = 4) -> int:
    """The BraTS bundle's rule, one voxel: ET -> enhancing, else TC -> 1, else WT -> 2, else 0."""
    if et:
        return enhancing
    if tc:
        return 1
    if wt:
        return 2
    return 0


def test_regions_to_brats_matches_the_reference_on_every_combination_and_on_random_volumes():
    combos = np.array(list(itertools.product([False, True], repeat=3)))  # all 8, inconsistent ones included
    got = regions_to_brats(combos[:, 0], combos[:, 1], combos[:, 2])
    assert got.tolist() == [_reference(*c) for c in combos]
    rng = np.random.default_rng(0)
    probs = rng.random((3, 7, 6, 5)).astype(np.float32)
    for order, enhancing in ((("TC", "WT", "ET"), 4), (("ET", "TC", "WT"), 3)):
        out = probabilities_to_brats(probs, order, threshold=0.4, enhancing_label=enhancing)
        ref = np.zeros(probs.shape[1:], np.uint8)
        for idx in np.ndindex(*probs.shape[1:]):
            on = {name: probs[(k,) + idx] > 0.4 for k, name in enumerate(order)}
            ref[idx] = _reference(on["TC"], on["WT"], on["ET"], enhancing)
        np.testing.assert_array_equal(out, ref)
        assert out.dtype == np.uint8


def test_the_regions_of_a_brats_mask_come_back_as_the_same_mask():
    """MONAI's own training targets (ConvertToMultiChannelBasedOnBratsClasses) round-trip exactly."""
    from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

    labels = np.random.default_rng(1).choice([0, 1, 2, 4], size=(9, 8, 7)).astype(np.uint8)
    regions = np.asarray(ConvertToMultiChannelBasedOnBratsClasses()(labels)).astype(np.float32)
    np.testing.assert_array_equal(probabilities_to_brats(regions, ("TC", "WT", "ET")), labels)


def test_argmax_and_label_maps():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(4, 5, 4, 3))
    out = argmax_to_brats(scores, [0, 1, 2, 4])
    for idx in np.ndindex(*scores.shape[1:]):
        assert out[idx] == [0, 1, 2, 4][int(np.argmax(scores[(slice(None),) + idx]))]
    nnunet = rng.integers(0, 4, size=(6, 5, 4))  # nnU-Net's BraTS labels: 1 edema, 2 necrosis, 3 enhancing
    mapped = map_labels(nnunet, {1: 2, 2: 1, 3: 4})
    for idx in np.ndindex(*nnunet.shape):
        assert mapped[idx] == {0: 0, 1: 2, 2: 1, 3: 4}[int(nnunet[idx])]


def test_spec_from_the_brats_bundle_metadata_and_explicit_specs():
    meta = {"network_data_format": {
        "inputs": {"image": {"channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}},
        "outputs": {"pred": {"channel_def": {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}}}}}
    values = spec_from_metadata(meta)
    assert values == {"inputs": ["t1c", "t1", "t2", "flair"], "output": "regions", "channels": ["TC", "WT", "ET"]}
    spec = make_spec(values, "segmenter x")
    assert spec.inputs == ("t1c", "t1", "t2", "flair") and spec.out_channels == 3
    labels = spec_from_metadata({"network_data_format": {"outputs": {"pred": {"channel_def": {
        "0": "background", "1": "necrotic core", "2": "edema", "3": "enhancing tumor"}}}}})
    assert labels == {"output": "labels", "labels": [0, 1, 2, 4]}
    assert [role_of(n) for n in ("T1ce", "t1-Gd", "T2-FLAIR", "T1w", "T2", "PD")] == ["t1c", "t1c", "flair", "t1",
                                                                                    "t2", None]
    for bad, words in (({"inputs": ["t1c", "dwi"], "output": "regions", "channels": ["TC", "WT", "ET"]}, "'dwi'"),
                       ({"inputs": ["t1c", "T1ce"], "output": "regions", "channels": ["TC", "WT", "ET"]}, "twice"),
                       ({"inputs": ["t1c"], "output": "regions", "channels": ["TC", "WT"]}, "TC, WT, ET"),
                       ({"inputs": ["t1c"], "output": "labels"}, "needs 'labels'"),
                       ({"inputs": ["t1c"], "output": "labels", "labels": [0, 7]}, "7 is not a BraTS label"),
                       ({"inputs": ["t1c"], "output": "regions", "channels": ["TC", "WT", "ET"], "roi": 3},
                        "roi")):
        with pytest.raises(GliotypeError) as info:
            make_spec(bad, "segmenter x")
        text = str(info.value)
        assert text.startswith("segmenter x: ") and words in text and "\n" not in text, text


def test_checks_refuse_absurd_masks_in_one_line_and_warn_on_missing_core():
    voxel_ml = 0.008  # 2 mm voxels
    empty = np.zeros((20, 20, 20), np.uint8)
    cases = [(empty, "the segmenter found no tumour"),
             (_blob(int(MIN_TUMOR_ML / voxel_ml) - 5), "below 0.5 ml"),
             (np.full((80, 80, 80), 2, np.uint8), f"above {MAX_TUMOR_ML:g} ml")]
    for labels, words in cases:
        with pytest.raises(CaseError) as info:
            check_mask(labels, voxel_ml, 1400.0, "P1", "brats")
        text = str(info.value)
        assert text.startswith("patient P1: ") and words in text and "segmenter brats" in text and "\n" not in text
    half = _blob(3000)  # 24 ml of a 40 ml "brain"
    with pytest.raises(CaseError, match="60% of the brain"):
        check_mask(half, voxel_ml, 40.0, "P1", "brats")
    edema_only = _blob(2000)
    assert "edema only" in check_mask(edema_only, voxel_ml, 1400.0, "P1", "brats")[0]
    core = edema_only.copy()
    core.reshape(-1)[np.flatnonzero(core)[:10]] = 1
    assert "no enhancing tumour" in check_mask(core, voxel_ml, 1400.0, "P1", "brats")[0]
    core.reshape(-1)[np.flatnonzero(core)[10:20]] = 4
    assert check_mask(core, voxel_ml, 1400.0, "P1", "brats") == []
    assert mask_volumes(core, voxel_ml) == {"necrotic_core": 0.08, "edema": round(1980 * voxel_ml, 3),
                                            "enhancing": 0.08, "whole_tumor": 16.0}


def _blob(voxels: int) -> np.ndarray:
    """A mask of ``voxels`` edema voxels (label 2) in a 40^3 grid."""
    out = np.zeros(40 ** 3, np.uint8)
    out[:voxels] = 2
    return out.reshape(40, 40, 40)
